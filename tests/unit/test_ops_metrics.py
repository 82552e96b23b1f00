"""The metrics an operator's alerts read (``accord.ops_metrics``), scraped from a real pipeline run on
in-memory systems: every known label set at 0 from the start, a failing source's failing time and last
success, API errors by class, the end-to-end latency histogram, build info and reconciliation's schedule."""

from __future__ import annotations

import re
from typing import Any

import pytest
from redis.asyncio import Redis

from accord.config.load import loads
from accord.connectors.base import CallStats
from accord.connectors.errors import Retryable
from accord.ops_metrics import reconcile_interval
from accord.pipeline_metrics import render
from accord.streams.state import Stats
from tests.unit.test_liveness import Rig, config


def value(metrics: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.MULTILINE)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


async def test_every_known_counter_starts_at_zero(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config()).setup(erp_loaded=False)
    metrics = (await render(any_redis, rig.settings)).decode()
    assert value(metrics, 'accord_exceptions_total{entity="contact",reason="permanent",system="erp"}') == 0
    assert value(metrics, 'accord_exceptions_total{entity="account",reason="governance",system="crm"}') == 0
    assert value(metrics, 'accord_records_written_total{entity="account",system="erp"}') == 0
    assert value(metrics, 'accord_api_errors_by_class_total{class="auth",system="crm"}') == 0
    assert value(metrics, 'accord_api_calls_total{system="erp"}') == 0
    assert re.search(r'^accord_build_info\{python="3\.\d+\.\d+",version="[^"]+"\} 1\.0$', metrics, re.MULTILINE)


async def test_a_failing_source_shows_since_when_and_its_last_success(any_redis: Redis, monkeypatch: Any) -> None:
    rig = await Rig(any_redis, config()).setup()
    poller = rig.pollers["crm"]
    await poller._poll_entity("account")  # succeeds: a page committed
    metrics = (await render(any_redis, rig.settings)).decode()
    succeeded = value(metrics, 'accord_poll_last_success_timestamp_seconds{entity="account",system="crm"}')
    assert succeeded > 1.7e9 and value(metrics, 'accord_poll_failing_seconds{entity="account",system="crm"}') == 0

    async def refused(entity: str, cursor: str | None) -> Any:
        raise Retryable("crm", "503 from the token endpoint")
    monkeypatch.setattr(rig.crm, "fetch", refused)
    await poller._poll_entity("account")
    first = await any_redis.hget(rig.keys.cursor("crm", "account"), "failing_since_ms")
    await poller._poll_entity("account")  # a second failure keeps the first one's time
    assert await any_redis.hget(rig.keys.cursor("crm", "account"), "failing_since_ms") == first
    await any_redis.hset(rig.keys.cursor("crm", "account"), "failing_since_ms", int(first) - 600_000)
    metrics = (await render(any_redis, rig.settings)).decode()
    assert 600 <= value(metrics, 'accord_poll_failing_seconds{entity="account",system="crm"}') < 700
    assert value(metrics, 'accord_poll_last_success_timestamp_seconds{entity="account",system="crm"}') == succeeded
    monkeypatch.undo()
    await poller._poll_entity("account")  # back: the failing time is cleared
    metrics = (await render(any_redis, rig.settings)).decode()
    assert value(metrics, 'accord_poll_failing_seconds{entity="account",system="crm"}') == 0


async def test_api_errors_are_counted_by_class(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config()).setup()
    stats = CallStats()
    for kind in ("auth", "server", "server", "transport"):
        stats.error(kind)
    await rig.writers["account"]._flush_call_stats({"erp": stats})
    metrics = (await render(any_redis, rig.settings)).decode()
    assert value(metrics, 'accord_api_errors_by_class_total{class="server",system="erp"}') == 2
    assert value(metrics, 'accord_api_errors_by_class_total{class="auth",system="erp"}') == 1
    assert value(metrics, 'accord_api_errors_total{system="erp"}') == 4


async def test_each_write_counts_once_in_the_latency_histogram(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config()).setup()
    for name in ("A", "B", "C"):
        rig.crm.user_create({"name": name})
    await rig.publish("account")
    await rig.sweep_until("account", lambda: rig.erp.creates == 3, within=5)
    metrics = (await render(any_redis, rig.settings)).decode()
    assert value(metrics, 'accord_sync_latency_seconds_count{entity="account",target="erp"}') == 3
    assert value(metrics, 'accord_sync_latency_seconds_bucket{entity="account",le="+Inf",target="erp"}') == 3
    assert value(metrics, 'accord_sync_latency_seconds_bucket{entity="account",le="5.0",target="erp"}') == 3
    assert value(metrics, 'accord_sync_latency_seconds_count{entity="contact",target="erp"}') == 0
    assert (await Stats(rig.keys).read(any_redis, Stats.LATENCY))[("account", "erp", "count")] == 3


@pytest.mark.parametrize(("schedule", "seconds"), [('interval = "2h"', 7200.0), ('cron = "0 2 * * *"', 86400.0),
                                                   ('cron = "0 2 * * 1-5"', 3 * 86400.0), ("", None)])
def test_a_reconciliation_jobs_interval_is_its_longest_gap(schedule: str, seconds: float | None) -> None:
    text = config() + f'[reconcile.hours]\nentity = "account"\nsource = "crm"\ntarget = "erp"\n{schedule}\n'
    job = loads(text, env={}).reconcile["hours"]
    assert reconcile_interval(job) == seconds
