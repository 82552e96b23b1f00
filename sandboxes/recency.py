"""The rows of one sandbox table in the order of their change stamps, so that "changed since" reads
(incremental queries, change data capture) cost what they return, not the size of the table nor what
was written after the range they ask for.

A real service answers those reads from an index; a sandbox that scanned its whole table on every
poll made each read cost more the more records the run had created, and one that walked every row
written since the floor made a settling read ("since X, up to Y") or a capped CDC call cost the whole
backlog written after it: a poller behind a burst paid more per record the larger the burst.

Entries ``(stamp, id)`` are kept sorted by stamp (writes stamp with a clock that only moves forward, so
an entry is appended; a write back in time, e.g. a rolled-back transaction restoring an older row, is
inserted at its place). A rewritten row leaves its old entry behind, skipped on reading and dropped
when stale entries outnumber live ones. A read bisects to its floor and stops at its ceiling or limit.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class Recency:
    """Row ids by change stamp, oldest first."""

    def __init__(self) -> None:
        self._stamps: list[float] = []
        self._ids: list[str] = []
        self._current: dict[str, float] = {}  # row id -> its stamp now (last-written order)

    @classmethod
    def of(cls, table: Mapping[str, T], stamp: Callable[[T], float]) -> Recency:
        """The index of ``table`` (id -> row), ``stamp(row)`` being a row's change stamp."""
        index = cls()
        for row_id, row in table.items():
            index.touch(row_id, stamp(row))
        return index

    def __len__(self) -> int:
        return len(self._current)

    def touch(self, row_id: str, stamp: float) -> None:
        """The row was written now, with ``stamp``."""
        self._current.pop(row_id, None)
        self._current[row_id] = stamp
        if not self._stamps or stamp >= self._stamps[-1]:
            self._stamps.append(stamp)
            self._ids.append(row_id)
        else:  # back in time: rare, a list insert
            at = bisect_right(self._stamps, stamp)
            self._stamps.insert(at, stamp)
            self._ids.insert(at, row_id)
        if len(self._ids) > 2 * len(self._current) + 1024:
            self._compact()

    def drop(self, row_id: str) -> None:
        """The row is gone from the table."""
        self._current.pop(row_id, None)

    def since(self, floor: float, ceiling: float | None = None, limit: int | None = None, *,
              skip: tuple[float, str] | None = None) -> list[str]:
        """Ids of the rows stamped at or after ``floor`` (and at or before ``ceiling``), oldest first; at
        most ``limit`` of them. ``skip = (until, key)`` leaves out the rows stamped before ``until`` whose id
        is ``key`` or lower (a keyset read continuing after ``key``)."""
        out: list[str] = []
        seen: set[str] = set()
        stamps, ids, current = self._stamps, self._ids, self._current
        until, key = skip if skip is not None else (floor, "")
        for at in range(bisect_left(stamps, floor), len(stamps)):
            stamp = stamps[at]
            if ceiling is not None and stamp > ceiling:
                break
            row_id = ids[at]
            if stamp < until and row_id <= key:
                continue
            if current.get(row_id) == stamp and row_id not in seen:
                seen.add(row_id)
                out.append(row_id)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def _compact(self) -> None:
        """Only live entries, in stamp order (ties in the order they were written)."""
        live = sorted(self._current.items(), key=lambda item: item[1])
        self._ids = [row_id for row_id, _ in live]
        self._stamps = [stamp for _, stamp in live]
