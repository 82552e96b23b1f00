"""The demo's report on API use and freshness, measured, not configured.

* **API calls per change**: every request a sandbox answered during the run (Accord's polls, writes,
  reads and token calls; the firm's own edits are not API calls), over the changes Accord synced to or
  from that system (records written there plus changes published from there).
* **Freshness of active entities**: how long a change waited to be seen (``Keys.poll_finds``: for each
  poll of an entity still active — it found records within its active window, ``actors.poll.pace`` —
  that found records, the time since its previous poll; an upper bound of the wait) plus how long it then
  took to reach its target (the audit trail: from the ``published`` that led to the writes of each flow
  to its first ``written`` in its last target; a record waiting for one it references, e.g. a task for its
  project, waits here too). Both at the 95th percentile, against the entity's base ``poll_interval`` plus
  2 s. The first change of an entity after an idle spell waited for a backed-off poll (the price of
  adaptive polling): it is shown apart, with its wait, not hidden.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from redis.asyncio import Redis

from accord.actors.poll.pace import IDLE_MARK
from accord.config.settings import Settings
from accord.sandboxes.firm.world import World
from accord.streams.audit import read_trail
from accord.streams.keys import Keys
from accord.streams.replies import text
from accord.streams.state import Stats

MAX_CALLS_PER_CHANGE = 2.0
ENDPOINTS_SHOWN = 6  # the busiest endpoints named under each system's API use
PIPELINE_ALLOWANCE_S = 2.0


@dataclass(frozen=True)
class ApiUse:
    system: str
    calls: int
    changes: int
    by_endpoint: tuple[tuple[str, int], ...] = ()  # the calls per endpoint, most first

    @property
    def per_change(self) -> float:
        return self.calls / max(1, self.changes)

    def line(self) -> str:
        verdict = "ok" if self.per_change <= MAX_CALLS_PER_CHANGE else f"over {MAX_CALLS_PER_CHANGE:g}"
        line = (f"  {self.system:<4} {self.calls:>6} API calls / {self.changes:>5} changes synced to or from it = "
                f"{self.per_change:.2f} per change ({verdict})")
        if not self.by_endpoint:
            return line
        return line + "\n         " + ", ".join(f"{endpoint} {n}" for endpoint, n in self.by_endpoint[:ENDPOINTS_SHOWN])


@dataclass(frozen=True)
class Freshness:
    system: str
    entity: str
    base_s: float
    seen_p95_s: float  # how long a change of the active entity waited to be seen, at most (95th pct.)
    written_p95_s: float  # from published to written in its target (95th pct.)
    flows: int
    idle_waits: tuple[float, ...] = ()  # how long first changes after an idle spell waited (not in the p95)

    @property
    def total_s(self) -> float:
        return self.seen_p95_s + self.written_p95_s

    @property
    def ok(self) -> bool:
        return self.total_s <= self.base_s + PIPELINE_ALLOWANCE_S

    def line(self) -> str:
        line = (f"  {self.system}.{self.entity:<11} seen within {self.seen_p95_s:4.1f}s + written within "
                f"{self.written_p95_s:4.1f}s = {self.total_s:4.1f}s (p95 of {self.flows} flows) vs base "
                f"{self.base_s:g}s + {PIPELINE_ALLOWANCE_S:g}s: {'ok' if self.ok else 'late'}")
        if not self.idle_waits:
            return line
        return line + (f"\n    and {len(self.idle_waits)} first change(s) after an idle spell, seen within "
                       f"{max(self.idle_waits):.1f}s (the entity's backed-off poll)")


async def api_use(redis: Redis, settings: Settings, world: World) -> list[ApiUse]:
    records = await Stats(Keys(settings.namespace)).read(redis, Stats.RECORDS)
    states = {"crm": world.crm, "psa": world.psa, "erp": world.erp}
    return [ApiUse(system, state.requests.count(),
                   sum(n for key, n in records.items() if key[0] in ("written", "published") and key[1] == system),
                   tuple(Counter(e.endpoint for e in state.requests.entries()).most_common()))
            for system, state in states.items() if system in settings.systems]


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


async def freshness(redis: Redis, settings: Settings, since_ms: int = 0) -> list[Freshness]:
    """Per (source system, entity) with flows published at or after ``since_ms`` (the initial load of the
    records a firm already has is a backlog, not a measure of freshness)."""
    keys = Keys(settings.namespace)
    written = await _published_to_written(redis, keys, since_ms)
    out = []
    for (system, entity), delays in sorted(written.items()):
        found = [text(v) for v in await redis.lrange(keys.poll_finds(system, entity), 0, -1)]
        waits = [float(v) for v in found if not v.endswith(IDLE_MARK)]
        idle = tuple(float(v.removesuffix(IDLE_MARK)) for v in found if v.endswith(IDLE_MARK))
        base = float(settings.entities[entity].poll_interval)
        out.append(Freshness(system, entity, base, p95(waits) if waits else base, p95(delays), len(delays), idle))
    return out


async def _published_to_written(redis: Redis, keys: Keys, since_ms: int) -> dict[tuple[str, str], list[float]]:
    """For each flow in the audit trail published at or after ``since_ms``: seconds from the ``published``
    that led to the first ``written`` in each of its targets (a time entry published as a draft and again
    once approved counts from the approval; a CRM account counts until it is in the PSA and in the ERP)."""
    delays: dict[tuple[str, str], list[float]] = defaultdict(list)
    async for key in redis.scan_iter(match=f"{keys.prefix}trace:*", count=500):
        published: tuple[str, str, int] | None = None
        reached: dict[str, int] = {}  # target -> first written there after the publish
        for event in await read_trail(redis, text(key)):
            if event.kind.startswith("published") and not reached:  # the last one before a write
                published = (event.system, event.entity, event.at_ms)
            elif event.kind == "written" and published is not None and event.system != published[0]:
                reached.setdefault(event.system, event.at_ms)  # not a write back to where it came from
        if published is not None and reached and published[2] >= since_ms:
            delays[(published[0], published[1])].append(max(0, max(reached.values()) - published[2]) / 1000)
    return delays


def report_lines(uses: list[ApiUse], fresh: list[Freshness]) -> list[str]:
    lines = ["API use (every request each sandbox answered during the run):", *(u.line() for u in uses),
             "freshness of the changes made during the activity (measured: poll waits and the audit trail):", *(f.line() for f in fresh)]
    return lines
