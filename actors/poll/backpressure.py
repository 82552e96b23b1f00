"""Polls that do not outrun the pipeline: while an entity's changes wait downstream longer than its poll
interval, polling it faster only spends API calls.

After each poll, the entity's backlog (change records produced and not yet acked by its
slowest target group) and how fast that group acks are read from the counters the pipeline keeps in Redis
(``Keys.produced``, ``Keys.acked``: two hashes per target, one round trip). The next poll then waits a
share of the backlog's drain time (``BACKLOG_SHARE``), at most ``STRETCH_MAX`` base intervals and never past
``poll_max_interval``; the records it reads in one round (every page it finds) would have waited behind the
backlog anyway. A backlog under ``BACKLOG_MIN`` changes nothing (the demo's trickle: stretching its polls only
delayed what the pipeline had written already). A webhook hint still makes the entity due at once. Without a backlog, or before two samples
give a drain rate, the pace is adaptive polling's (``pace``). Nothing here survives a restart, nor needs to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import RedisError

from accord.config.settings import Settings
from accord.streams.keys import Keys
from accord.streams.replies import int_map

if TYPE_CHECKING:  # pace imports ``stretched_wait`` from here
    from accord.actors.poll.pace import PollPace

BACKLOG_MIN = 500  # a backlog smaller than this drains within a few sweeps: polls keep their pace
BACKLOG_SHARE = 0.25  # the next poll waits this share of the backlog's drain time ...
STRETCH_MAX = 10.0  # ... at most this many base intervals


async def downstream(redis: Redis, keys: Keys, settings: Settings, entity: str) -> tuple[int, int]:
    """``(backlog, acked)``: change records of ``entity`` not yet acked by its slowest target group, and
    how many that group has acked in all (the drain rate is the change of it between two calls)."""
    targets = list(settings.targets_of(entity))
    if not targets:
        return 0, 0
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.produced(entity))
        for target in targets:
            pipe.hgetall(keys.acked(entity, target))
        replies = await pipe.execute()
    produced = sum(int_map(replies[0]).values())
    acked = min(sum(int_map(reply).values()) for reply in replies[1:])
    return max(0, produced - acked), acked


def stretched_wait(base: float, ceiling: float, backlog: int, drained: int, elapsed: float) -> float | None:
    """Seconds the next poll waits for a ``backlog`` that drained ``drained`` records in ``elapsed`` s, or
    None when there is nothing to wait for (a backlog under ``BACKLOG_MIN``, or no drain rate known: a small
    one's rate, measured between two polls, is mostly noise)."""
    if backlog < BACKLOG_MIN or drained <= 0 or elapsed <= 0:
        return None
    drain_s = backlog * elapsed / drained
    return min(ceiling, base * STRETCH_MAX, max(base, drain_s * BACKLOG_SHARE))


async def slow_down(redis: Redis, keys: Keys, settings: Settings, pace: PollPace, entity: str) -> None:
    """After a poll of ``entity``: the next one waits while its backlog drains. Redis
    unavailable leaves the pace as it is (the poll loop meets the error next and waits for Redis)."""
    try:
        backlog, acked = await downstream(redis, keys, settings, entity)
    except RedisError:
        return
    pace.downstream(entity, backlog, acked)
