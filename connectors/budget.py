"""The request budget of one external account, shared by every caller of it on every node.

Every request a session sends first takes a grant from the account's ``RequestBudget``, which checks all
the account's documented limits at once (``AccountLimits``: sliding rate windows, some counting only one
kind of request such as QuickBooks' ``/batch``, and a cap on requests in flight whose slots expire if
their holder dies) and the server's own signals: a ``429``/``Retry-After`` or a quota usage report near its
ceiling pauses every caller of the account, not only the one that saw it, and lowers the account's
effective limits for a while (they recover linearly).

Shares are not fixed: an idle caller takes nothing, a backlog takes what is free. Callers say how urgent
their requests are with ``requests_as(Priority...)`` (a context variable, so connectors keep their
signatures): when a more urgent class was refused recently, a less urgent one leaves it a small reserve
of every window, so a record changed just now is not stuck behind another entity's month-end backlog,
and backlog writes go before routine polls. A poll that waited ``POLL_PATIENCE`` is promoted, so polls
are never starved.

Where the grants are kept is a ``BudgetStore``: ``LocalStore`` here (one process, used when no Redis is
configured, e.g. by tests and one-off commands) or the Redis store in ``accord.actors.budget`` (every
process). Both implement the same rule; ``tests/unit/test_budget.py`` runs one suite against both.
What survives a crash: with Redis, every grant of the last window and every open slot (until its lease);
locally, nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextvars import ContextVar
from enum import IntEnum
from typing import Protocol

from accord.config.types import AccountLimits, RateLimit

POLL_PATIENCE = 5.0  # seconds a routine poll waits before it competes as a backlog write
MAX_SLEEP = 1.0  # a refused caller re-asks at least this often (a pause may be lifted early)
LEASE = 120.0  # an in-flight slot whose holder died frees itself after this long (QBO's request timeout)
SLOT_WAIT = 0.005  # what a store answers when only the in-flight cap refuses (a slot frees any moment)
JITTER = 0.01  # seconds added to each window: a request granted at t reaches the server a little later
MAX_MARGIN = 0.25  # and up to this much more (a busy actor sends a granted request late)
SHORT_MARGIN = 0.19  # of a short window's length (1.01 + 0.19 = 1.2 s: QuickBooks' 10 a second is its 500 a minute)
RECOVERY = 0.1  # share of the limits regained per longest window after a throttle
THROTTLE_STEP = 0.9  # each throttle lowers the effective limits to this share of what they were
THROTTLE_FLOOR = 0.7  # the effective limits never drop below this share of the documented ones


class Priority(IntEnum):
    """How urgent a request is (lower goes first when the budget is contended)."""

    FRESH = 0  # a change that just happened (a small write queue, provisioning)
    BACKLOG = 1  # changes already waiting in numbers (month-end), parked work that can now go
    POLL = 2  # routine reads: polls, reconciliation (promoted to BACKLOG after ``POLL_PATIENCE``)
    SPARE = 3  # what the others leave: single requests standing in for a batch (never promoted)


_priority: ContextVar[Priority] = ContextVar("accord_request_priority", default=Priority.FRESH)
_held: ContextVar[str | None] = ContextVar("accord_request_grant_held", default=None)


@contextlib.contextmanager
def requests_as(priority: Priority) -> Iterator[None]:
    """Requests sent inside this block (and tasks started in it) ask the budget with ``priority``."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


def current_priority() -> Priority:
    return _priority.get()


def margin(period: float) -> float:
    """How much longer than ``period`` a window is kept: a request granted now reaches the server later,
    by a delay that varies (a busy host, the network), and the server counts arrivals. A short window gets
    ``SHORT_MARGIN`` of its length (QuickBooks' 10 a second: 8.33 a second, exactly its 500 a minute, so
    it costs no throughput; at 15% a month-end with 8 writers on 2 cores still drew 429s)."""
    return JITTER + min(SHORT_MARGIN * period, MAX_MARGIN)


def burst(limit: int) -> int:
    """How many grants of a window may go at once after a pause (the rest are paced evenly)."""
    return limit if limit <= 10 else 4


def reserve(window: RateLimit, windows: Sequence[RateLimit]) -> int:
    """Grants of a window kept for the more urgent classes when one was refused recently: a tenth, but
    no more than what a narrower kind window inside it lets through in the same time (QuickBooks' 40
    batches a minute are all the reserve the 500 requests need when single requests fill the rest)."""
    tenth = max(1, window.requests // 10)
    if window.kind != "*":
        return tenth
    inner = [w.requests * window.period / w.period for w in windows if w.kind != "*"]
    return max(1, min([tenth, *(int(n) for n in inner)]))


def reserved_for(window: RateLimit, windows: Sequence[RateLimit]) -> RateLimit | None:
    """The narrower kind window a window's reserve stands for, if any: the grants that kind already holds
    of the window are its reserve, not on top of it (QuickBooks' batches in the last minute count toward
    the 40 that single requests leave them; else singles got 460 less the batches)."""
    if window.kind != "*":
        return None
    tenth = max(1, window.requests // 10)
    inner = [(int(w.requests * window.period / w.period), w) for w in windows if w.kind != "*"]
    smaller = [(n, w) for n, w in inner if 1 <= n < tenth]
    return min(smaller, key=lambda nw: nw[0])[1] if smaller else None


class BudgetStore(Protocol):
    """Where an account's grants live. ``take`` grants a request (0.0) or says how long to wait."""

    async def take(self, windows: tuple[RateLimit, ...], priority: Priority, holder: str, *,
                   dry: bool = False) -> float:
        """0.0 when granted, else the seconds to wait; ``dry`` only says which, taking nothing."""
        ...

    async def done(self, holder: str, windows: tuple[RateLimit, ...]) -> None:
        """The request of ``holder``'s grant ended: free its in-flight slot and count it in ``windows``
        from now on, not from its grant (the server stamped its arrival at the latest now)."""
        ...

    async def throttle(self, pause: float) -> None: ...


class RequestBudget:
    """The budget of one account: ``slot(kind)`` around every request, ``throttled``/``usage`` on signals."""

    def __init__(self, limits: AccountLimits, store: BudgetStore, *, pause_on_usage: float = 60.0) -> None:
        self.limits = limits
        self.store = store
        self.pause_on_usage = pause_on_usage
        self.waited = 0.0  # seconds callers of this object spent waiting for grants (a metric)
        self._gates: dict[tuple[RateLimit, ...], asyncio.Lock] = {}  # one asker per process and kind: refused
        # callers queue here, not in Redis

    def windows(self, kind: str) -> tuple[RateLimit, ...]:
        return tuple(w for w in self.limits.windows if w.counts(kind))

    def pace(self, kind: str = "*") -> float:
        """Seconds between two grants of ``kind`` when its windows are saturated (their even pace)."""
        return max(((w.period + margin(w.period)) / w.requests for w in self.windows(kind)), default=0.0)

    @contextlib.asynccontextmanager
    async def slot(self, kind: str = "*") -> AsyncIterator[None]:
        """Hold a grant for one request of ``kind`` while it runs (its concurrency slot is freed after).
        A request sent inside the block under the same ``kind`` (``HttpSession.send``) uses this grant.
        When it ends the grant is re-stamped in its windows with the end time: a request sent late (a
        descheduled actor, a server whose loop stalled) then still holds its slot as long as the server
        counts it, so no margin has to cover the delay."""
        if _held.get() == kind:
            yield
            return
        holder, windows = uuid.uuid4().hex, self.windows(kind)
        await self._acquire(windows, holder)
        token = _held.set(kind)
        try:
            yield
        finally:
            _held.reset(token)
            with contextlib.suppress(Exception):  # the lease frees a slot we could not give back
                await asyncio.shield(self.store.done(holder, windows))

    async def available(self, kind: str = "*") -> bool:
        """Whether a request of ``kind`` would be granted now (nothing is taken)."""
        return await self.store.take(self.windows(kind), current_priority(), "", dry=True) <= 0

    async def _acquire(self, windows: tuple[RateLimit, ...], holder: str) -> None:
        priority, started = current_priority(), time.monotonic()
        if await self.store.take(windows, priority, holder) <= 0:
            return
        async with self._gates.setdefault(windows, asyncio.Lock()):
            while True:
                waited = time.monotonic() - started
                if priority is Priority.POLL and waited >= POLL_PATIENCE:
                    priority = Priority.BACKLOG
                wait = await self.store.take(windows, priority, holder)
                if wait <= 0:
                    self.waited += waited
                    return
                await asyncio.sleep(min(wait, MAX_SLEEP) * random.uniform(1.0, 1.1))

    async def throttled(self, retry_after: float | None) -> None:
        """The server refused a request for its quota: every caller pauses ``retry_after`` seconds."""
        await self.store.throttle(retry_after if retry_after is not None else 1.0)

    async def usage(self, used: int, limit: int) -> None:
        """The server reported ``used`` of ``limit`` (a daily quota): pause everyone near the ceiling."""
        if limit > 0 and used >= limit * self.limits.usage_ceiling:
            await self.store.throttle(self.pause_on_usage)


class LocalStore:
    """The budget rule of ``accord.actors.budget`` kept in this process (one event loop's callers)."""

    def __init__(self, limits: AccountLimits, clock: Callable[[], float] = time.monotonic, *,
                 lease: float = LEASE) -> None:
        self.concurrency = limits.concurrency or 0
        self.lease = lease
        self.longest = max((w.period for w in limits.windows), default=1.0)
        self.clock = clock
        self.windows = limits.windows
        self.logs: dict[RateLimit, list[float]] = {w: [] for w in limits.windows}
        self.slots: dict[str, float] = {}
        self.granted_at: dict[str, float] = {}  # holder -> when its grant went into the logs
        self.demand: dict[Priority, float] = {}
        self.tats: dict[RateLimit, float] = {}
        self.paused_until = 0.0
        self.factor_at, self.throttled_at = 1.0, 0.0
        self.granted = self.denied = 0

    def factor(self, now: float) -> float:
        return min(1.0, self.factor_at + RECOVERY * (now - self.throttled_at) / self.longest)

    async def take(self, windows: tuple[RateLimit, ...], priority: Priority, holder: str, *,
                   dry: bool = False) -> float:
        now = self.clock()
        factor = self.factor(now)
        paced = {w: max(self.tats.get(w, 0.0), now - (burst(w.requests) - 1) * self._interval(w, factor))
                 for w in windows}
        wait = max(self.paused_until - now, *(self._window_wait(w, priority, now) for w in windows),
                   *(tat - now for tat in paced.values()), 0.0)
        self.slots = {h: expiry for h, expiry in self.slots.items() if expiry > now}
        if self.concurrency and len(self.slots) >= self.concurrency:
            wait = max(wait, SLOT_WAIT)
        if dry:
            return wait
        if wait > 0:
            self.demand[priority] = now
            self.denied += 1
            return wait
        for window in windows:
            self.logs[window].append(now)
            self.tats[window] = paced[window] + self._interval(window, factor)
        self.granted_at[holder] = now
        if self.concurrency:
            self.slots[holder] = now + self.lease
        self.granted += 1
        return 0.0

    @staticmethod
    def _interval(window: RateLimit, factor: float) -> float:
        return (window.period + margin(window.period)) / (window.requests * factor)

    def _window_wait(self, window: RateLimit, priority: Priority, now: float) -> float:
        period = window.period + margin(window.period)
        log = self.logs[window]
        del log[:bisect.bisect_right(log, now - period)]
        urgent = any(p < priority and at > now - 2 * period for p, at in self.demand.items())
        kept = reserve(window, self.windows) if urgent else 0
        inner = reserved_for(window, self.windows)
        if kept and inner is not None:
            kept = max(0, kept - (len(self.logs[inner]) - bisect.bisect_right(self.logs[inner], now - period)))
        allowed = max(1, int(window.requests * self.factor(now)) - kept)
        if len(log) < allowed:
            return 0.0
        return log[len(log) - allowed] + period - now

    async def done(self, holder: str, windows: tuple[RateLimit, ...]) -> None:
        self.slots.pop(holder, None)
        granted, now = self.granted_at.pop(holder, None), self.clock()
        for window in windows:
            log = self.logs[window]
            at = bisect.bisect_left(log, granted) if granted is not None else len(log)
            if at < len(log) and log[at] == granted:
                del log[at]
            bisect.insort(log, now)

    async def throttle(self, pause: float) -> None:
        now = self.clock()
        self.paused_until = max(self.paused_until, now + pause)
        self.factor_at, self.throttled_at = max(THROTTLE_FLOOR, self.factor(now) * THROTTLE_STEP), now


def local_budget(limits: AccountLimits) -> RequestBudget:
    """A budget for callers in this process only."""
    return RequestBudget(limits, LocalStore(limits))
