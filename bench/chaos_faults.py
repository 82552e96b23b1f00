"""The chaos benchmark's fault schedule: when each ``kill -9`` of an actor and of Redis happens, and the
sandbox storms (5xx, timeouts, responses lost after the server acted, 429 bursts with ``Retry-After``):
``storms`` episodes spread over the fault window, a third of it in all, as a real service's bad minutes.

Everything random is drawn from one seeded generator, so ``--seed`` replays the same schedule (which
records the faults hit still depends on the machine's timing).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from accord.redis_server import EmbeddedRedis
from accord.sandboxes.faults import FaultKind
from accord.sandboxes.firm.world import World
from accord.sandboxes.server import SandboxState
from bench.kills import ActorKiller

# the storm's kinds and their weights: mostly 5xx, then responses lost after the server acted, then timeouts
STORM_KINDS: list[FaultKind] = ["500", "503", "drop", "timeout"]
STORM_WEIGHTS = [0.35, 0.35, 0.2, 0.1]
TIMEOUT_HOLD_S = 5.0  # a timed-out request is held this long (the connectors give up after CLIENT_TIMEOUT_S)
CLIENT_TIMEOUT_S = 4.0
BURST_RATE, BURST_LENGTH, RETRY_AFTER_S = 0.01, 5, 1.0
# a dropped token response would rotate QuickBooks' refresh token and lose the new one for good: a real
# hazard, but one that ends the run rather than testing the pipeline, so token endpoints are spared
SPARED = ["token"]
REDIS_DOWN_S = 2.0


STORM_SHARE = 1 / 3  # of the fault window, in storms


@dataclass
class Schedule:
    """Seconds after the workload starts at which each fault fires."""

    window_s: float
    kills: list[float]
    redis_kills: list[float]
    storm_rate: float
    seed: int
    storms: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds) of each storm

    @classmethod
    def plan(cls, window_s: float, kills: int, redis_kills: int, storm_rate: float, seed: int,
             storms: int = 3) -> Schedule:
        """Kills at random over the middle 80% of the window; Redis crashes and storms evenly spaced."""
        rng = random.Random(seed)
        length = window_s * STORM_SHARE / max(1, storms)
        return cls(window_s=window_s,
                   kills=sorted(rng.uniform(0.1, 0.9) * window_s for _ in range(kills)),
                   redis_kills=[(i + 1) / (redis_kills + 1) * window_s for i in range(redis_kills)],
                   storm_rate=storm_rate, seed=seed,
                   storms=[((i + 0.5) * window_s / storms - length / 2, length) for i in range(storms)])


def sandboxes(world: World) -> dict[str, SandboxState]:
    return {"crm": world.crm, "psa": world.psa, "erp": world.erp}


def start_storms(world: World, rate: float, seed: int) -> None:
    """A storm on every endpoint of every sandbox (but the token endpoints), plus bursts of 429s."""
    for i, state in enumerate(sandboxes(world).values()):
        if rate > 0:
            state.faults.storm(rate, STORM_KINDS, weights=STORM_WEIGHTS, exclude=SPARED, delay=TIMEOUT_HOLD_S,
                               seed=seed * 100 + i)
        state.faults.storm(BURST_RATE, ["429"], exclude=SPARED, burst=BURST_LENGTH, retry_after=RETRY_AFTER_S,
                           seed=seed * 100 + 50 + i)


def calm_storms(world: World) -> None:
    for state in sandboxes(world).values():
        state.faults.calm()


def injected(world: World) -> dict[str, dict[str, int]]:
    """Sandbox faults fired so far, per system and kind."""
    return {system: state.faults.injected() for system, state in sandboxes(world).items()}


@dataclass
class FaultLog:
    """What the schedule did (times are ``time.monotonic()``)."""

    started: float = field(default_factory=time.monotonic)
    last_fault: float = 0.0
    last_fault_wall: float = 0.0  # time.time() of the last fault (the sandboxes' request log uses wall time)
    redis_restarts: int = 0
    redis_down_s: float = 0.0
    missed_kills: int = 0
    events: list[str] = field(default_factory=list)

    def mark(self, text: str) -> None:
        self.last_fault, self.last_fault_wall = time.monotonic(), time.time()
        line = f"t+{self.last_fault - self.started:6.1f}s {text}"
        self.events.append(line)
        print(f"  fault: {line}", flush=True)


async def crash_redis(server: EmbeddedRedis, log: FaultLog, down_s: float = REDIS_DOWN_S) -> None:
    """``kill -9`` the Redis server, leave it down ``down_s``, restart it on its AOF."""
    await asyncio.to_thread(server.kill)
    log.mark(f"redis killed (SIGKILL), down for {down_s:g}s")
    began = time.monotonic()
    await asyncio.sleep(down_s)
    await asyncio.to_thread(server.restart)
    log.redis_restarts += 1
    log.redis_down_s += time.monotonic() - began
    log.mark("redis restarted on its AOF")


async def _at(started: float, offset: float) -> None:
    """Sleep until ``offset`` seconds after ``started`` (a timetable, not a wait for a condition)."""
    await asyncio.sleep(max(0.0, started + offset - time.monotonic()))


async def play(schedule: Schedule, world: World, server: EmbeddedRedis, killer: ActorKiller, log: FaultLog) -> None:
    """Run the schedule from ``log.started``: storms, kills and Redis crashes at their times, until the end
    of the window."""
    events: list[tuple[float, str, int]] = sorted(
        [(t, "kill", 0) for t in schedule.kills] + [(t, "redis", 0) for t in schedule.redis_kills]
        + [(t, "storm", i) for i, (t, _) in enumerate(schedule.storms)]
        + [(t + length, "calm", i) for i, (t, length) in enumerate(schedule.storms)])
    for offset, kind, i in events:
        await _at(log.started, offset)
        try:
            if kind == "redis":
                await crash_redis(server, log)
            elif kind == "kill":
                await _kill_one(killer, log)
            elif kind == "storm":
                start_storms(world, schedule.storm_rate, schedule.seed * 10 + i)
                log.mark(f"storm {i + 1} on for {schedule.storms[i][1]:.0f}s (rate {schedule.storm_rate:g}: "
                         f"{'/'.join(STORM_KINDS)}; 429 bursts of {BURST_LENGTH})")
            else:
                calm_storms(world)
                log.mark(f"storm {i + 1} over")
        except Exception:
            logger.exception("fault {} failed", kind)
    await _at(log.started, schedule.window_s)


async def _kill_one(killer: ActorKiller, log: FaultLog) -> None:
    kill = await killer.kill_random(within_s=30.0)
    if kill is None:
        log.missed_kills += 1
        log.events.append("kill skipped: no live actor process within 30 s")
        return
    log.mark(f"kill -9 {kill.actor} (pid {kill.pid})")


def as_json(schedule: Schedule, log: FaultLog, killer: ActorKiller, world: World) -> dict[str, Any]:
    by_system = injected(world)
    by_kind: dict[str, int] = {}
    for kinds in by_system.values():
        for kind, n in kinds.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
    return {"kills": len(killer.kills), "redis_restarts": log.redis_restarts,
            "faults_injected": sum(by_kind.values()) + len(killer.kills) + log.redis_restarts,
            "sandbox_faults": by_kind, "sandbox_faults_by_system": by_system,
            "killed": killer.report(log.started), "missed_kills": log.missed_kills,
            "redis_down_s": round(log.redis_down_s, 1), "window_s": schedule.window_s, "events": log.events}
