"""Settling on facts: "has the pipeline finished with everything that happened before this moment?",
answered from Redis rather than by a clock.

The pipeline is *idle* when nothing is in flight: no lag (produced − acked counters of every entity, target
and partition), no pending entry in any group of any partition stream (the targets' ``to:{target}`` and the
provisioner's ``provision``), nothing undelivered, and no provisioning process running or waiting on the
sync (a parked one waits on the exception desk: it is reported, not waited for).

Idle alone is not enough: a change made just before activity stopped may not have been read yet, and what
Accord writes while draining (a provisioned project, say) is read back by the pollers and may need more
work. So the pipeline is *settled* when two idle checks bracket a full poll round: a first idle check at
``mark`` (after activity stopped), then every poller commits a fetch sent after ``mark``, then a second idle
check finds the counters unchanged (nothing new published, acked or provisioned in between). Every write
Accord made had committed before the first check (nothing was in flight), so that poll round read it back.
A poller commits a cursor's ``fetched_ms`` in one atomic batch with the fetch's XADDs and produced counters,
and each check reads the cursors before the streams, so a check after such a fetch sees what it published.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loguru import logger
from redis.asyncio import Redis

from accord.actors.provision.process import Provisions
from accord.config.settings import Settings
from accord.pipeline_metrics import read_counters
from accord.streams.keys import Keys
from accord.stuck import ProvisionState, Stuck, provisioning, scan_groups, stuck_entries


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Facts:
    """One look at the pipeline, taken at ``at_ms``."""

    at_ms: int  # when the look started: whatever committed before it is in these facts
    lag: int  # produced − acked, summed over every entity, target and partition
    pending: int  # delivered, not acked (every group)
    undelivered: int  # not yet delivered (every group; counted up to one per group)
    busy: int  # provisioning processes running or waiting on the sync
    parked: int  # provisioning processes waiting on the exception desk
    progress: tuple[int, int, int] = (0, 0, 0)  # (produced, acked, provisioned): moves whenever work is done
    fetched_ms: dict[tuple[str, str], int] = field(default_factory=dict)  # (system, entity) -> last fetch sent

    @property
    def idle(self) -> bool:
        return not (self.lag or self.pending or self.undelivered or self.busy)

    def behind(self, mark_ms: int) -> list[str]:
        """The pollers' (system/entity) whose last committed fetch was sent at or before ``mark_ms``."""
        return [f"{s}/{e}" for (s, e), ms in sorted(self.fetched_ms.items()) if ms <= mark_ms]

    def summary(self) -> str:
        return (f"lag {self.lag}, {self.pending} pending, {self.undelivered}{'+' if self.undelivered else ''} "
                f"undelivered, {self.busy} provisioning running or waiting, {self.parked} parked")


async def read_facts(redis: Redis, settings: Settings) -> Facts:
    """Cursors first, then the streams, then the provisioning processes (see the module docstring: a fact
    read later never misses what an earlier one implies)."""
    keys = Keys(settings.namespace)
    at_ms = now_ms()
    fetched = await _fetched(redis, settings, keys)
    counters = await read_counters(redis, settings, keys)
    scans = await scan_groups(redis, settings, keys, limit=1)
    processes = await Provisions(redis, keys).all() if settings.provisioning is not None else []
    done = sum(1 for p in processes if p.step == "done")
    parked = sum(1 for p in processes if p.step != "done" and p.parked)
    return Facts(at_ms=at_ms, lag=sum(counters.lag.values()), pending=sum(s.pending for s in scans),
                 undelivered=sum(len(s.undelivered) for s in scans), busy=len(processes) - done - parked,
                 parked=parked, progress=(counters.produced, counters.acked, done), fetched_ms=fetched)


async def _fetched(redis: Redis, settings: Settings, keys: Keys) -> dict[tuple[str, str], int]:
    """When each poller's last committed fetch of each entity was sent (0: never)."""
    pairs = [(system, entity) for system in settings.systems for entity in settings.entities_of(system)]
    async with redis.pipeline(transaction=False) as pipe:
        for system, entity in pairs:
            pipe.hget(keys.cursor(system, entity), "fetched_ms")
        replies = await pipe.execute()
    return {pair: int(raw) if raw else 0 for pair, raw in zip(pairs, replies, strict=True)}


@dataclass
class Settling:
    """How settling went: ``settled`` or not, in how long, and what was left."""

    settled: bool
    seconds: float
    limit_s: float
    facts: Facts
    mark_ms: int  # the poll round in progress must have started after this
    interrupted: bool = False
    stuck: Stuck | None = None  # the unacked entries, named (only when not settled)
    provisions: list[ProvisionState] = field(default_factory=list)  # unfinished processes, with reasons

    def lines(self) -> list[str]:
        """The report, one line each."""
        if self.settled:
            out = [f"settled in {self.seconds:.1f}s: no lag, nothing pending or undelivered, no provisioning "
                   f"running, and nothing new after every poller read its systems once more"]
        else:
            why = "interrupted" if self.interrupted else f"limit {self.limit_s:.0f}s, --settle-timeout"
            out = [f"STUCK: not settled after {self.seconds:.1f}s ({why}): {self.facts.summary()}"]
            behind = self.facts.behind(self.mark_ms)
            if behind:
                out.append(f"  pollers yet to read again: {', '.join(behind)}")
            out += self._stuck_lines()
        out += [f"  provisioning {p.describe()}" for p in self.provisions if not p.parked]
        out += [f"  provisioning parked (waits on the exception desk; not waited for): {p.describe()}"
                for p in self.provisions if p.parked]
        return out

    def _stuck_lines(self) -> list[str]:
        if self.stuck is None or not self.stuck.total:
            return ["  no unacked entry in any stream" + (f" (yet the counters show lag {self.facts.lag})"
                                                          if self.facts.lag else "")]
        lines = [f"  unacked entries: {self.stuck.pending} pending, {self.stuck.undelivered} undelivered "
                 f"(the oldest {len(self.stuck.entries)}):"]
        return lines + [f"    {e.describe()}" for e in self.stuck.entries]


Check = Callable[[Facts], Awaitable[None]]


async def settle(redis: Redis, settings: Settings, *, since_ms: int, limit_s: float, interval: float = 1.0,
                 stop: asyncio.Event | None = None, on_check: Check | None = None, show: int = 20) -> Settling:
    """Wait until the pipeline has settled on everything that happened before ``since_ms`` (epoch ms), at
    most ``limit_s`` seconds (or until ``stop`` is set); when it has not, name (up to ``show``) stuck entries."""
    started = time.monotonic()
    first: Facts | None = None  # the first idle check of the current quiet stretch
    said = ""
    while True:
        facts = await read_facts(redis, settings)
        if on_check is not None:
            await on_check(facts)
        if not facts.idle or facts.at_ms <= since_ms or (first is not None and facts.progress != first.progress):
            first = None  # busy (or it moved since the first idle check): start over
        elif first is None:
            first = facts
            await ask_for_a_poll_round(redis, settings)
        settled = first is not None and facts is not first and not facts.behind(first.at_ms)
        said = _progress(facts, first, said)
        interrupted = stop is not None and stop.is_set()
        if settled or interrupted or time.monotonic() - started >= limit_s:
            break
        await asyncio.sleep(interval)
    logger.info("settling: {} after {:.1f}s", "settled" if settled else "gave up", time.monotonic() - started)
    settling = Settling(settled=settled, seconds=time.monotonic() - started, limit_s=limit_s, facts=facts,
                        mark_ms=first.at_ms if first is not None else since_ms, interrupted=interrupted and not settled)
    if not settled:
        settling.stuck = await stuck_entries(redis, settings, limit=show)
    settling.provisions = await provisioning(redis, settings, explain=True)
    return settling


async def ask_for_a_poll_round(redis: Redis, settings: Settings) -> None:
    """Hint every poller to read all its entities now, as a webhook would (idle entities have backed off
    to ``poll_max_interval``; the round that proves the quiet should not wait for them)."""
    keys = Keys(settings.namespace)
    async with redis.pipeline(transaction=False) as pipe:
        for system in settings.systems:
            pipe.xadd(keys.intake(system), {"entity": ""}, maxlen=1000, approximate=True)
        await pipe.execute()


def _progress(facts: Facts, first: Facts | None, said: str) -> str:
    """Log the settling state when it changes (the log then tells what took the time)."""
    behind = facts.behind(first.at_ms) if first is not None else []
    now = facts.summary() + (f"; idle, waiting for a poll round: {', '.join(behind)}" if first is not None else "")
    if now != said:
        logger.info("settling: {}", now)
    return now
