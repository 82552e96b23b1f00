"""Month-end benchmark: a month of approved time drained into an ERP at the API's limit.

    python -m bench.month_end                          # 20,000 entries, quota_scale 5, replicas 1 2 4 8 + 1→4
    python -m bench.month_end --entries 5000 --replicas 1 4 --no-scale-run

The PSA sandbox (Harvest) holds a 200-consultant firm; the ERP sandbox (QuickBooks Online) enforces its
documented quotas (500 requests/min, 10/s, 10 concurrent, 40 ``/batch`` per minute of 30 items), every
window shortened by ``--quota-scale`` so a month-end runs in minutes. For each writer replica count a
fresh run starts the daemon, lets it sync the firm's people, clients, projects and tasks, then approves
the month's ``--entries`` time entries at once and measures the drain: from the approval to the last
TimeActivity in the ERP. The quota-bound minimum is the least time QuickBooks' write quotas allow for
that many creates (``quota_bound_s``). One more run starts with 1 writer and scales to 4 half-way
(``accord scale``'s path: the control hash the supervisor watches). The naive reference, measured in the
same invocation after the runs, alone (in the sandboxes' process, a client alongside a run would slow both),
on the first run's ERP (its references exist there) once its windows emptied, POSTs one TimeActivity per
entry in order and waits out each 429.

The last line printed is one JSON object: ``entries``, ``quota_scale``, ``runs`` (per run: ``replicas``,
``drain_s``, ``bound_s``, ``ratio``, ``throttled``, ``calls_per_entry``, ``naive_drain_s``), ``machine``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from accord.actors.context import connect
from accord.actors.logs import setup
from accord.app import Daemon
from accord.pipeline_metrics import read_counters
from accord.redis_server import EmbeddedRedis
from accord.sandboxes.quickbooks.sandbox import build_app as build_qbo
from accord.sandboxes.server import SandboxServer
from accord.streams.keys import Keys
from accord.supervisor import set_replicas
from bench.month_end_firm import MonthEndFirm, month_end_settings, naive_bodies, naive_drain, quota_bound_s

WARM_UP_S = 300.0


async def wait_until(predicate: Any, deadline_s: float, step: float = 0.1) -> bool:
    """Poll ``predicate`` (the sandboxes have no event to wait on) until true or the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(step)
    return False


async def references_synced(redis: Redis, d: Daemon, firm: MonthEndFirm) -> bool:
    """Every reference the PSA published has reached the ERP (nothing lags)."""
    counters = await read_counters(redis, d.settings, Keys(d.settings.namespace))
    return counters.produced >= firm.references and not counters.lag


async def drain(d: Daemon, redis: Redis, firm: MonthEndFirm, entries: int, scale_to: int | None) -> dict[str, Any]:
    """Approve the month and time the ERP until it holds every entry (scaling half-way if asked)."""
    if not await wait_until(lambda: references_synced(redis, d, firm), WARM_UP_S):
        raise SystemExit("the firm's references did not reach the ERP within the warm-up")
    calls_before, throttled_before = firm.erp.requests.count(), firm.erp.requests.count(status=429)
    await asyncio.to_thread(firm.close_month, entries)
    started = time.monotonic()
    if scale_to is not None:
        async def half() -> bool:
            return firm.erp_count("TimeActivity") >= entries // 2
        await wait_until(half, 3600.0)
        await set_replicas(redis, Keys(d.settings.namespace), "time_entry", scale_to)

    async def all_in() -> bool:
        return firm.erp_count("TimeActivity") >= entries
    if not await wait_until(all_in, max(120.0, 5 * quota_bound_s(entries, firm.quota_scale)), step=0.05):
        desk = await redis.xrevrange(Keys(d.settings.namespace).exceptions(), count=3)
        raise SystemExit(f"the ERP holds {firm.erp_count('TimeActivity')} of {entries} entries after 5x the "
                         f"quota-bound minimum; {await redis.xlen(Keys(d.settings.namespace).exceptions())} "
                         f"exception(s) filed, the last: {desk!r:.1500}")
    drained = time.monotonic() - started
    calls = firm.erp.requests.count() - calls_before
    return {"drain_s": round(drained, 2), "throttled": firm.erp.requests.count(status=429) - throttled_before,
            "calls_per_entry": round(calls / entries, 3), "erp_calls": calls,
            "batch_calls": len(firm.erp.requests.entries("batch")),
            "calls_by_endpoint": dict(Counter(e.endpoint for e in firm.erp.requests.entries()[calls_before:])),
            "throttled_by": {quota: n for quota, n in firm.erp.quota_stats()["throttled"].items() if n}}


async def one_run(url: str, data_dir: str, opts: argparse.Namespace, replicas: int,
                  scale_to: int | None = None) -> tuple[dict[str, Any], MonthEndFirm]:
    redis = Redis.from_url(url)
    await redis.flushall()
    await redis.aclose()
    firm = MonthEndFirm(opts.quota_scale).start()
    firm.seed()
    daemon = Daemon(month_end_settings(firm, url, data_dir, replicas))
    result: dict[str, Any] = {}

    async def on_ready(d: Daemon) -> None:
        async def measure() -> None:
            redis = connect(d.redis_url)
            try:
                result.update(await drain(d, redis, firm, opts.entries, scale_to))
            finally:
                await redis.aclose()
                d.stop_event.set()
        asyncio.get_running_loop().create_task(measure())

    try:
        await daemon.run(on_ready=on_ready, signals=False)
    finally:
        firm.stop()
    bound = quota_bound_s(opts.entries, opts.quota_scale)
    result.update(replicas=replicas if scale_to is None else f"{replicas}->{scale_to}", bound_s=round(bound, 2),
                  ratio=round(result["drain_s"] / bound, 3))
    return result, firm


def naive(firm: MonthEndFirm, entries: int) -> tuple[float, int]:
    """The naive reference on the last run's ERP (its references exist there), once its windows emptied."""
    server = SandboxServer(build_qbo(firm.erp)).start()
    try:
        time.sleep(60.0 / firm.quota_scale)
        return asyncio.run(naive_drain(firm, server.url, naive_bodies(firm, entries)))
    finally:
        server.stop()


def report(runs: list[dict[str, Any]], naive_s: float, naive_429: int, opts: argparse.Namespace) -> dict[str, Any]:
    print(f"{'replicas':>9} {'drain s':>8} {'bound s':>8} {'ratio':>6} {'429s':>5} {'calls/entry':>11} "
          f"{'naive s':>8} {'vs naive':>8}")
    for run in runs:
        run["naive_drain_s"] = round(naive_s, 2)
        print(f"{run['replicas']!s:>9} {run['drain_s']:>8.1f} {run['bound_s']:>8.1f} {run['ratio']:>6.3f} "
              f"{run['throttled']:>5} {run['calls_per_entry']:>11.3f} {naive_s:>8.1f} {naive_s / run['drain_s']:>7.2f}x")
    return {"entries": opts.entries, "quota_scale": opts.quota_scale, "runs": runs, "naive_throttled": naive_429,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--quota-scale", type=float, default=5.0)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--no-scale-run", action="store_true", help="skip the run that scales 1 -> 4 half-way")
    opts = parser.parse_args()
    setup("WARNING", json=False)
    data_dir = tempfile.mkdtemp(prefix="accord-monthend-")
    server = EmbeddedRedis(Path(data_dir) / "redis").start()
    runs: list[dict[str, Any]] = []
    first: MonthEndFirm | None = None
    try:
        plan = [(r, None) for r in opts.replicas] + ([] if opts.no_scale_run else [(1, 4)])
        for replicas, scale_to in plan:
            run, firm = asyncio.run(one_run(server.url, data_dir, opts, replicas, scale_to))
            runs.append(run)
            by = f" by {run['throttled_by']}" if run["throttled"] else ""
            print(f"  {run['replicas']} writer(s): drained in {run['drain_s']} s ({run['ratio']}x the bound, "
                  f"{run['throttled']} 429s{by})", flush=True)
            first = first or firm
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    assert first is not None
    naive_s, naive_429 = naive(first, opts.entries)  # alone: neither it nor a run slows the other
    print(f"  naive reference: {naive_s:.1f} s ({naive_429} 429s)", flush=True)
    print(json.dumps(report(runs, naive_s, naive_429, opts)))


if __name__ == "__main__":
    main()
