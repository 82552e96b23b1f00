"""Redis alone, with the keys a synced record leaves and no Accord code: does an O(1) command cost more
as the keyspace grows?

    python -m bench.redis_keyspace                      # 30,000 records in steps of 5,000, embedded Redis
    python -m bench.redis_keyspace --redis-binary /usr/bin/redis-server   # e.g. Debian's Redis 7 (jemalloc)

Each record gets what one synced account leaves in Redis (``bench.throughput``'s keyspace: two ``seen``
hashes, two ``xid`` strings, an ``xref`` and a ``ver`` hash, a ``match`` set, a ``trace`` list with its
TTL, a change in one of 16 streams) and the reads a poller and a writer make of it (HGETALL, GET, SMEMBERS
of an absent key). Per step: the keys Redis holds, its command time per record (``INFO commandstats``,
reset each step) and each command's time per call. The commands per record are the same at every step,
so a rising time per record is Redis' own cost of a larger keyspace, the share of
``bench.throughput``'s Redis CPU that no change to Accord's commands removes. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from redis import Redis

from accord.redis_server import EmbeddedRedis
from accord.streams.keys import Keys

KEYS = Keys("bench")
SEEN = {f"field{i}": b"\xb3Bench Client 000000" for i in range(11)}  # 11 canonical fields, msgpack values
TRACE_EVENT = b"e" * 270  # one msgpack trace event
CHANGE = b"c" * 400  # one encoded change record
PIPELINE = 100  # records per round trip


def _record(pipe: Any, i: int) -> None:
    crm, erp, gid = f"0015g{i:013d}AAA", str(i + 1), f"1a2b{i:022x}"
    for system, rid in (("crm", crm), ("erp", erp)):
        pipe.hset(KEYS.seen(system, "account", rid), mapping=SEEN)
        pipe.set(KEYS.xid("account", system, rid), gid)
        pipe.hgetall(KEYS.seen(system, "account", rid))
        pipe.smembers(KEYS.match("account", system, 1, f"absent{i}"))
    pipe.hset(KEYS.xref("account", gid), mapping={"crm": crm, "erp": erp})
    pipe.hset(KEYS.version("erp", "account", gid), "crm", 1796405262775)
    pipe.sadd(KEYS.match("account", "erp", 0, f"bench client {i:06d}"), erp)
    trace = KEYS.trace(f"{i:032x}")
    for _ in range(2):
        pipe.rpush(trace, TRACE_EVENT)
        pipe.expire(trace, 30 * 86400)
    pipe.xadd(KEYS.changes("account", i % 16), {"d": CHANGE})
    pipe.get(KEYS.xid("account", "crm", crm))


def measure(redis: Redis, records: int, step: int) -> list[dict[str, Any]]:
    """Write ``records`` records' keys in steps of ``step``; each step's figures."""
    rows = []
    for start in range(0, records, step):
        redis.config_resetstat()
        for first in range(start, min(start + step, records), PIPELINE):
            pipe = redis.pipeline(transaction=False)
            for i in range(first, min(first + PIPELINE, start + step, records)):
                _record(pipe, i)
            pipe.execute()
        done = min(start + step, records) - start
        stats = {name: s for cmd, s in redis.info("commandstats").items()
                 if not (name := cmd.removeprefix("cmdstat_")).startswith(("config", "info"))}  # ours, not the load
        rows.append({"records": start + done, "keys": redis.dbsize(),
                     "us_per_record": round(sum(s["usec"] for s in stats.values()) / done, 2),
                     "us_per_call": {name: round(s["usec_per_call"], 2) for name, s in sorted(stats.items())}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--step", type=int, default=5_000)
    parser.add_argument("--redis-binary", default=None, help="redis-server to use (default: the embedded 6.2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="accord-keyspace-") as data_dir:
        server = EmbeddedRedis(Path(data_dir) / "redis", binary=args.redis_binary).start()
        try:
            rows = measure(Redis.from_url(server.url), args.records, args.step)
            version = server.version()
        finally:
            server.stop()
    for row in rows:
        calls = ", ".join(f"{k} {v}" for k, v in row["us_per_call"].items())
        print(f"{row['records']:>7,} records {row['keys']:>8,} keys  {row['us_per_record']:6.2f} µs/record  ({calls})")
    first, last = rows[0]["us_per_record"], rows[-1]["us_per_record"]
    print(json.dumps({"redis": version, "rows": rows, "growth": round(last / first, 3) if first else None}))


if __name__ == "__main__":
    main()
