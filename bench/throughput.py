"""Throughput benchmark: N account changes through the real pipeline, against a bare Redis loop.

    python -m bench.throughput --records 5000
    python -m bench.throughput --records 5000,20000     # both sizes, each 5 times interleaved: is the
                                                        # cost per record the same (by each size's medians)?
    python -m bench.throughput --records 10000 --kills   # + a run with kill -9 of the writer and the ERP poller

Both runs happen in the same process, on the same embedded Redis, one after the other, so the ratio
is meaningful on a noisy shared machine:

* **floor**: a bare redis-py loop with the same change records: pipelined XADD (500 per batch),
  XREADGROUP COUNT 500, XACK, producer and consumer concurrently. This is the physical limit of one
  Python process on this Redis.
* **accord**: the Salesforce sandbox receives N new accounts (in bursts of 500, as fast as it can take
  them); the daemon's poller actor reads them, publishes change records, the writer actor writes them
  to the QuickBooks sandbox through ``/batch`` (30 per call). Rate = N / (last ERP create − first CRM
  create); latency per record = ERP create − CRM create.

With ``--kills`` a third run follows (fresh Redis state and sandboxes): the same N records, and once
``--kill-at`` of them reached the ERP, ``kill -9`` of the account writer's process and then of the ERP
poller's (by pid); Ray restarts them and the supervisor restarts their loops. It reports records synced,
ERP API calls (total and by endpoint) and finish time against the fault-free run (``with_kills``).

With several sizes each runs on an emptied Redis and fresh sandboxes and Ray; per size the JSON has CPU
seconds per process (``driver``, ``redis-server``, each actor by name) over the measured window (first
create to all work done: ``bench.measure``), per 1,000 records, and Redis ``commandstats`` / ``SLOWLOG``
of the window; the last line adds ``rate_ratio`` and ``cpu_per_1000_ratio`` (largest size / smallest).

The last line printed is one JSON object (``accord_rps``, ``floor_rps``, ``ratio``, ``p50_ms``,
``p99_ms``, ``api_calls_per_record``, ``peak_rss_mb``, ``with_kills``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from accord.actors.logs import setup
from accord.app import Daemon
from accord.config.settings import Settings
from accord.redis_server import EmbeddedRedis
from accord.sandboxes.firm.demo import demo_settings
from accord.sandboxes.firm.world import World
from accord.streams.keys import Keys
from accord.streams.records import ChangeRecord, encode
from accord.streams.state import Stats
from bench.chaos_audit import pipeline_state
from bench.kills import ActorKiller, actor_pids
from bench.measure import Window, _tree, empty_redis, linearity, median_run, quotas_raised

BATCH = 500


# -- memory ---------------------------------------------------------------------------------------
class PeakRss:
    """Peak RSS of the whole process tree, and CPU seconds per process name (sampled every 0.5 s)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self.cpu: dict[int, tuple[str, float]] = {}
        self._start = {pid: cpu for pid, (_, _, cpu) in _tree(os.getpid()).items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = _tree(os.getpid())
            self.peak = max(self.peak, sum(rss for _, rss, _ in tree.values()) / 2**20)
            for pid, (name, _, cpu) in tree.items():
                self.cpu[pid] = (name, cpu - self._start.get(pid, 0.0))
            self._stop.wait(0.5)

    def cpu_by_name(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, cpu in self.cpu.values():
            out[name] = round(out.get(name, 0.0) + cpu, 2)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# -- floor ----------------------------------------------------------------------------------------
def _records(n: int) -> list[bytes]:
    return [encode(ChangeRecord(change_id=f"{i:032x}", entity="account", gid=f"g{i:025d}", op="upsert",
                                source="crm", source_id=f"001{i:015d}", version=i,
                                fields={"name": f"Bench Client {i:06d}", "country": "US", "currency": "USD",
                                        "website": f"https://client{i}.example"},
                                correlation_id=f"{i:032x}", observed_ms=0)) for i in range(n)]


async def floor(url: str, n: int) -> dict[str, float]:
    redis = Redis.from_url(url)
    stream = "bench:floor"
    await redis.delete(stream)
    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    payloads = _records(n)
    sent_at: dict[bytes, float] = {}
    latencies: list[float] = []
    started = time.perf_counter()

    async def produce() -> None:
        for i in range(0, n, BATCH):
            async with redis.pipeline(transaction=False) as pipe:
                for payload in payloads[i: i + BATCH]:
                    pipe.xadd(stream, {"d": payload})
                now = time.perf_counter()
                for entry_id in await pipe.execute():
                    sent_at[entry_id] = now
            await asyncio.sleep(0)

    async def consume() -> None:
        reader = Redis.from_url(url)
        done = 0
        while done < n:
            reply = await reader.xreadgroup("g", "c", {stream: ">"}, count=BATCH, block=100)
            for _, entries in reply or []:
                ids = [entry_id for entry_id, fields in entries if msgspec.msgpack.decode(fields[b"d"])]
                await reader.xack(stream, "g", *ids)
                now = time.perf_counter()
                latencies.extend(now - sent_at.get(i, now) for i in ids)
                done += len(ids)
        await reader.aclose()

    await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - started
    await redis.delete(stream)
    await redis.aclose()
    return {"rps": n / elapsed, "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99)}


def _pct(values: list[float], p: int) -> float:
    if not values:
        return 0.0
    return round(statistics.quantiles(values, n=100)[p - 1] * 1000 if len(values) > 1 else values[0] * 1000, 1)


# -- accord ---------------------------------------------------------------------------------------
def bench_settings(world: World, url: str, data_dir: str) -> Settings:
    """The demo configuration on these sandboxes: CRM accounts to ERP customers only, quotas raised."""
    settings = world.configure(demo_settings(data_dir, 0))
    return msgspec.structs.replace(
        settings, log_level="WARNING", redis=msgspec.structs.replace(settings.redis, url=url),
        provisioning=None, reconcile={}, sla={},  # they need entities this benchmark does not sync
        systems={**settings.systems,
                 "crm": quotas_raised(settings.systems["crm"], 10_000), "erp": quotas_raised(settings.systems["erp"])},
        # the measured flow: CRM accounts to ERP customers (the PSA takes no part in this benchmark)
        entities={"account": msgspec.structs.replace(settings.entities["account"], poll_interval=0.2,
                                                     systems=["crm", "erp"], exclude={})})


def feed(world: World, n: int, created_at: dict[str, float]) -> None:
    """N new CRM accounts, in bursts of ``BATCH`` per transaction, as fast as the sandbox takes them."""
    for i in range(0, n, BATCH):
        with world.crm.transaction():
            for j in range(i, min(n, i + BATCH)):
                name = f"Bench Client {j:06d}"
                created_at[name] = time.time()
                world.crm.user_create("Account", {"Name": name, "BillingCountryCode": "US",
                                                  "CurrencyIsoCode": "USD", "Website": f"https://client{j}.example"})


def synced(world: World, names: set[str], found: dict[str, float] | None = None, start: int = 0
           ) -> tuple[dict[str, float], int]:
    """ERP create time of every live customer whose name is one of ``names`` (cheap: no rendering), looking
    only at the rows after the first ``start`` (rows are only appended); the customers and the rows seen."""
    with world.erp.lock:
        rows = list(itertools.islice(world.erp.realm().tables["Customer"].values(), start, None))
    found = {} if found is None else found
    found.update({r.wire["DisplayName"]: r.created for r in rows
                  if not r.deleted and r.wire.get("DisplayName") in names})
    return found, start + len(rows)


async def wait_synced(world: World, names: set[str], deadline_s: float) -> dict[str, float]:
    """Wait until every one of ``names`` is an ERP customer, or the deadline; the ERP create times."""
    deadline = time.monotonic() + deadline_s
    done, seen = synced(world, names)
    while len(done) < len(names) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        done, seen = synced(world, names, done, seen)
    return done


async def settle(redis: Redis, settings: Settings, n: int, timeout_s: float = 60.0) -> bool:
    """Wait until the work the N records cause is done: the ERP poller has read them all back and the
    streams are drained (nothing pending, nothing undelivered). False when ``timeout_s`` passed first."""
    stats, deadline = Stats(Keys(settings.namespace)), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        polled = (await stats.read(redis, Stats.RECORDS)).get(("polled", "erp", "account"), 0)
        if polled >= n and (await pipeline_state(redis, settings)).idle:
            return True
        await asyncio.sleep(0.1)
    return False


async def kill_in_flight(d: Daemon, world: World, n: int, at: float, kills: list[dict[str, Any]]) -> None:
    """Once ``at`` of the N records are ERP customers (records in flight: the rest are in the CRM or the
    streams), ``kill -9`` the account writer and then the ERP poller, by pid."""
    assert d.supervisor is not None
    killer = ActorKiller(d.supervisor)
    started = time.monotonic()
    threshold = max(1, int(n * at))
    while True:  # polled every 50 ms: the sandbox has no event to wait on
        if len(world.erp.realm().tables["Customer"]) >= threshold:
            break
        await asyncio.sleep(0.05)
    for actor in ("writer:account:0", "poller:erp"):
        kill = await killer.kill(actor, within_s=30.0)
        in_erp = len(world.erp.realm().tables["Customer"])
        if kill is not None:
            kills.append({"actor": actor, "pid": kill.pid, "at_s": round(kill.at - started, 2), "erp_customers": in_erp})
            print(f"  kill -9 {actor} (pid {kill.pid}) with {in_erp}/{n} records in the ERP", flush=True)


def calls_by_endpoint(world: World) -> dict[str, int]:
    by_endpoint: dict[str, int] = {}
    for system, state in (("crm", world.crm), ("erp", world.erp)):
        for entry in state.requests.entries():
            key = f"{system}:{entry.endpoint}"
            by_endpoint[key] = by_endpoint.get(key, 0) + 1
    return by_endpoint


async def accord_run(url: str, n: int, data_dir: str, *, kill_at: float | None = None) -> dict[str, Any]:
    """N accounts through the pipeline; with ``kill_at``, the writer and the ERP poller are killed once
    that share of the records reached the ERP."""
    redis = Redis.from_url(url)
    await empty_redis(redis)  # each run starts from an empty Redis and AOF (the floor and earlier runs used it)
    await redis.aclose()
    world = World(qbo_rate_limit=10**9, qbo_concurrency=64, qbo_per_second=10**9, qbo_batch_limit=10**9,
                  sf_api_limit=10**9).start()
    created_at: dict[str, float] = {}
    daemon = Daemon(bench_settings(world, url, data_dir))
    result: dict[str, Any] = {}
    kills: list[dict[str, Any]] = []

    async def on_ready(d: Daemon) -> None:
        asyncio.get_running_loop().create_task(_measure(d))

    async def _measure(d: Daemon) -> None:
        killing = asyncio.create_task(kill_in_flight(d, world, n, kill_at, kills)) if kill_at is not None else None
        window = Window(Redis.from_url(url))
        try:
            await window.open()
            opened = time.monotonic()
            await asyncio.to_thread(feed, world, n, created_at)
            result["feed_s"] = round(time.monotonic() - opened, 2)
            done = await wait_synced(world, set(created_at), max(120.0, n / 50))
            if kill_at is None:
                synced_at = time.monotonic()
                result["settled"] = await settle(window.redis, d.settings, n)
                # the window's length, and its tail: the ERP poller reading the records back, streams draining
                result.update(window_s=round(time.monotonic() - opened, 2), settle_s=round(time.monotonic() - synced_at, 2))
                assert d.supervisor is not None
                result.update(await window.close(actor_pids(d.supervisor), n))
                counts = await Stats(Keys(d.settings.namespace)).read(window.redis, Stats.RECORDS)
                result["counters"] = {":".join(k): v for k, v in sorted(counts.items())}
            latencies = [done[k] - t for k, t in created_at.items() if k in done]
            first, last = min(created_at.values()), max(done.values(), default=time.time())
            result.update(records_synced=len(done), rps=len(done) / max(last - first, 1e-9),
                          finish_s=round(last - first, 2), calls=calls_by_endpoint(world),
                          p50_ms=_pct(latencies, 50), p99_ms=_pct(latencies, 99),
                          erp_calls=world.erp.requests.count(), crm_calls=world.crm.requests.count(), kills=kills)
        finally:
            if killing is not None:
                killing.cancel()
            await window.redis.aclose()
            d.stop_event.set()

    try:
        await daemon.run(on_ready=on_ready, signals=False)
    finally:
        world.stop()
    return result


def kill_figures(clean: dict[str, Any], faulted: dict[str, Any], n: int) -> dict[str, Any]:
    """The faulted run against the fault-free one (done when: all synced, <= 1.2x the ERP calls, <= 15 s later)."""
    ratio = faulted.get("erp_calls", 0) / max(1, clean.get("erp_calls", 0))
    delta = faulted.get("finish_s", 0.0) - clean.get("finish_s", 0.0)
    synced_all = faulted.get("records_synced", 0) == n and clean.get("records_synced", 0) == n
    return {
        "kills": faulted.get("kills", []),
        "records_synced": faulted.get("records_synced", 0),
        "records_synced_fault_free": clean.get("records_synced", 0),
        "erp_calls": faulted.get("erp_calls", 0),
        "erp_calls_fault_free": clean.get("erp_calls", 0),
        "erp_calls_ratio": round(ratio, 3),
        "erp_calls_by_endpoint": {k: v for k, v in faulted.get("calls", {}).items() if k.startswith("erp:")},
        "erp_calls_by_endpoint_fault_free": {k: v for k, v in clean.get("calls", {}).items() if k.startswith("erp:")},
        "finish_s": faulted.get("finish_s"),
        "finish_s_fault_free": clean.get("finish_s"),
        "finish_delta_s": round(delta, 2),
        "done": bool(synced_all and len(faulted.get("kills", [])) == 2 and ratio <= 1.2 and delta <= 15.0),
    }


def one_size(server: EmbeddedRedis, n: int, data_dir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The floor and the fault-free pipeline run at N records: the summary, and the run's raw figures."""
    with PeakRss() as floor_mem:
        bare = asyncio.run(floor(server.url, n))
    print(f"floor : {bare['rps']:,.0f} rec/s  p50 {bare['p50_ms']} ms  p99 {bare['p99_ms']} ms  "
          f"(bare XADD/XREADGROUP/XACK, Redis {server.version()})")
    with PeakRss() as accord_mem:
        run = asyncio.run(accord_run(server.url, n, data_dir))
    summary = {
        "records": n,
        "records_synced": run.get("records_synced", 0),
        "accord_rps": round(run.get("rps", 0.0), 1),
        "floor_rps": round(bare["rps"], 1),
        "ratio": round(run.get("rps", 0.0) / bare["rps"], 3),
        "p50_ms": run.get("p50_ms"),
        "p99_ms": run.get("p99_ms"),
        "floor_p50_ms": bare["p50_ms"],
        "floor_p99_ms": bare["p99_ms"],
        "finish_s": run.get("finish_s"),
        "feed_s": run.get("feed_s"),
        "window_s": run.get("window_s"),
        "settle_s": run.get("settle_s"),
        "settled": run.get("settled"),
        "api_calls_per_record": round(run.get("erp_calls", 0) / n, 4),
        "crm_api_calls_per_record": round(run.get("crm_calls", 0) / n, 4),
        "api_calls": run.get("calls", {}),
        "peak_rss_mb": round(accord_mem.peak, 1),
        "cpu_seconds_since_start": {k: v for k, v in accord_mem.cpu_by_name().items() if v >= 0.1},
        "cpu_seconds": run.get("cpu_seconds", {}),  # the measured window: first create to work done
        "cpu_s_per_1000": run.get("cpu_s_per_1000", {}),
        "redis_commands": run.get("redis_commands", {}),
        "slowlog": run.get("slowlog", {}),
        "keyspace": run.get("keyspace", {}),
        "redis_forks": run.get("redis_forks", 0),
        "counters": run.get("counters", {}),
        "floor_peak_rss_mb": round(floor_mem.peak, 1),
    }
    print(f"accord: {summary['accord_rps']:,.0f} rec/s  p50 {summary['p50_ms']} ms  p99 {summary['p99_ms']} ms  "
          f"({summary['records_synced']}/{n} synced CRM → Ray poller → Redis Streams → Ray writer → ERP)")
    print(f"  cpu s per 1000 records: {json.dumps(summary['cpu_s_per_1000'])}")
    print(f"ratio {summary['ratio']:.1%} of the floor; {summary['api_calls_per_record']} ERP API calls per record")
    return summary, run


def sizes(text: str) -> list[int]:
    """``--records 5000,20000``: one run per size, smallest first."""
    return sorted(int(x) for x in text.split(",") if x.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=sizes, default=[5000],
                        help="records per run; several sizes (5000,20000) compare the cost per record")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per size, interleaved (5000, 20000, 5000, ...); the comparison takes each size's "
                             "median (default: 5 with several sizes, since one run of 5,000 records varies by "
                             "2x in CPU on a shared 2-core machine; else 1)")
    parser.add_argument("--redis-binary", default=None, help="redis-server to use (default: the embedded 6.2)")
    parser.add_argument("--kills", action="store_true",
                        help="also run with kill -9 of writer:account:0 and poller:erp while records are in flight, "
                             "and compare with the fault-free run (at the largest size)")
    parser.add_argument("--kill-at", type=float, default=0.3,
                        help="share of the records in the ERP when the kills happen (default 0.3)")
    args = parser.parse_args()
    setup("WARNING", json=False)
    data_dir = tempfile.mkdtemp(prefix="accord-bench-")
    server = EmbeddedRedis(Path(data_dir) / "redis", binary=args.redis_binary).start()
    runs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    faulted: dict[str, Any] = {}
    try:
        version = server.version()
        repeat = args.repeat if args.repeat is not None else (5 if len(args.records) > 1 else 1)
        runs = [one_size(server, n, data_dir) for _ in range(max(1, repeat)) for n in args.records]
        if args.kills:
            faulted = asyncio.run(accord_run(server.url, args.records[-1], data_dir, kill_at=args.kill_at))
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)  # the AOF of the last size: 50 MB at 20,000 records
    summary, run = runs[-1]
    n = summary["records"]
    summary = {**summary, "redis": version, "python": platform.python_version(), "cpus": os.cpu_count()}
    if len(args.records) > 1:
        medians = [median_run([r for r, _ in runs if r["records"] == size]) for size in args.records]
        summary = {"runs": [r for r, _ in runs], "medians": medians, **linearity(medians), "redis": version,
                   "python": platform.python_version(), "cpus": os.cpu_count()}
        print(f"linear: rate {summary['rate_ratio']}x at {n} vs {args.records[0]} records (median of "
              f"{medians[0]['runs']} run(s) each); CPU s per 1000 "
              f"records {json.dumps(summary['cpu_per_1000_ratio'])}; {'LINEAR' if summary['linear'] else 'NOT LINEAR'}"
              f" (rate >= 0.9x, every process <= 1.15x); the machine's speed (floor rate) {summary.get('floor_rate_ratio')}x")
    if args.kills:
        summary["with_kills"] = k = kill_figures(run, faulted, n)
        print(f"kills : {k['records_synced']}/{n} synced after {len(k['kills'])} kills; ERP calls {k['erp_calls']} vs "
              f"{k['erp_calls_fault_free']} fault-free ({k['erp_calls_ratio']}x); finished in {k['finish_s']} s vs "
              f"{k['finish_s_fault_free']} s ({k['finish_delta_s']:+} s); {'DONE' if k['done'] else 'NOT DONE'} "
              "(all synced, <= 1.2x calls, <= +15 s)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
