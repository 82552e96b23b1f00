"""Business-process KPIs and SLAs on /metrics, for finance and delivery leads (``streams.business`` keeps
the state incrementally; this module reads it with a fixed number of round trips, whatever the record count).

* ``accord_unbilled_hours`` / ``_amount`` / ``_records``: approved, billable time and expenses in the
  owner system (the PSA) that are not on an invoice there yet, by the age of their work day.
* ``accord_backlog_records`` / ``_oldest_seconds``: records (invoices, approved time, expenses) published
  by their source and not yet written to a target (``business.backlog``).
* ``accord_exceptions_open_by_process``: open exceptions by business process and age (the desk's ledger).
* ``accord_sla_breaches_total`` (every configured SLA from 0), ``accord_sla_at_risk``, ``accord_sla_overdue``.

Breaches are counted by ``streams.business.sweep``: the supervisor runs it every check, and each render
runs it first, so a scrape never shows an overdue item that is not yet counted.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis.asyncio import Redis

from accord.config.settings import Settings
from accord.streams import business as kpi
from accord.streams.exception_ledger import REASONS
from accord.streams.keys import Keys

SLA_LABELS = ["sla", "process", "severity"]


async def business_families(redis: Redis, settings: Settings, keys: Keys, now_ms: int) -> list[Any]:
    """Every family of this module, as of ``now_ms`` (epoch ms; tests pass their own clock)."""
    await kpi.sweep(redis, keys, settings.sla, now_ms)
    return [*await sla_families(redis, settings, keys, now_ms), *await unbilled_families(redis, settings, keys, now_ms),
            *await backlog_families(redis, settings, keys, now_ms),
            await exceptions_by_process(redis, settings, keys, now_ms), _invoice_run(settings, now_ms)]


async def sla_families(redis: Redis, settings: Settings, keys: Keys, now_ms: int) -> list[Any]:
    breaches = CounterMetricFamily("accord_sla_breaches", "Items that missed their SLA deadline (each counted "
                                   "once, when first seen past it)", labels=SLA_LABELS)
    at_risk = GaugeMetricFamily("accord_sla_at_risk", "Items whose SLA deadline is near (within the SLA's "
                                "at_risk window) and not yet done", labels=SLA_LABELS)
    overdue = GaugeMetricFamily("accord_sla_overdue", "Items past their SLA deadline and still not done",
                                labels=SLA_LABELS)
    states = await kpi.sla_states(redis, keys, {n: s.risk_window() for n, s in settings.sla.items()}, now_ms)
    for name, sla in sorted(settings.sla.items()):
        labels, state = [name, sla.process, sla.severity], states[name]
        breaches.add_metric(labels, float(state.breaches))
        at_risk.add_metric(labels, float(state.at_risk))
        overdue.add_metric(labels, float(state.overdue))
    return [breaches, at_risk, overdue]


async def unbilled_families(redis: Redis, settings: Settings, keys: Keys, now_ms: int) -> list[Any]:
    edges = [float(e) for e in settings.business.unbilled_age_buckets]
    labels = bucket_labels(edges)
    hours = GaugeMetricFamily("accord_unbilled_hours", "Approved billable hours not yet on an invoice, by the "
                              "age of their work day", labels=["entity", "age"])
    amount = GaugeMetricFamily("accord_unbilled_amount", "Approved billable amount (hours x bill rate, or the "
                               "expense) not yet on an invoice, by age", labels=["entity", "currency", "age"])
    records = GaugeMetricFamily("accord_unbilled_records", "Approved billable records not yet on an invoice, "
                                "by age", labels=["entity", "age"])
    for entity in sorted(set(kpi.UNBILLED) & set(settings.entities)):
        owner = settings.entities[entity].owner
        h, n = dict.fromkeys(labels, 0.0), dict.fromkeys(labels, 0.0)
        money: defaultdict[tuple[str, str], float] = defaultdict(float)
        for day in await kpi.unbilled_days(redis, keys, owner, entity):
            age = bucket_of(edges, labels, _day_age(day.day, now_ms))
            h[age] += day.hours
            n[age] += day.count
            for currency, value in day.amount.items():
                money[currency, age] += value
        for age in labels:
            records.add_metric([entity, age], n[age])
            if kpi.UNBILLED[entity][1] is not None:
                hours.add_metric([entity, age], h[age])
        for (currency, age), value in sorted(money.items()):
            amount.add_metric([entity, currency, age], value)
    return [hours, amount, records]


async def backlog_families(redis: Redis, settings: Settings, keys: Keys, now_ms: int) -> list[Any]:
    labels = ["process", "entity", "target"]
    count = GaugeMetricFamily("accord_backlog_records", "Records published by their source and not yet "
                              "written to the target (e.g. ERP invoices not in the PSA or CRM)", labels=labels)
    oldest = GaugeMetricFamily("accord_backlog_oldest_seconds", "How long the oldest of them has waited "
                               "(0 when none waits)", labels=labels)
    pairs = [(e, t) for e in settings.business.backlog if e in settings.entities
             for t in settings.targets_of(e) if t != settings.entities[e].owner]
    for (entity, target), (n, since_ms) in (await kpi.backlog(redis, keys, pairs)).items():
        row = [settings.process_of(entity), entity, target]
        count.add_metric(row, float(n))
        oldest.add_metric(row, max(0.0, (now_ms - since_ms) / 1000) if since_ms is not None else 0.0)
    return [count, oldest]


async def exceptions_by_process(redis: Redis, settings: Settings, keys: Keys, now_ms: int) -> Any:
    """Open exceptions per process and age bucket: one ZCOUNT per (entity, reason, bucket), pipelined."""
    edges = [float(e) for e in settings.business.exception_age_buckets]
    labels = bucket_labels(edges)
    bounds = [*zip([0.0, *edges], [*edges, None], strict=True)]
    kinds = [(e, r) for e in sorted(settings.entities) for r in REASONS]
    async with redis.pipeline(transaction=False) as pipe:
        for entity, reason in kinds:
            for lo, hi in bounds:
                pipe.zcount(keys.exceptions_open_kind(entity, reason), "-inf" if hi is None else
                            f"({now_ms - int(hi * 1000)}", "+inf" if lo == 0 else now_ms - int(lo * 1000))
        replies = iter(await pipe.execute())
    counts: dict[tuple[str, str], float] = {(settings.process_of(e), a): 0.0 for e in settings.entities for a in labels}
    for entity, _ in kinds:
        for age in labels:
            counts[settings.process_of(entity), age] += int(next(replies))
    family = GaugeMetricFamily("accord_exceptions_open_by_process", "Open exceptions by the business process "
                               "of their entity and by age", labels=["process", "age"])
    for (process, age), n in sorted(counts.items()):
        family.add_metric([process, age], n)
    return family


def _invoice_run(settings: Settings, now_ms: int) -> Any:
    family = GaugeMetricFamily("accord_invoice_run_next_timestamp_seconds", "When the next configured invoice "
                               "run is (business.invoice_runs)")
    if settings.business.invoice_runs is not None:
        import cronsim

        start = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
        family.add_metric([], next(cronsim.CronSim(settings.business.invoice_runs, start)).timestamp())
    return family


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """``["<1h", "1h-1d", "1d-7d", ">7d"]`` for edges of 1 h, 1 d and 7 d."""
    names = [_short(e) for e in edges]
    return [f"<{names[0]}", *(f"{a}-{b}" for a, b in zip(names, names[1:], strict=False)), f">{names[-1]}"]


def bucket_of(edges: Sequence[float], labels: Sequence[str], age_s: float) -> str:
    return labels[next((i for i, e in enumerate(edges) if age_s < e), len(edges))]


def _short(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _day_age(day: dt.date | None, now_ms: int) -> float:
    """Seconds since the end of the work day (UTC); a missing date counts as today's."""
    if day is None:
        return 0.0
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()
    return max(0.0, now_ms / 1000 - end)
