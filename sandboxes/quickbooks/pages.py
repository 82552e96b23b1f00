"""Query results in Id order, kept between pages, so that paging a large result by ``STARTPOSITION``
costs each page what it returns, not the whole result again.

The real service pages from an index. The sandbox used to filter and sort every candidate row for every
page: a poller paging the N rows changed since its floor (``WHERE Metadata.LastUpdatedTime >= X ORDERBY
Id STARTPOSITION n``, the connector's fallback when change data capture is at its cap) paid N² / page
size, so the ERP's cost per record grew with the poller's lag.

A query's *shape* (its statement without ``STARTPOSITION``, ``MAXRESULTS``, ``COUNT`` or projection)
keeps the ascending Ids of its matches and the position in its table's change log they reflect. The next
query of that shape first re-tests the rows written since (a row a writer changed between two pages
enters, leaves or stays in the result exactly as a fresh scan would decide), then slices. Only queries
answered in Id order are kept; any other order is evaluated afresh (``qql.run``).

Memory only, like the tables: nothing of it survives the sandbox's process, and nothing needs to (the
next query rebuilds its shape from the tables).
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from accord.sandboxes.quickbooks import qql


class _Row(Protocol):
    wire: dict[str, Any]  # its "Id" is the row's key in its table
    deleted: bool


RowT = TypeVar("RowT", bound=_Row)

@dataclasses.dataclass
class _Hits:
    """The matches of one shape: ascending Ids, as of ``position`` in the table's change log."""

    table: str
    ids: list[int]
    members: set[int]
    position: int


class _ChangeLog:
    """Ids of one table's rows in the order they were written; positions count every write ever noted."""

    def __init__(self) -> None:
        self.base = 0  # the position of ``ids[0]``
        self.ids: list[str] = []

    @property
    def end(self) -> int:
        return self.base + len(self.ids)

    def after(self, position: int) -> list[str]:
        return self.ids[position - self.base:]

    def forget_before(self, position: int) -> None:
        if position > self.base:
            del self.ids[:position - self.base]
            self.base = position


class QueryPages(Generic[RowT]):
    """The kept results of one company's queries, brought up to date by the writes noted since."""

    SHAPES = 16  # shapes kept per company; the least recently used is forgotten first
    LAG_MAX = 50_000  # writes to its table after which a shape nobody reads is forgotten

    def __init__(self, tables: Mapping[str, Mapping[str, RowT]]) -> None:
        self._tables = tables
        self._logs = {name: _ChangeLog() for name in tables}
        self._shapes: OrderedDict[tuple[str, qql.Query], _Hits] = OrderedDict()

    def note(self, table: str, row_id: str) -> None:
        """The row was written (created, changed, voided or deleted)."""
        log = self._logs[table]
        if any(hits.table == table for hits in self._shapes.values()):
            log.ids.append(row_id)
            if len(log.ids) > self.LAG_MAX:
                self._forget_lagging(table)
        else:  # nobody reads this table's log: count the write, keep nothing
            log.base, log.ids = log.end + 1, []

    def page(self, table: str, query: qql.Query, candidates: Callable[[], Iterable[RowT]],
             matches: Callable[[RowT], bool]) -> tuple[list[RowT], int]:
        """(The rows of the query's page, its total matches). ``candidates()``: rows that may match,
        read only when the shape is new; ``matches``: the query's conditions."""
        hits = self._current(table, query, candidates, matches)
        rows = self._tables[table]
        offset = query.start - 1
        return [rows[str(i)] for i in hits.ids[offset:offset + query.max_results]], len(hits.ids)

    def _current(self, table: str, query: qql.Query, candidates: Callable[[], Iterable[RowT]],
                 matches: Callable[[RowT], bool]) -> _Hits:
        shape = (table, dataclasses.replace(query, count=False, fields=None, start=1,
                                            max_results=qql.DEFAULT_MAX_RESULTS))
        log, hits = self._logs[table], self._shapes.get(shape)
        if hits is None:
            ids = sorted(int(row.wire["Id"]) for row in candidates() if not row.deleted and matches(row))
            hits = _Hits(table, ids, set(ids), log.end)
            self._shapes[shape] = hits
            if len(self._shapes) > self.SHAPES:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(shape)
            self._retest(hits, log.after(hits.position), matches)
            hits.position = log.end
        log.forget_before(min(h.position for h in self._shapes.values() if h.table == table))
        return hits

    def _retest(self, hits: _Hits, written: list[str], matches: Callable[[RowT], bool]) -> None:
        rows = self._tables[hits.table]
        for row_id in dict.fromkeys(written):
            row, number = rows.get(row_id), int(row_id)
            match = row is not None and not row.deleted and matches(row)
            if match and number not in hits.members:
                insort(hits.ids, number)
                hits.members.add(number)
            elif not match and number in hits.members:
                del hits.ids[bisect_left(hits.ids, number)]
                hits.members.discard(number)

    def _forget_lagging(self, table: str) -> None:
        log = self._logs[table]
        for shape, hits in list(self._shapes.items()):
            if hits.table == table and log.end - hits.position > self.LAG_MAX:
                del self._shapes[shape]
        log.forget_before(min((h.position for h in self._shapes.values() if h.table == table), default=log.end))

