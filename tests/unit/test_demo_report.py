"""The demo's API-use and freshness report reads what happened: sandbox request counts, the poller's waits
and the audit trail's published→written times."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from accord.config.load import loads
from accord.sandboxes.firm.demo_report import ApiUse, Freshness, freshness, p95
from accord.streams.audit import AuditTrail, TraceEvent
from accord.streams.keys import Keys
from tests.helpers import CRM_AND_ERP


def test_api_use_per_change_and_its_verdict() -> None:
    assert ApiUse("psa", 300, 200).per_change == 1.5 and "(ok)" in ApiUse("psa", 300, 200).line()
    assert "over 2" in ApiUse("erp", 500, 200).line()
    assert ApiUse("erp", 5, 0).per_change == 5.0  # no change synced: every call counts against one
    busy = ApiUse("erp", 9, 6, (("query", 5), ("batch", 3), ("item", 1))).line()
    assert busy.splitlines()[1].split() == ["query", "5,", "batch", "3,", "item", "1"]  # where the calls went


def test_freshness_is_seen_plus_written_against_base_plus_two_seconds() -> None:
    assert Freshness("psa", "time_entry", 2.0, 2.1, 1.5, 40).ok
    late = Freshness("psa", "time_entry", 2.0, 3.0, 1.5, 40)
    assert not late.ok and "late" in late.line()
    assert p95([1.0]) == 1.0 and p95([]) == 0.0 and 9.0 <= p95([float(i) for i in range(11)]) <= 10.0


@pytest.mark.redis
async def test_freshness_reads_the_poll_waits_and_the_audit_trail(real_redis: Redis) -> None:
    settings = loads(CRM_AND_ERP + '[entities.account]\nowner = "crm"\nsystems = ["crm", "erp"]\n'
                     'poll_interval = "1s"\n', env={})
    keys = Keys(settings.namespace)
    await real_redis.rpush(keys.poll_finds("crm", "account"), "1.0", "1.2", "0.9", "7.5:idle")
    trail = AuditTrail(keys, 60)

    async def event(flow: str, kind: str, system: str, at_ms: int) -> None:
        async with real_redis.pipeline(transaction=False) as pipe:
            trail.queue(pipe, TraceEvent(correlation_id=flow, kind=kind, entity="account", system=system, at_ms=at_ms))
            await pipe.execute()

    for flow, (published, written) in {"c1": (1000, 1800), "c2": (2000, 3500)}.items():
        await event(flow, "published upsert", "crm", published)
        await event(flow, "written", "erp", written)
    (fresh,) = await freshness(real_redis, settings)
    assert (fresh.system, fresh.entity, fresh.flows) == ("crm", "account", 2)
    assert 1.1 <= fresh.seen_p95_s <= 1.2 and 0.8 <= fresh.written_p95_s <= 1.5 and fresh.ok
    assert fresh.idle_waits == (7.5,) and "1 first change(s) after an idle spell, seen within 7.5s" in fresh.line()
    (later,) = await freshness(real_redis, settings, since_ms=1500)  # the initial load is not counted
    assert later.flows == 1 and later.written_p95_s == 1.5
    # a flow with two targets has reached them when it is in the last one (a write back to its source is not one)
    for kind, system, at in (("published upsert", "crm", 4000), ("written", "psa", 4100), ("written", "erp", 9000),
                             ("published upsert", "erp", 9100), ("written", "crm", 9500)):
        await event("c3", kind, system, at)
    (both,) = await freshness(real_redis, settings, since_ms=3000)
    assert both.flows == 1 and both.written_p95_s == 5.0
