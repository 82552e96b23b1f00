"""The de-dup pairs of the Salesforce overlap window, and the poll cursor that refers to them.

Every query re-reads the last ``overlap`` seconds of ``SystemModstamp`` (a transaction may commit after a
later one and carry an earlier stamp); the ``(id, version)`` pairs already returned inside that window say
which rows are repeats. A bulk load can put tens of thousands of rows in one window, so the pairs live in
the connector's memory and only a small window's pairs travel in the cursor the poller stores with every
page (they used to travel always: a 20,000-record load rewrote ~600 KB of cursor per page, in the poller
and in Redis's append-only file, and the cost per record grew with the load).

What survives a crash: the cursor (watermark, query locator, the pairs of a small window). Pairs kept only
in memory are lost with the process; the first poll after a restart then repeats the window's rows once
(repeats are harmless: every write is idempotent). Pairs in memory are used only with the very cursor they
were made with, so a page fetched again from an older cursor (its publish failed) is never skipped.
"""

from __future__ import annotations

import secrets
from collections import deque
from itertools import count

import msgspec

Pair = tuple[str, int]

# pairs kept per entity: one per record changed inside the overlap window, so it must exceed what a window
# holds at the peak rate (a bulk load of 20,000 accounts puts ~10,000 in one); past it the oldest pairs go
# first (dropping one only repeats a record, never loses it)
MAX_RECENT = 50_000
# pairs written into the cursor itself when the window holds no more than this (a quiet org: a restart
# repeats nothing); a larger window's pairs stay in memory
CURSOR_PAIRS = 256


class FetchCursor(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The poll position: watermark (max SystemModstamp seen, ms), ``settled`` (the floor of the next
    settling read: every row stamped below it that will ever commit was visible to an earlier settling
    read), ``settling`` (the query in progress is one), the locator of the query in progress, the de-dup
    pairs when the window is small, and ``memo``: which in-memory pairs belong to it. ``key`` is the Id of
    the last row read in the watermark's second when that second was busy: the next read between settling
    reads starts after it (keyset) instead of reading the whole second again. ``upto``: the settling read in
    progress is thin, up to that watermark; ``final``: it started late enough to see every row stamped up to
    that watermark's second (``seen_at``: when the watermark was first seen, epoch seconds)."""

    wm: int | None = None
    key: str | None = None
    settled: int | None = None
    settling: bool = False
    upto: int | None = None
    final: bool = False
    seen_at: float | None = None
    recent: list[Pair] = []
    next: str | None = None
    memo: str | None = None


CURSOR_DECODER = msgspec.json.Decoder(FetchCursor)


def newest(pairs: list[Pair], limit: int) -> list[Pair]:
    """At most ``limit`` of ``(id, version)`` pairs, the highest versions kept. A record read again (it
    was dropped from the set) is appended last; cutting by position would then evict newer pairs, which
    come back on the next read and evict others: the overlap window would be re-read on every poll."""
    if len(pairs) <= limit:
        return pairs
    return sorted(pairs, key=lambda pair: pair[1])[-limit:]


class Window:
    """The pairs of one entity's overlap window, in the order they were read (mostly by version)."""

    def __init__(self, pairs: list[Pair]) -> None:
        self.pairs: deque[Pair] = deque(pairs)
        self.seen: set[Pair] = set(pairs)

    def __contains__(self, pair: Pair) -> bool:
        return pair in self.seen

    def add(self, pair: Pair) -> None:
        self.pairs.append(pair)
        self.seen.add(pair)

    def prune(self, floor: int, limit: int) -> None:
        """Forget pairs older than ``floor`` (from the front: the window is read in version order), then
        the oldest beyond ``limit``."""
        while self.pairs and self.pairs[0][1] < floor:
            self.seen.discard(self.pairs.popleft())
        if len(self.pairs) > limit:
            kept = newest([pair for pair in self.pairs if pair[1] >= floor], limit)
            self.pairs, self.seen = deque(kept), set(kept)


class WindowMemory:
    """Each entity's window, tied to the cursor string it was last saved with."""

    def __init__(self) -> None:
        self._token = secrets.token_hex(4)
        self._serial = count(1)
        self._windows: dict[str, tuple[str, Window]] = {}

    def window(self, entity: str, cursor: str | None, state: FetchCursor) -> Window:
        """The window that goes with ``cursor``: the one in memory if ``cursor`` is the last one this
        process made for ``entity``, else the pairs written in the cursor (empty for a large window).
        The window is taken out of memory: a failed page must not leave it half updated."""
        saved = self._windows.pop(entity, None)
        if saved is not None and cursor is not None and saved[0] == cursor:
            return saved[1]
        return Window(list(state.recent))

    def keep(self, entity: str, cursor: str | None, window: Window) -> None:
        """Give back a window taken for ``cursor`` and left unchanged (its page failed before any of its rows
        was taken in): a retry of the same cursor does not re-read a large window's rows by Id."""
        if cursor is not None:
            self._windows[entity] = (cursor, window)

    def save(self, entity: str, position: FetchCursor, window: Window) -> str:
        """The cursor for ``position`` (its pairs filled in here); ``window`` is kept in memory under it."""
        small = len(window.pairs) <= CURSOR_PAIRS
        cursor = msgspec.structs.replace(position, recent=list(window.pairs) if small else [],
                                         memo=None if small else f"{self._token}.{next(self._serial)}")
        text = msgspec.json.encode(cursor).decode()
        self._windows[entity] = (text, window)
        return text
