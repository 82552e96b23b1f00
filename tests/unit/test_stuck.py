"""What is stuck, named (``accord.stuck``), and settling on facts (``accord.settle``), on a real Redis:
a pending entry with its reason from the flow's trace, an undelivered one ("never delivered"), the
settle facts they make, and a settle that times out naming them or settles once drained."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from accord.config.load import loads
from accord.config.settings import Settings
from accord.settle import read_facts, settle
from accord.streams.audit import AuditTrail, TraceEvent
from accord.streams.keys import Keys
from accord.streams.log import ensure_groups
from accord.streams.records import ChangeRecord, encode, now_ms
from accord.stuck import stuck_entries
from tests.helpers import CRM_AND_ERP

pytestmark = pytest.mark.redis

CONFIG = """
namespace = "stuck"
[streams]
partitions = 2
""" + CRM_AND_ERP + """[entities.account]
owner = "crm"
systems = ["crm", "erp"]
"""


@pytest.fixture
def settings() -> Settings:
    return loads(CONFIG, env={})


async def _publish(redis: Redis, keys: Keys, partition: int, gid: str, source_id: str, flow: str) -> str:
    """One change record from the CRM, added the way a poller adds it (entry and produced counter)."""
    change = ChangeRecord(change_id=f"c-{gid}", entity="account", gid=gid, op="upsert", source="crm",
                          source_id=source_id, version=1, fields={"name": source_id}, correlation_id=flow,
                          observed_ms=now_ms())
    entry_id = await redis.xadd(keys.changes("account", partition), {"d": encode(change)})
    await redis.hincrby(keys.produced("account"), str(partition), 1)
    return entry_id.decode()


async def _deliver(redis: Redis, keys: Keys, partition: int, target: str) -> list[str]:
    """What a writer's read does: new entries to the target group's partition consumer (they turn pending)."""
    reply = await redis.xreadgroup(Keys.group(target), Keys.consumer(partition),
                                   {keys.changes("account", partition): ">"}, count=10)
    return [entry_id.decode() for _stream, entries in reply for entry_id, _fields in entries]


async def _stuck_world(redis: Redis, settings: Settings) -> tuple[str, str]:
    """Partition 0: an entry the ERP writer read and parked (pending, with a trace event); partition 1: an
    entry nobody has read yet (lag only). The CRM group acks both (they came from the CRM)."""
    keys = Keys(settings.namespace)
    await ensure_groups(redis, keys, "account", ["crm", "erp"], 2)
    parked = await _publish(redis, keys, 0, "g-parked", "001A", "flow-a")
    waiting = await _publish(redis, keys, 1, "g-waiting", "001B", "flow-b")
    for p, entry_id in ((0, parked), (1, waiting)):
        assert await _deliver(redis, keys, p, "crm") == [entry_id]
        await redis.xack(keys.changes("account", p), "to:crm", entry_id)
        await redis.hincrby(keys.acked("account", "crm"), str(p), 1)
    assert await _deliver(redis, keys, 0, "erp") == [parked]
    trail, pipe = AuditTrail(keys, 60), redis.pipeline(transaction=False)
    trail.queue(pipe, TraceEvent(correlation_id="flow-a", kind="published", entity="account", gid="g-parked",
                                 system="crm", record="001A", detail="name changed"))
    trail.queue(pipe, TraceEvent(correlation_id="flow-a", kind="parked", entity="account", gid="g-parked",
                                 system="erp", detail="erp: erp has not finished its first full read of account"))
    await pipe.execute()
    return parked, waiting


async def test_stuck_entries_name_pending_and_undelivered_records(real_redis: Redis, settings: Settings) -> None:
    parked, waiting = await _stuck_world(real_redis, settings)

    stuck = await stuck_entries(real_redis, settings, limit=20)

    assert (stuck.pending, stuck.undelivered) == (1, 1)
    first, second = stuck.entries  # oldest first
    assert (first.entity, first.target, first.partition, first.entry_id) == ("account", "erp", 0, parked)
    assert (first.gid, first.source, first.source_id, first.correlation_id) == ("g-parked", "crm", "001A", "flow-a")
    assert first.delivered and first.deliveries == 1 and first.idle_seconds >= 0
    assert first.reason.startswith("parked: erp: erp has not finished its first full read of account")
    assert (second.target, second.partition, second.entry_id, second.gid) == ("erp", 1, waiting, "g-waiting")
    assert not second.delivered and second.deliveries == 0 and second.reason == "never delivered"
    assert "account -> erp p0" in first.describe() and "001A" in first.describe()
    [only] = (await stuck_entries(real_redis, settings, limit=1)).entries  # bounded: the oldest
    assert only.entry_id == parked


async def test_settle_names_what_is_stuck_then_settles_once_drained(real_redis: Redis, settings: Settings) -> None:
    keys = Keys(settings.namespace)
    parked, waiting = await _stuck_world(real_redis, settings)
    facts = await read_facts(real_redis, settings)
    assert (facts.lag, facts.pending, facts.undelivered, facts.idle) == (2, 1, 1, False)

    stuck = await settle(real_redis, settings, since_ms=now_ms(), limit_s=0.3, interval=0.05)
    assert not stuck.settled
    text = "\n".join(stuck.lines())
    assert "STUCK: not settled" in text and "g-parked (crm 001A)" in text and "never delivered" in text
    assert "pollers yet to read again: crm/account, erp/account" in text

    assert await _deliver(real_redis, keys, 1, "erp") == [waiting]
    for p, entry_id in ((0, parked), (1, waiting)):  # the writer finishes both
        await real_redis.xack(keys.changes("account", p), "to:erp", entry_id)
        await real_redis.hincrby(keys.acked("account", "erp"), str(p), 1)
    assert (await read_facts(real_redis, settings)).idle
    quiet = await settle(real_redis, settings, since_ms=now_ms(), limit_s=0.3, interval=0.05)
    assert not quiet.settled, "idle is not settled until every poller has read its systems once more"
    assert "pollers yet to read again: crm/account, erp/account" in "\n".join(quiet.lines())
    polling = asyncio.create_task(_pollers_reading(real_redis, keys))
    try:
        done = await settle(real_redis, settings, since_ms=now_ms(), limit_s=5, interval=0.05)
    finally:
        polling.cancel()
    assert done.settled and done.lines()[0].startswith("settled in")


async def _pollers_reading(redis: Redis, keys: Keys) -> None:
    """Pollers at work: a fetch of each system every 20 ms, finding nothing new."""
    while True:
        for system in ("crm", "erp"):
            await redis.hset(keys.cursor(system, "account"), "fetched_ms", now_ms())
        await asyncio.sleep(0.02)
