"""The rows of one sandbox table in the order they were last written, so that "changed since" reads
(incremental queries, change data capture) cost what they return, not the size of the table.

A real service answers those reads from an index; a sandbox that scanned its whole table on every
poll made each read cost more the more records the run had created, so a longer run paid more per
record. Writes stamp rows with a clock that only moves forward, so the last-written order is the
stamp order; a write that goes back in time (a rolled-back transaction restoring an older row, a test
clock set back) marks the order stale and the next read sorts it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class Recency:
    """Row ids, least recently written first. ``stamp(id)`` is the row's current change stamp."""

    def __init__(self, stamp: Callable[[str], float]) -> None:
        self._stamp = stamp
        self._order: dict[str, None] = {}
        self._last = float("-inf")
        self._sorted = True

    @classmethod
    def of(cls, table: Mapping[str, T], stamp: Callable[[T], float]) -> Recency:
        """The index of ``table`` (id -> row), ``stamp(row)`` being a row's change stamp."""
        return cls(lambda row_id: stamp(table[row_id]))

    def __len__(self) -> int:
        return len(self._order)

    def touch(self, row_id: str, stamp: float) -> None:
        """The row was written now, with ``stamp``."""
        self._order.pop(row_id, None)
        self._order[row_id] = None
        if stamp < self._last:
            self._sorted = False
        self._last = max(self._last, stamp)

    def drop(self, row_id: str) -> None:
        """The row is gone from the table."""
        self._order.pop(row_id, None)

    def since(self, floor: float) -> list[str]:
        """Ids of the rows stamped at or after ``floor``, oldest first."""
        if not self._sorted:
            self._order = dict.fromkeys(sorted(self._order, key=self._stamp))
            self._sorted = True
        out: list[str] = []
        for row_id in reversed(self._order):
            if self._stamp(row_id) < floor:
                break
            out.append(row_id)
        out.reverse()
        return out
