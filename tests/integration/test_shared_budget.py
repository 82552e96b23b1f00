"""One request budget per external account, shared by every caller on every process.

A month-end drain into a QuickBooks sandbox that enforces every documented quota of a realm (500 requests
a minute, 10 a second, 10 in flight, 40 ``/batch`` a minute; windows shortened by ``quota_scale``): the
time-entry writers are scaled live from 1 to 16 Ray actor processes while the ERP poller reads the same
realm, and one of them receives an injected 429. The sandbox is the judge: it refuses any request over a
quota, so zero refusals means the combined traffic stayed within every limit, while the traffic it saw
shows the test ran at the limit and that every caller paused after one caller's 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from accord.app import Daemon
from accord.pipeline_metrics import read_counters
from accord.redis_server import EmbeddedRedis
from accord.sandboxes.server import LoggedRequest
from accord.streams.keys import Keys
from accord.supervisor import set_replicas
from bench.month_end_firm import MonthEndFirm, month_end_settings
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.redis]

QUOTA_SCALE = 10.0  # QuickBooks' minute is 6 s here
ENTRIES = 2500
RETRY_AFTER = 2.0
IN_FLIGHT = 0.5  # a request granted just before the pause usually reaches the sandbox by then


@pytest.fixture
async def firm() -> AsyncIterator[MonthEndFirm]:
    firm = MonthEndFirm(QUOTA_SCALE).start()
    firm.seed()
    yield firm
    firm.stop()


def busiest_window(log: list[LoggedRequest], seconds: float) -> int:
    """The most answered requests in any ``seconds`` (answer times: a lower bound of arrivals' density)."""
    times = sorted(e.at for e in log)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


async def writers_running(daemon: Daemon, n: int) -> bool:
    assert daemon.supervisor is not None
    writers = daemon.supervisor.writers.get("time_entry", [])
    return len(writers) == n and all(m.healthy for m in writers)


@pytest.mark.timeout(600)
async def test_sixteen_writers_scaled_live_share_one_budget_within_every_quota(
        ray_session: None, redis_server: EmbeddedRedis, firm: MonthEndFirm, tmp_path: Path) -> None:
    redis = Redis.from_url(redis_server.url)
    await redis.flushall()
    settings = month_end_settings(firm, redis_server.url, str(tmp_path), replicas=1)
    daemon, ready = Daemon(settings), asyncio.Event()

    async def on_ready(_: Any) -> None:
        ready.set()

    task = asyncio.create_task(daemon.run(on_ready=on_ready, signals=False, own_ray=False))
    try:
        await wait_for(ready.is_set, timeout=60, message="daemon ready")
        keys = Keys(settings.namespace)

        async def references_in() -> bool:
            counters = await read_counters(redis, settings, keys)
            return counters.produced >= firm.references and not counters.lag
        await wait_for(references_in, timeout=120, interval=0.2, message="the firm's references in the ERP")
        await asyncio.to_thread(firm.close_month, ENTRIES)
        await wait_for(lambda: firm.erp_count("TimeActivity") >= 300, timeout=120, interval=0.1,
                       message="the drain under way with one writer")
        await set_replicas(redis, keys, "time_entry", 16)
        await wait_for(lambda: writers_running(daemon, 16), timeout=180, interval=0.2, message="16 writers")
        injected_at = time.time()
        firm.erp.faults.add("*", "429", retry_after=RETRY_AFTER)
        await wait_for(lambda: firm.erp_count("TimeActivity") >= ENTRIES, timeout=300, interval=0.1,
                       message="every entry in the ERP")
        assert daemon.supervisor is not None
        written = [await m.handle.health.remote() for m in daemon.supervisor.writers["time_entry"]]
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(task, timeout=120)
        await redis.aclose()

    quotas = firm.erp.quota_stats()
    assert quotas["throttled"] == {"per_minute": 0, "per_second": 0, "batch": 0, "concurrent": 0}, quotas
    log = firm.erp.requests.entries()
    minute, batch = quotas["limits"]["per_minute"], quotas["limits"]["batch"]
    use = max(busiest_window(log, minute["window"]) / minute["scaled_limit"],
              busiest_window([e for e in log if e.endpoint == "batch"], batch["window"]) / batch["scaled_limit"])
    assert use >= 0.8, f"the drain ran at a quota's limit (busiest window {use:.0%} full)"
    assert sum(1 for w in written if w.get("written")) >= 2, "several writer processes wrote"

    (throttle,) = [e for e in log if e.fault == "429"]
    assert throttle.at >= injected_at
    # Requests granted before the pause may still arrive late on a busy machine (a descheduled actor, the
    # sandbox's own thread starved), but at most as many as may be in flight at once: the rest were refused.
    paused = [e for e in log if throttle.at + IN_FLIGHT < (e.arrived or e.at) < throttle.at + RETRY_AFTER - 0.1]
    in_flight = quotas["limits"]["concurrent"]["limit"]
    assert len(paused) < in_flight, f"{len(paused)} request(s) arrived while every caller should have been paused"
    assert any(throttle.at + RETRY_AFTER <= (e.arrived or e.at) < throttle.at + RETRY_AFTER + 2 for e in log)

    with firm.erp.lock:
        descriptions = [row.wire.get("Description") for row in firm.erp.realm().tables["TimeActivity"].values()]
    assert len(descriptions) == ENTRIES and len(set(descriptions)) == ENTRIES, "each entry exactly once"
