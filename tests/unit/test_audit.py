"""The audit trail on a real Redis (6.2 and 7): one small list per flow, read in order, retained for the
configured time; a trail an earlier version wrote as a stream is still read."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from accord.streams.audit import AuditTrail, TraceEvent
from accord.streams.batch import Batch
from accord.streams.keys import Keys

pytestmark = pytest.mark.redis


async def test_a_flow_is_one_small_list_read_in_order(real_redis: Redis) -> None:
    keys, trail = Keys("audit"), AuditTrail(Keys("audit"), 3600)
    batch = Batch()
    for at, kind, system in ((1000, "published upsert", "crm"), (1500, "written", "erp"), (1600, "written", "psa")):
        trail.queue(batch, TraceEvent(correlation_id="c1", kind=kind, entity="account", system=system,
                                      detail=f"{kind} in {system}", at_ms=at))
    trail.queue(batch, TraceEvent(correlation_id="", kind="nowhere"))  # no flow: not kept
    await batch.apply(real_redis)
    events = await trail.read(real_redis, "c1")
    assert [(e.kind, e.system, e.at_ms, e.detail) for e in events] == [
        ("published upsert", "crm", 1000, "published upsert in crm"), ("written", "erp", 1500, "written in erp"),
        ("written", "psa", 1600, "written in psa")]
    assert all(e.correlation_id == "c1" and e.entity == "account" for e in events)
    assert await real_redis.type(keys.trace("c1")) == b"list"
    assert 3000 < await real_redis.ttl(keys.trace("c1")) <= 3600
    # a stream per flow took ~4.7 KB in Redis (a new stream's node is allocated at stream-node-max-bytes)
    assert (await real_redis.memory_usage(keys.trace("c1")) or 0) < 600


async def test_a_trail_written_as_a_stream_by_an_earlier_version_is_read(real_redis: Redis) -> None:
    keys = Keys("audit")
    await real_redis.xadd(keys.trace("old"), {"kind": "written", "entity": "account", "system": "erp",
                                              "detail": "created", "at_ms": "1700"})
    [event] = await AuditTrail(keys, 60).read(real_redis, "old")
    assert (event.correlation_id, event.kind, event.system, event.detail, event.at_ms) == (
        "old", "written", "erp", "created", 1700)
