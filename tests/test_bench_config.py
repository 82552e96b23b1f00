"""The benchmarks run valid configurations, and the daemon refuses one that is not (issue 10, item 7: the
throughput benchmark kept the demo's provisioning and reconciliation jobs while syncing only accounts; its
provisioner failed 929 times on `NOGROUP` and the jobs on `KeyError`, each with a full traceback)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from accord.app import Daemon
from accord.config.load import ConfigError, loads
from accord.config.settings import ReconcileJob
from tests.test_config import GOOD

ROOT = Path(__file__).resolve().parents[1]
BENCH_CONFIG = """
import json, sys
from accord.config.load import check
from accord.sandboxes.firm.world import World
from bench.throughput import bench_settings
world = World().start()
try:
    settings = bench_settings(world, "redis://127.0.0.1:1/0", sys.argv[1])
finally:
    world.stop()
print(json.dumps({"errors": check(settings), "provisioning": settings.provisioning is not None,
                  "reconcile": sorted(settings.reconcile), "entities": sorted(settings.entities)}))
"""


def test_the_throughput_benchmark_runs_a_valid_configuration(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", BENCH_CONFIG, str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)  # ``bench`` is imported from the repository root, as it is run
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"errors": [], "provisioning": False, "reconcile": [], "entities": ["account"]}


def test_the_daemon_refuses_settings_built_in_code_that_fail_the_checks() -> None:
    settings = loads(GOOD, env={"SF_SECRET": "x"})
    bad = msgspec.structs.replace(settings, reconcile={
        "invoices": ReconcileJob(entity="invoice", source="erp", target="crm")})
    daemon = Daemon(bad)
    with pytest.raises(ConfigError) as err:
        asyncio.run(daemon.run(signals=False, own_ray=False))
    assert err.value.errors == ["$.reconcile.invoices.entity: `invoice` is not configured under [entities]; "
                                "add [entities.invoice] or remove [reconcile.invoices]"]
    assert daemon.embedded is None and daemon.supervisor is None  # refused before anything started


def test_repeated_runs_compare_by_their_medians() -> None:
    from bench.measure import linearity, median_run

    small = [{"records": 5000, "accord_rps": r, "floor_rps": f, "cpu_s_per_1000": {"driver": d}}
             for r, f, d in ((900, 30_000, 0.3), (1200, 40_000, 0.45), (1300, 35_000, 0.44))]
    large = [{"records": 20000, "accord_rps": r, "floor_rps": f, "cpu_s_per_1000": {"driver": d}}
             for r, f, d in ((1100, 28_000, 0.47), (1250, 26_000, 0.43), (800, 40_000, 0.7))]
    medians = [median_run(small), median_run(large)]
    assert medians[0]["accord_rps"] == 1200 and medians[0]["cpu_s_per_1000"] == {"driver": 0.44}
    figures = linearity(medians)
    assert figures["rate_ratio"] == round(1100 / 1200, 3) and figures["cpu_per_1000_ratio"] == {"driver": round(0.47 / 0.44, 3)}
    assert figures["linear"] is True and figures["floor_rate_ratio"] == round(28_000 / 35_000, 3)


@pytest.mark.redis
async def test_the_keyspace_summary_counts_keys_by_kind(real_redis: Redis) -> None:
    from bench.measure import keyspace_summary

    await real_redis.set("accord:bench:xid:account:crm:1", "g1")
    await real_redis.set("accord:bench:xid:account:erp:9", "g1")
    await real_redis.hset("accord:bench:seen:crm:account:1", "name", "Acme")
    await real_redis.set("unrelated", 1, ex=60)
    summary = await keyspace_summary(real_redis)
    assert summary["keys"] == 4 and summary["expires"] == 1 and summary["used_memory_mb"] > 0
    assert summary["by_kind"] == {"xid": 2, "seen": 1, "other": 1}


@pytest.mark.redis
async def test_each_benchmark_run_starts_from_an_empty_data_set_and_append_only_file(real_redis: Redis) -> None:
    from bench.measure import empty_redis

    for i in range(200):
        await real_redis.set(f"accord:bench:xid:account:crm:{i}", "g" * 500)
    before = await real_redis.info("stats")
    await empty_redis(real_redis)
    persistence = await real_redis.info("persistence")
    assert await real_redis.dbsize() == 0 and persistence["aof_enabled"] == 1
    assert persistence["aof_rewrite_in_progress"] == 0 and persistence["aof_last_bgrewrite_status"] == "ok"
    assert (await real_redis.info("stats"))["total_forks"] == before["total_forks"] + 1  # rewritten, and done
    assert persistence["aof_current_size"] < 200 * 500  # the 200 keys' SETs are no longer in the file


@pytest.mark.redis
async def test_the_keyspace_benchmark_leaves_what_a_synced_record_leaves(real_redis: Redis, redis_server: Any) -> None:
    """``bench.redis_keyspace``: eight keys per record (two seen, two xid, xref, ver, match, trace) plus the
    16 change streams, and each step's figures from that step's commands only."""
    from redis import Redis as SyncRedis

    from bench.redis_keyspace import measure

    rows = measure(SyncRedis.from_url(redis_server.url), 300, 150)
    assert [(r["records"], r["keys"]) for r in rows] == [(150, 150 * 8 + 16), (300, 300 * 8 + 16)]
    for row in rows:
        assert set(row["us_per_call"]) == {"hset", "hgetall", "set", "get", "smembers", "sadd", "rpush", "expire",
                                           "xadd"}
        assert row["us_per_record"] > 0
