"""Adaptive polling: when each entity of one system is polled next.

An entity whose poll found records is polled again after its base ``poll_interval`` and stays there while
it is active (a find within ``ACTIVE_FOR`` seconds, or three of its usual gaps between finds, at most
``ACTIVE_MAX``); after that each empty poll doubles the interval up to
``poll_max_interval``; a webhook hint (or any sign of a change) brings it back to the base and makes it due
at once. A failed poll waits its backoff without touching the interval. While the entity's changes wait
downstream, the next poll waits a share of their drain time (``backpressure``).
The interval actually achieved between two poll starts is kept for the ``accord_poll_interval_seconds``
metric. Nothing here survives a restart: a restarted poller polls every entity at once, at the base.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from accord.actors.poll.backpressure import stretched_wait
from accord.streams.keys import Keys

ACTIVE_FOR = 20.0  # seconds after its last find an entity is still polled at its base interval, at least
QUIET_GAPS = 3.0  # ... or this many of its usual gaps between finds (an entity changing every 12 s: 36 s)
ACTIVE_MAX = 60.0  # ... but never longer
GAP_WEIGHT = 0.3  # weight of the newest gap in the running average
IDLE_MARK = ":idle"  # suffix of a find's wait in ``Keys.poll_finds`` when the entity had been idle


@dataclass
class EntityPace:
    base: float
    ceiling: float
    interval: float = 0.0
    due: float = 0.0
    started: float | None = None
    achieved: float | None = None  # seconds between the last two poll starts
    found_at: float = float("-inf")  # when a poll last found records (or a hint announced some)
    last_find: float = float("-inf")  # when a poll last found records
    gap: float | None = None  # running average of the seconds between two polls that found records
    acked: tuple[float, int] | None = None  # (when, how many) its slowest target group had acked: backpressure

    def __post_init__(self) -> None:
        self.ceiling = max(self.ceiling, self.base)
        self.interval = self.base

    def active_for(self) -> float:
        """How long after a find the entity stays at its base interval: longer for one that changes
        every so often than for one that changed once (an initial load), within bounds."""
        usual = QUIET_GAPS * self.gap if self.gap is not None else 0.0
        return min(ACTIVE_MAX, max(ACTIVE_FOR, usual))

    def found(self, now: float) -> None:
        if self.last_find != float("-inf"):
            gap = now - self.last_find
            self.gap = gap if self.gap is None else (1 - GAP_WEIGHT) * self.gap + GAP_WEIGHT * gap
        self.found_at = self.last_find = now


@dataclass
class PollPace:
    """The polling schedule of one system's entities (``clock`` is monotonic seconds)."""

    paces: dict[str, EntityPace]
    clock: Callable[[], float] = field(default=time.monotonic)
    finds: list[tuple[str, float, bool]] = field(default_factory=list)  # (entity, seconds since its previous
    # poll, whether it was idle) for each poll that found records: how long a change waited, at most. An
    # idle entity's first change waited for a backed-off poll (or a hint), which adaptive polling accepts

    @classmethod
    def of(cls, intervals: dict[str, tuple[float, float]], clock: Callable[[], float] = time.monotonic) -> PollPace:
        """``intervals``: entity -> (base interval, maximum interval)."""
        return cls({e: EntityPace(base, ceiling) for e, (base, ceiling) in intervals.items()}, clock)

    def due(self, entity: str) -> bool:
        return self.clock() >= self.paces[entity].due

    def next_due(self) -> float:
        """Monotonic time when the next entity is due."""
        return min((p.due for p in self.paces.values()), default=self.clock())

    def started(self, entity: str) -> None:
        pace, now = self.paces[entity], self.clock()
        if pace.started is not None:
            pace.achieved = now - pace.started
        pace.started = now

    def polled(self, entity: str, found: int) -> None:
        """A poll ended: ``found`` records came back (not counting echoes of Accord's own writes)."""
        pace, now = self.paces[entity], self.clock()
        if found and pace.achieved is not None and pace.started is not None and pace.last_find > float("-inf"):
            idle = pace.started - pace.last_find >= pace.active_for()  # a hint does not make it active
            self.finds.append((entity, pace.achieved, idle))
        if found:
            pace.found(now)
        active = now - pace.found_at < pace.active_for()
        pace.interval = pace.base if active else min(pace.interval * 2, pace.ceiling)
        pace.due = now + pace.interval

    def downstream(self, entity: str, backlog: int, acked: int) -> None:
        """Backpressure (``backpressure``): the next poll waits while ``backlog`` records wait downstream."""
        pace, now = self.paces[entity], self.clock()
        previous, pace.acked = pace.acked, (now, acked)
        if previous is None:
            return
        wait = stretched_wait(pace.base, pace.ceiling, backlog, acked - previous[1], now - previous[0])
        if wait is not None and pace.started is not None:
            pace.due = max(pace.due, pace.started + wait)

    def failed(self, entity: str, delay: float) -> None:
        self.paces[entity].due = self.clock() + delay

    def hinted(self, entity: str) -> None:
        """A change was announced (webhook): back to the base interval, due now."""
        pace = self.paces[entity]
        pace.interval, pace.due, pace.found_at = pace.base, 0.0, self.clock()

    def take_finds(self) -> list[tuple[str, float, bool]]:
        finds, self.finds = self.finds, []
        return finds

    def achieved(self) -> dict[str, float]:
        return {e: p.achieved for e, p in self.paces.items() if p.achieved is not None}


async def flush_pace(redis: Redis, keys: Keys, system: str, pace: PollPace) -> None:
    """The achieved interval between polls of each entity (``accord_poll_interval_seconds``), and how long
    found changes waited to be seen (``Keys.poll_finds``, marked ``IDLE_MARK`` when the entity had been
    idle: the demo's freshness report)."""
    achieved, finds = pace.achieved(), pace.take_finds()
    if not achieved and not finds:
        return
    async with redis.pipeline(transaction=False) as pipe:
        if achieved:
            pipe.hset(keys.poll_pace(system), mapping={e: f"{s:.3f}" for e, s in achieved.items()})
        for entity, waited, idle in finds:
            pipe.rpush(keys.poll_finds(system, entity), f"{waited:.3f}{IDLE_MARK if idle else ''}")
            pipe.ltrim(keys.poll_finds(system, entity), -1000, -1)
        await pipe.execute()
