"""Prometheus metrics, read from Redis at scrape time (right however many Ray nodes run actors).

Pipeline gauges come from the streams themselves (XINFO GROUPS, XPENDING, XRANGE over one entry) and
from the produced/acked counters written in the same MULTI as XADD and XACK; record and API counters
come from the ``stats:*`` hashes actors increment. Nothing is counted with XRANGE over a backlog.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from accord.actors.provision.process import Provisions
from accord.business_metrics import business_families
from accord.config.settings import Settings
from accord.monthend_metrics import DrainRates, monthend_families
from accord.ops_metrics import known_label_sets, ops_families
from accord.streams.exception_ledger import REASONS, open_kinds
from accord.streams.keys import Keys
from accord.streams.log import id_ms
from accord.streams.replies import int_map, stream_entries, text
from accord.streams.state import Stats


@dataclass(frozen=True)
class SlotStats:
    entity: str
    target: str
    partition: int
    lag_entries: int
    lag_seconds: float
    pending: int
    oldest_pending_seconds: float
    length: int


async def slot_stats(redis: Redis, settings: Settings, keys: Keys, now_ms: int | None = None) -> list[SlotStats]:
    """Lag, pending and age for every (entity, target group, partition)."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    streams = [(e, p, keys.changes(e, p)) for e in settings.entities for p in range(settings.streams.partitions)]
    async with redis.pipeline(transaction=False) as pipe:
        for _e, _p, stream in streams:
            pipe.xinfo_groups(stream)
            pipe.xlen(stream)
        for entity in settings.entities:
            pipe.hgetall(keys.produced(entity))
            for target in settings.targets_of(entity):
                pipe.hgetall(keys.acked(entity, target))
        replies = await pipe.execute(raise_on_error=False)
    infos, lengths = replies[0: 2 * len(streams): 2], replies[1: 2 * len(streams): 2]
    lag = _lag_in_entries(settings, iter(replies[2 * len(streams):]))
    probes = _probes(streams, infos, lengths)
    async with redis.pipeline(transaction=False) as pipe:
        for probe in probes:
            pipe.xrange(probe.stream, min="(" + text(probe.group["last-delivered-id"]), max="+", count=1)
            pipe.xpending_range(probe.stream, text(probe.group["name"]), min="-", max="+", count=1)
        details = await pipe.execute(raise_on_error=False)
    return [_slot(probe, details[2 * i], details[2 * i + 1], lag, now_ms) for i, probe in enumerate(probes)]


@dataclass(frozen=True)
class _Probe:
    """One consumer group on one partition stream, as ``XINFO GROUPS`` describes it."""

    entity: str
    target: str
    partition: int
    stream: str
    group: dict[str, Any]
    length: int


def _lag_in_entries(settings: Settings, counters: Iterator[Any]) -> dict[tuple[str, str, int], int]:
    """Produced minus acked per (entity, target, partition), from the counters in ``slot_stats``'s order."""
    lag: dict[tuple[str, str, int], int] = {}
    for entity in settings.entities:
        produced = int_map(next(counters))
        for target in settings.targets_of(entity):
            acked = int_map(next(counters))
            for p in range(settings.streams.partitions):
                lag[entity, target, p] = produced.get(str(p), 0) - acked.get(str(p), 0)
    return lag


def _probes(streams: list[tuple[str, int, str]], infos: list[Any], lengths: list[Any]) -> list[_Probe]:
    probes = []
    for (entity, p, stream), info, length in zip(streams, infos, lengths, strict=True):
        if isinstance(info, Exception):
            continue
        for group in info:
            target = text(group["name"]).removeprefix("to:")
            probes.append(_Probe(entity, target, p, stream, group, int(length) if not isinstance(length, Exception) else 0))
    return probes


def _slot(probe: _Probe, undelivered: Any, oldest: Any, lag: dict[tuple[str, str, int], int], now_ms: int) -> SlotStats:
    first = [] if isinstance(undelivered, Exception) else stream_entries(undelivered)
    lag_s = (now_ms - id_ms(first[0][0])) / 1000 if first else 0.0
    idle = oldest[0]["time_since_delivered"] / 1000 if oldest and not isinstance(oldest, Exception) else 0.0
    return SlotStats(entity=probe.entity, target=probe.target, partition=probe.partition,
                     lag_entries=max(0, lag.get((probe.entity, probe.target, probe.partition), 0)),
                     lag_seconds=max(0.0, lag_s), pending=int(probe.group.get("pending", 0)),
                     oldest_pending_seconds=idle, length=probe.length)


@dataclass(frozen=True)
class Counters:
    """The produced/acked counters (written atomically with XADD and XACK), summed and as lag."""

    produced: int  # change records ever added, every entity and partition
    acked: int  # change records ever acked, every target group
    lag: dict[tuple[str, str, int], int]  # (entity, target, partition) -> produced − acked, where positive
    acked_by: dict[tuple[str, str], int] = field(default_factory=dict)  # (entity, target) -> acked, every partition


async def read_counters(redis: Redis, settings: Settings, keys: Keys) -> Counters:
    """Every produced and acked counter in one round trip (no stream reads)."""
    pairs = [(entity, target) for entity in settings.entities for target in settings.targets_of(entity)]
    async with redis.pipeline(transaction=False) as pipe:
        for entity in settings.entities:
            pipe.hgetall(keys.produced(entity))
        for entity, target in pairs:
            pipe.hgetall(keys.acked(entity, target))
        replies = await pipe.execute()
    n = len(settings.entities)
    produced = {e: int_map(r) for e, r in zip(settings.entities, replies[:n], strict=True)}
    lag: dict[tuple[str, str, int], int] = {}
    acked_by: dict[tuple[str, str], int] = {}
    for (entity, target), acked_raw in zip(pairs, replies[n:], strict=True):
        acked = int_map(acked_raw)
        acked_by[entity, target] = sum(acked.values())
        for p in range(settings.streams.partitions):
            behind = produced[entity].get(str(p), 0) - acked.get(str(p), 0)
            if behind > 0:
                lag[(entity, target, p)] = behind
    return Counters(produced=sum(sum(c.values()) for c in produced.values()), acked=sum(acked_by.values()), lag=lag,
                    acked_by=acked_by)


class _Snapshot(Collector):
    def __init__(self, families: Iterable[Any]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Any]:
        return self.families


_RECORD_KINDS = {
    # stats:records field layout -> metric, labels
    "polled": ("accord_records_polled", ("system", "entity")),
    "published": ("accord_records_published", ("system", "entity")),
    "echoes": ("accord_records_echo_dropped", ("system", "entity")),
    "violations": ("accord_governance_violations", ("system", "entity")),
    "unowned_new": ("accord_records_unowned_new", ("system", "entity")),
    "mapping_errors": ("accord_mapping_errors", ("system", "entity")),
    "written": ("accord_records_written", ("system", "entity")),
    "created": ("accord_records_created", ("system", "entity")),
    "skipped": ("accord_records_skipped", ("entity", "reason")),
    "deferred": ("accord_records_deferred", ("entity",)),
    "parked": ("accord_records_parked", ("entity",)),
    "matched": ("accord_records_matched", ("system", "entity")),
    "drift": ("accord_schema_drift", ("system", "entity")),
    "exceptions": ("accord_exceptions", ("system", "entity", "reason")),
    "stuck": ("accord_stream_stuck_entries", ("entity", "target")),
}

_API_KINDS = {
    "calls": "accord_api_calls",
    "rate_limited": "accord_api_rate_limited",
    "errors": "accord_api_errors",
}


async def render(redis: Redis, settings: Settings, supervisor_status: dict[str, Any] | None = None,
                 drains: DrainRates | None = None, now_ms: int | None = None) -> bytes:
    """The full /metrics page (``drains``: the acked totals the app keeps between scrapes, for drain ETAs;
    ``now_ms``: the business metrics' clock, the wall clock unless a test gives one)."""
    keys = Keys(settings.namespace)
    stats = Stats(keys)
    families: list[Any] = []
    families.extend(_slot_families(await slot_stats(redis, settings, keys)))
    families.extend(await monthend_families(redis, settings, keys, await read_counters(redis, settings, keys), drains))
    api = await stats.read(redis, Stats.API)
    families.extend(_counter_families(await stats.read(redis, Stats.RECORDS), api, known_label_sets(settings)))
    families.extend(await ops_families(redis, settings, keys, api))
    exc_len = GaugeMetricFamily("accord_exceptions_stream_length", "Entries in the exceptions stream")
    exc_len.add_metric([], float(await redis.xlen(keys.exceptions())))
    families.append(exc_len)
    families.extend(await _reconcile_families(redis, settings, keys))
    families.extend(await _open_exceptions_families(redis, keys, settings))
    families.extend(await business_families(redis, settings, keys, now_ms or int(time.time() * 1000)))
    if settings.provisioning is not None:
        families.append(await _provisioning_family(redis, keys))
    if supervisor_status is not None:
        families.extend(_actor_families(supervisor_status))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(registry)


async def _reconcile_families(redis: Redis, settings: Settings, keys: Keys) -> list[Any]:
    findings = GaugeMetricFamily("accord_reconcile_findings", "Findings of the last run of a reconciliation job",
                                 labels=["job", "kind"])
    last = GaugeMetricFamily("accord_reconcile_last_run_timestamp_seconds", "When a reconciliation job last ran",
                             labels=["job"])
    for job in settings.reconcile:
        values = await redis.hmget(keys.reconcile(job), ["ran_ms", "missing", "extra", "mismatched", "totals_off"])
        if values[0] is None:
            continue
        last.add_metric([job], int(values[0]) / 1000)
        for kind, value in zip(("missing", "extra", "mismatched", "totals_off"), values[1:], strict=True):
            findings.add_metric([job, kind], float(value or 0))
    return [findings, last]


async def _provisioning_family(redis: Redis, keys: Keys) -> Any:
    family = GaugeMetricFamily("accord_provisioning_processes", "Closed-won provisioning processes by step "
                               "(state: running, parked or done)", labels=["step", "state"])
    for (step, state), n in (await Provisions(redis, keys).counts()).items():
        family.add_metric([step, state], float(n))
    return family


async def _open_exceptions_families(redis: Redis, keys: Keys, settings: Settings) -> list[Any]:
    """Open exceptions per entity and reason (what the desk still has to handle), and the oldest one's age,
    counted from the desk's ledger (two O(1) reads per label set; every configured entity and reason
    starts at 0)."""
    family = GaugeMetricFamily("accord_exceptions_open", "Exceptions not yet retried, resolved, skipped or closed",
                               labels=["entity", "reason"])
    oldest = GaugeMetricFamily("accord_exceptions_open_oldest_seconds", "Age of the oldest open exception "
                               "(0 when none is open)", labels=["entity", "reason"])
    kinds = [(entity, reason) for entity in sorted(settings.entities) for reason in REASONS]
    now = time.time()
    for (entity, reason), kind in (await open_kinds(redis, keys, kinds)).items():
        family.add_metric([entity, reason], float(kind.count))
        age = max(0.0, now - kind.oldest_ms / 1000) if kind.oldest_ms is not None else 0.0
        oldest.add_metric([entity, reason], age)
    return [family, oldest]


def _slot_families(slots: list[SlotStats]) -> list[Any]:
    labels = ["entity", "target", "partition"]
    specs = [
        ("accord_stream_lag_entries", "Change records not yet acked by the target group", "lag_entries"),
        ("accord_stream_lag_seconds", "Age of the oldest change record not yet delivered to the group",
         "lag_seconds"),
        ("accord_stream_pending", "Delivered but unacked change records (PEL size)", "pending"),
        ("accord_stream_oldest_pending_seconds", "Idle time of the oldest pending change record",
         "oldest_pending_seconds"),
    ]
    families = []
    for name, doc, attr in specs:
        family = GaugeMetricFamily(name, doc, labels=labels)
        for s in slots:
            family.add_metric([s.entity, s.target, str(s.partition)], float(getattr(s, attr)))
        families.append(family)
    length = GaugeMetricFamily("accord_stream_length", "Entries retained in the partition stream",
                               labels=["entity", "partition"])
    for s in {(s.entity, s.partition): s for s in slots}.values():
        length.add_metric([s.entity, str(s.partition)], float(s.length))
    families.append(length)
    return families


def _counter_families(records: dict[tuple[str, ...], int], api: dict[tuple[str, ...], int],
                      known: dict[str, list[tuple[str, ...]]]) -> list[Any]:
    """The ``stats:records`` and ``stats:api`` counters; every ``known`` label set is there, at 0 if need be."""
    values: dict[str, dict[tuple[str, ...], float]] = {name: dict.fromkeys(sets, 0.0) for name, sets in known.items()}
    labels_of = {name: list(labels) for name, labels in _RECORD_KINDS.values()}
    for parts, count in records.items():
        spec = _RECORD_KINDS.get(parts[0])
        if spec is not None and len(parts) - 1 == len(spec[1]):
            values.setdefault(spec[0], {})[parts[1:]] = float(count)
    for parts, count in api.items():
        api_name = _API_KINDS.get(parts[0])
        if api_name is not None and len(parts) == 2:
            values.setdefault(api_name, {})[parts[1:]] = float(count)
    families = []
    for name, series in sorted(values.items()):
        family = CounterMetricFamily(name, name.replace("_", " "), labels=labels_of.get(name, ["system"]))
        for label_values, total in sorted(series.items()):
            family.add_metric(list(label_values), total)
        families.append(family)
    return families


def _actor_families(status: dict[str, Any]) -> list[Any]:
    up = GaugeMetricFamily("accord_actor_up", "1 when the actor answers health checks and runs",
                           labels=["actor"])
    restarts = CounterMetricFamily("accord_actor_restarts", "Times the supervisor restarted the actor loop",
                                   labels=["actor"])
    for name, actor in status.get("actors", {}).items():
        up.add_metric([name], 1.0 if actor.get("healthy") else 0.0)
        restarts.add_metric([name], float(actor.get("restarts", 0)))
    return [up, restarts]
