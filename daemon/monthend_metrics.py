"""The operator's view of month-end on /metrics: how much of each API budget is used, how often pollers
really poll, and when each backlog will have drained at its recent pace.

Everything but the drain rate is read from Redis at scrape time, like the rest of ``accord.pipeline_metrics``.
A rate needs samples over time, so the web app keeps one ``DrainRates`` between scrapes: the acked totals
of each (entity, target) seen in the last ``horizon`` seconds. It lives in the daemon's process only; after a
restart the ETA is missing until two scrapes have been seen (a gap, not a wrong value).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis.asyncio import Redis

from accord.actors.budget import RedisBudgetStore
from accord.config.settings import Settings
from accord.config.types import RateLimit
from accord.streams.keys import Keys
from accord.streams.replies import text_map

if TYPE_CHECKING:  # pipeline_metrics.render imports this module
    from accord.pipeline_metrics import Counters

HORIZON = 300.0  # seconds of acked totals a drain rate is taken over
MAX_SAMPLES = 1024  # per pair: a scraper far more eager than Prometheus shortens the horizon, not memory


def window_label(window: RateLimit) -> str:
    """``500/60s``, or ``40/60s batch`` for a window that counts one kind of request only."""
    label = f"{window.requests}/{window.period:g}s"
    return label if window.kind == "*" else f"{label} {window.kind}"


@dataclass
class DrainRates:
    """Acked totals per (entity, target) sampled at each scrape; the drain rate over the last ``horizon``.

    ``clock`` is monotonic seconds. A total lower than the last one (Redis lost its counters) starts that
    pair's samples afresh.
    """

    horizon: float = HORIZON
    clock: Callable[[], float] = time.monotonic
    _samples: dict[tuple[str, str], deque[tuple[float, int]]] = field(default_factory=dict)

    def observe(self, acked: Mapping[tuple[str, str], int]) -> None:
        now = self.clock()
        for pair, total in acked.items():
            samples = self._samples.setdefault(pair, deque(maxlen=MAX_SAMPLES))
            if samples and total < samples[-1][1]:
                samples.clear()
            samples.append((now, total))
            while samples[0][0] < now - self.horizon:
                samples.popleft()

    def rate(self, pair: tuple[str, str]) -> float | None:
        """Acked per second from the oldest sample in the horizon to the newest (None: one sample or none)."""
        samples = self._samples.get(pair)
        if not samples or samples[-1][0] <= samples[0][0]:
            return None
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        return (n1 - n0) / (t1 - t0)

    def eta(self, pair: tuple[str, str], lag: int) -> float | None:
        """Seconds until ``lag`` entries are acked at the recent rate: 0 when there is no lag, +Inf when
        there is and nothing drained, None while the rate is unknown."""
        if lag <= 0:
            return 0.0
        rate = self.rate(pair)
        if rate is None:
            return None
        return lag / rate if rate > 0 else math.inf


def lag_by_pair(counters: Counters) -> dict[tuple[str, str], int]:
    """Entries not yet acked per (entity, target), every partition summed (every pair, 0 when none)."""
    lag = dict.fromkeys(counters.acked_by, 0)
    for (entity, target, _partition), behind in counters.lag.items():
        lag[entity, target] = lag.get((entity, target), 0) + behind
    return lag


def drain_family(counters: Counters, drains: DrainRates) -> Any:
    """Record this scrape's acked totals in ``drains`` and give each pair's ETA."""
    drains.observe(counters.acked_by)
    family = GaugeMetricFamily("accord_backlog_drain_eta_seconds",
                               "Seconds until the change records not yet acked by the target group are, at the "
                               "rate they were acked over the last few minutes (+Inf: none were)",
                               labels=["entity", "target"])
    for (entity, target), lag in sorted(lag_by_pair(counters).items()):
        eta = drains.eta((entity, target), lag)
        if eta is not None:
            family.add_metric([entity, target], eta)
    return family


async def budget_families(redis: Redis, settings: Settings, keys: Keys) -> list[Any]:
    """Each system's budget windows' use and its grant, refusal and throttle counters."""
    used = GaugeMetricFamily("accord_api_budget_used_ratio",
                             "Grants in the window's last period over its limit (1: saturated; every caller "
                             "of the account shares it)", labels=["system", "window"])
    counters = [(CounterMetricFamily(name, doc, labels=["system"]), field_name) for name, field_name, doc in (
        ("accord_api_budget_grants", "granted", "Requests the account's budget granted"),
        ("accord_api_budget_refusals", "denied", "Requests the account's budget refused (the caller waited)"),
        ("accord_api_budget_throttles", "throttled", "Throttle signals (429, quota usage) that paused every caller"),
    )]
    for system, system_settings in sorted(settings.systems.items()):
        store = RedisBudgetStore(redis, keys, system, system_settings.limits())
        for window, ratio in (await store.used()).items():
            used.add_metric([system, window_label(window)], ratio)
        counts = await store.counts()
        for family, field_name in counters:
            family.add_metric([system], float(counts[field_name]))
    return [used, *(family for family, _ in counters)]


async def poll_interval_family(redis: Redis, settings: Settings, keys: Keys) -> Any:
    family = GaugeMetricFamily("accord_poll_interval_seconds",
                               "Seconds between the last two polls of the entity (adaptive: longer while "
                               "polls find nothing)", labels=["system", "entity"])
    async with redis.pipeline(transaction=False) as pipe:
        systems = sorted(settings.systems)
        for system in systems:
            pipe.hgetall(keys.poll_pace(system))
        replies = await pipe.execute()
    for system, reply in zip(systems, replies, strict=True):
        for entity, seconds in sorted(text_map(reply).items()):
            family.add_metric([system, entity], _seconds(seconds))
    return family


def _seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan


async def monthend_families(redis: Redis, settings: Settings, keys: Keys, counters: Counters,
                            drains: DrainRates | None) -> list[Any]:
    """Every family of this module (the drain ETA only when the app keeps ``drains`` between scrapes)."""
    families = [*await budget_families(redis, settings, keys), await poll_interval_family(redis, settings, keys)]
    if drains is not None:
        families.append(drain_family(counters, drains))
    return families
