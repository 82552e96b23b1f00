"""Metrics an operator acts on, beside the pipeline's (``accord.pipeline_metrics``): whether each source is
still read, API errors by what to do about them, end-to-end latency, build info, reconciliation's
schedule, and the label sets every counter starts at 0 with (so ``increase(...[15m]) > 0`` catches the
first exception of a label set: a series that appears at 1 has no increase).

All read from Redis at scrape time, with a fixed number of round trips whatever the record count.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
import typing
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis.asyncio import Redis

from accord import __version__
from accord.config.settings import ReconcileJob, Settings
from accord.connectors.base import ERROR_CLASSES
from accord.streams.exceptions import Reason
from accord.streams.keys import Keys
from accord.streams.latency import histogram
from accord.streams.state import Cursors, Stats

Labels = tuple[str, ...]
CRON_LOOKAHEAD = 15  # runs of a cron schedule whose longest gap is its interval


def known_label_sets(settings: Settings) -> dict[str, list[Labels]]:
    """Every label set a counter of this configuration can have, by metric name (values start at 0)."""
    held = [(system, entity) for entity, ent in settings.entities.items() for system in ent.systems]
    reasons = typing.get_args(Reason)
    per_system_entity = ("accord_records_polled", "accord_records_published", "accord_records_echo_dropped",
                         "accord_governance_violations", "accord_records_unowned_new", "accord_mapping_errors",
                         "accord_records_written", "accord_records_created", "accord_records_matched",
                         "accord_schema_drift")
    known: dict[str, list[Labels]] = {name: list(held) for name in per_system_entity}
    known["accord_exceptions"] = [(s, e, r) for s, e in held for r in reasons]
    known["accord_records_deferred"] = known["accord_records_parked"] = [(e,) for e in settings.entities]
    known["accord_stream_stuck_entries"] = [(e, t) for e in settings.entities for t in settings.targets_of(e)]
    for name in ("accord_api_calls", "accord_api_rate_limited", "accord_api_errors"):
        known[name] = [(s,) for s in settings.systems]
    return known


async def ops_families(redis: Redis, settings: Settings, keys: Keys, api: dict[Labels, int]) -> list[Any]:
    """The families of this module (``api``: the ``stats:api`` counters, already read)."""
    return [_build_info(), *(await _poll_families(redis, settings, keys)), _api_error_family(settings, api),
            _latency_family(settings, await Stats(keys).read(redis, Stats.LATENCY)), _reconcile_schedule(settings)]


def _build_info() -> Any:
    family = GaugeMetricFamily("accord_build_info", "Accord's version and runtime (always 1)",
                               labels=["version", "python"])
    family.add_metric([__version__, platform.python_version()], 1.0)
    return family


async def _poll_families(redis: Redis, settings: Settings, keys: Keys) -> list[Any]:
    """When each (system, entity) last committed a page, and for how long its polls have been failing."""
    pairs = [(system, entity) for entity, ent in settings.entities.items() for system in ent.systems]
    health = await Cursors(redis, keys).health(pairs)
    last = GaugeMetricFamily("accord_poll_last_success_timestamp_seconds",
                             "When a poll of the entity in the system last committed a page", labels=["system", "entity"])
    failing = GaugeMetricFamily("accord_poll_failing_seconds", "How long the entity's polls in the system have "
                                "been failing without a success (0: the last poll succeeded)", labels=["system", "entity"])
    now = time.time()
    for (system, entity), (ok_ms, failing_ms) in health.items():
        if ok_ms is not None:
            last.add_metric([system, entity], ok_ms / 1000)
        failing.add_metric([system, entity], max(0.0, now - failing_ms / 1000) if failing_ms else 0.0)
    return [last, failing]


def _api_error_family(settings: Settings, api: dict[Labels, int]) -> Any:
    family = CounterMetricFamily("accord_api_errors_by_class", "Failed API calls (and unmappable values) by "
                                 "system and class: transport, auth, rate_limited, server, client, bad_body, "
                                 "unmappable", labels=["system", "class"])
    for system in settings.systems:
        for kind in ERROR_CLASSES:
            family.add_metric([system, kind], float(api.get((f"error:{kind}", system), 0)))
    return family


def _latency_family(settings: Settings, raw: dict[Labels, int]) -> Any:
    family = HistogramMetricFamily("accord_sync_latency_seconds", "From a change in its source system to its "
                                   "write in a target", labels=["entity", "target"])
    for entity in settings.entities:
        for target in settings.targets_of(entity):
            buckets, total = histogram(raw, entity, target)
            family.add_metric([entity, target], buckets, total)
    return family


def _reconcile_schedule(settings: Settings) -> Any:
    """How often each scheduled reconciliation job should run (an alert compares its last run with it)."""
    family = GaugeMetricFamily("accord_reconcile_interval_seconds", "Configured time between two runs of a "
                               "reconciliation job (on-demand jobs are absent)", labels=["job"])
    for name, job in settings.reconcile.items():
        interval = reconcile_interval(job)
        if interval is not None:
            family.add_metric([name], interval)
    return family


def reconcile_interval(job: ReconcileJob) -> float | None:
    """``interval``, or the longest gap between a cron schedule's next runs (a weekday job's weekend);
    ``None`` for on-demand jobs."""
    if job.interval is not None:
        return float(job.interval)
    if job.cron is None:
        return None
    import cronsim

    runs = cronsim.CronSim(job.cron, dt.datetime.now(dt.UTC))
    times = [next(runs) for _ in range(CRON_LOOKAHEAD)]
    return max((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False))
