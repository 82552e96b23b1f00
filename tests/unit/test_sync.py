"""Poller and writer logic on fakeredis and real Redis, against in-memory systems with scripted faults."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from accord.actors.poll.poller import Poller
from accord.actors.write.writer import Writer
from accord.config.load import loads
from accord.config.settings import Settings
from accord.connectors.errors import Gone, Permanent, RateLimited, Retryable
from accord.streams.exceptions import decode_exception
from accord.streams.keys import Keys
from accord.streams.log import ensure_groups
from accord.streams.records import ChangeRecord, encode, partition_of
from accord.streams.state import Stats
from tests.fakes import MemorySystem
from tests.helpers import CRM_AND_ERP, wait_for

CONFIG = """
namespace = "t"
[streams]
partitions = 4
max_deliveries = 3
retry_for = "0s"
retry_backoff_cap = "1ms"
trim_interval = "1h"
""" + CRM_AND_ERP + """[entities.account]
owner = "crm"
systems = ["crm", "erp"]
fields = { tax_id = "erp", payment_terms = "erp" }
"""


class Rig:
    def __init__(self, redis: Redis, config: str = CONFIG) -> None:
        self.settings: Settings = loads(config, env={})
        self.redis = redis
        self.keys = Keys(self.settings.namespace)
        self.crm = MemorySystem("crm", batch_size=3)
        self.erp = MemorySystem("erp", batch_size=3)
        self.pollers = {s: Poller(self.settings, s, "", connector=c, redis=redis)
                        for s, c in (("crm", self.crm), ("erp", self.erp))}
        self.writer = self.new_writer()

    def new_writer(self) -> Writer:
        writer = Writer(self.settings, "account", "", connectors={"crm": self.crm, "erp": self.erp},
                        redis=self.redis)
        writer.assign(range(4))
        return writer

    async def setup(self) -> Rig:
        await ensure_groups(self.redis, self.keys, "account", ["crm", "erp"], 4)
        await self.poll("erp")  # the ERP's first full read: creates there wait for it (match rules)
        return self

    async def poll(self, system: str) -> None:
        await self.pollers[system].poll_page("account")

    async def settle(self, rounds: int = 6) -> None:
        """Poll both systems and sweep until nothing moves (bounded)."""
        for _ in range(rounds):
            await self.poll("crm")
            await self.poll("erp")
            while await self.writer.sweep():
                pass

    async def counts(self) -> dict[tuple[str, ...], int]:
        return await Stats(self.keys).read(self.redis, Stats.RECORDS)

    async def exceptions(self) -> list[Any]:
        rows = await self.redis.hgetall(self.keys.exception_index())
        return [decode_exception(v) for v in rows.values()]


@pytest.fixture
async def rig(any_redis: Redis) -> Rig:
    return await Rig(any_redis).setup()


def erp_view(rig: Rig) -> dict[str | None, dict[str, Any]]:
    return {rig.erp.gids[r]: f for r, f in rig.erp.records.items()}


async def test_create_update_delete_flow_once_with_xref(rig: Rig) -> None:
    a = rig.crm.user_create({"name": "Acme", "country": "US", "tax_id": "crm-typed"})
    b = rig.crm.user_create({"name": "Globex", "country": "DE", "status": "active"})
    await rig.settle()
    assert rig.erp.creates == 2
    gid_a = (await rig.redis.get(rig.keys.xid("account", "crm", a))).decode()
    erp_id = (await rig.redis.hget(rig.keys.xref("account", gid_a), "erp")).decode()
    # a create seeds every known value, the ERP-owned tax id included (the ERP has none yet)
    assert rig.erp.records[erp_id] == {"name": "Acme", "country": "US", "tax_id": "crm-typed"}
    assert (await rig.redis.get(rig.keys.xid("account", "erp", erp_id))).decode() == gid_a

    rig.crm.user_update(a, {"name": "Acme Corp", "tax_id": "crm-retyped"})
    rig.crm.user_delete(b)
    await rig.settle()
    assert rig.erp.creates == 2
    view = erp_view(rig)
    assert view[gid_a]["name"] == "Acme Corp"
    assert view[gid_a]["tax_id"] == "crm-typed"  # after the create, the ERP owns it: CRM edits do not flow
    assert (await rig.counts())[("violations", "crm", "account")] == 1
    gid_b = (await rig.redis.get(rig.keys.xid("account", "crm", b))).decode()
    assert view[gid_b]["status"] == "inactive"
    await rig.settle()  # the ERP's deactivation of a record its owner deleted is not an edit to revert
    assert erp_view(rig)[gid_b]["status"] == "inactive"
    assert ("violations", "erp", "account") not in await rig.counts()


async def test_erp_owned_field_flows_back_and_echoes_settle(rig: Rig) -> None:
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    rig.erp.user_update(erp_id, {"tax_id": "US-991", "payment_terms": "net_30"})
    await rig.settle()
    assert rig.crm.records[a]["tax_id"] == "US-991"
    assert rig.crm.records[a]["payment_terms"] == "net_30"
    writes_before = (rig.crm.write_calls, rig.erp.write_calls)
    await rig.settle()  # echoes of Accord's own writes must not produce more writes
    assert (rig.crm.write_calls, rig.erp.write_calls) == writes_before


async def test_non_owner_edit_is_a_counted_violation_not_a_change(rig: Rig) -> None:
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    rig.erp.user_update(erp_id, {"name": "ACME (edited in ERP)"})
    await rig.settle()
    assert rig.crm.records[a]["name"] == "Acme"
    assert (await rig.counts())[("violations", "erp", "account")] == 1


async def test_transient_storm_retries_without_loss_or_duplicate(rig: Rig) -> None:
    for i in range(7):
        rig.crm.user_create({"name": f"Firm {i}", "country": "US"})
    rig.erp.fail_batches = [Retryable("erp", "503"), RateLimited("erp", "429", retry_after=0.0),
                            Retryable("erp", "timeout")]
    await rig.poll("crm")

    async def all_written() -> bool:
        await rig.writer.sweep()
        return len(rig.erp.records) == 7

    await wait_for(all_written, timeout=10, interval=0.005, message="7 ERP records")
    assert rig.erp.fail_batches == []
    names = sorted(f["name"] for f in rig.erp.records.values())
    assert names == [f"Firm {i}" for i in range(7)] and rig.erp.creates == 7
    assert await rig.exceptions() == []


async def test_permanent_record_error_files_exception_and_the_rest_flows(rig: Rig) -> None:
    bad = rig.crm.user_create({"name": "Bad", "country": "US"})
    for i in range(3):
        rig.crm.user_create({"name": f"Good {i}", "country": "US"})
    await rig.poll("crm")
    gid_bad = (await rig.redis.get(rig.keys.xid("account", "crm", bad))).decode()
    rig.erp.fail_records[gid_bad] = Permanent("erp", "6240 Duplicate Name Exists Error")
    while await rig.writer.sweep():
        pass
    assert sorted(f["name"] for f in rig.erp.records.values()) == ["Good 0", "Good 1", "Good 2"]
    [exc] = await rig.exceptions()
    assert exc.reason == "permanent" and exc.gid == gid_bad and "6240" in exc.message
    assert exc.correlation_id and exc.target == "erp"
    for p in range(4):
        assert (await rig.redis.xpending(rig.keys.changes("account", p), "to:erp"))["pending"] == 0


async def test_poison_and_malformed_entries_are_dead_lettered(rig: Rig) -> None:
    p = 0
    stream = rig.keys.changes("account", p)
    await rig.redis.xadd(stream, {"d": b"\xc1 not msgpack"})
    await rig.redis.xadd(stream, {"x": b"no d field"})
    rig.crm.user_create({"name": "After", "country": "US"})
    await rig.poll("crm")
    while await rig.writer.sweep():
        pass
    filed = sorted((e.target, e.reason) for e in await rig.exceptions())  # each target group files its own
    assert filed == [("crm", "malformed"), ("crm", "malformed"), ("erp", "malformed"), ("erp", "malformed")]
    assert [f["name"] for f in rig.erp.records.values()] == ["After"]


async def test_always_failing_record_moves_to_exceptions_after_max_deliveries(rig: Rig) -> None:
    a = rig.crm.user_create({"name": "Stuck", "country": "US"})
    await rig.poll("crm")
    gid = (await rig.redis.get(rig.keys.xid("account", "crm", a))).decode()
    rig.erp.fail_records[gid] = Retryable("erp", "UNABLE_TO_LOCK_ROW")

    async def filed() -> list[Any]:
        await rig.writer.sweep()
        return await rig.exceptions()

    [exc] = await wait_for(filed, timeout=10, interval=0.005, message="the exception")
    assert exc.reason == "max_deliveries" and exc.attempts == 4
    stream = rig.keys.changes("account", partition_of(gid, 4))
    assert (await rig.redis.xpending(stream, "to:erp"))["pending"] == 0


async def test_version_guard_skips_older_and_replayed_changes(rig: Rig) -> None:
    a = rig.crm.user_create({"name": "V1", "country": "US"})
    await rig.settle()
    gid = (await rig.redis.get(rig.keys.xid("account", "crm", a))).decode()
    p = partition_of(gid, 4)
    stale = ChangeRecord(change_id="old", entity="account", gid=gid, op="upsert", source="crm", source_id=a,
                         version=0, fields={"name": "Ancient"})
    await rig.redis.xadd(rig.keys.changes("account", p), {"d": encode(stale)})
    while await rig.writer.sweep():
        pass
    assert erp_view(rig)[gid]["name"] == "V1"
    assert (await rig.counts())[("skipped", "account", "stale_version")] == 1


async def test_changes_sharing_a_version_are_all_applied_in_order(rig: Rig) -> None:
    """Systems with coarse stamps (Harvest's ``updated_at`` is to the second) give two edits made within
    one second one version; the poller publishes both (its de-dup keys hold the content too), so the
    version guard must skip only older versions (regression: a time entry logged and approved within one
    second reached the writer in one batch; the approval was dropped as "not newer", the draft was
    filtered by the ERP's ``when`` and the entry never reached the ERP)."""
    a = rig.crm.user_create({"name": "V1", "country": "US"})
    await rig.settle()
    gid = (await rig.redis.get(rig.keys.xid("account", "crm", a))).decode()
    version = rig.crm.tables["account"].versions[a]

    async def publish(*names: str, at: int) -> None:
        for name in names:
            change = ChangeRecord(change_id=f"c-{name}", entity="account", gid=gid, op="upsert", source="crm",
                                  source_id=a, version=at, fields={"name": name})
            await rig.redis.xadd(rig.keys.changes("account", partition_of(gid, 4)), {"d": encode(change)})
        while await rig.writer.sweep():
            pass

    await publish("Same Second", at=version)  # the version the ERP already has, another edit
    assert erp_view(rig)[gid]["name"] == "Same Second"
    await publish("First", "Second", at=version + 1)  # two edits of one second in one batch
    assert erp_view(rig)[gid]["name"] == "Second"
    assert ("skipped", "account", "stale_version") not in await rig.counts()


async def test_crash_after_write_before_ack_never_duplicates(rig: Rig) -> None:
    for i in range(4):
        rig.crm.user_create({"name": f"Firm {i}", "country": "US"})
    await rig.poll("crm")
    # simulate a writer that wrote to the ERP, then died before its commit (no XACK, no xref)
    async def crash(*_: Any) -> None:
        raise RuntimeError("killed mid-batch")

    rig.writer.lane("erp")._commit = crash  # type: ignore[method-assign]
    with pytest.raises(ExceptionGroup):
        await rig.writer.sweep()
    assert rig.erp.creates == 4
    rig.writer = rig.new_writer()  # the restarted actor: fresh memory, same Redis
    while await rig.writer.sweep():
        pass
    await rig.settle()
    assert rig.erp.creates == 4 and len(rig.erp.records) == 4


async def test_update_to_a_record_deleted_in_the_target_is_skipped_not_an_exception(rig: Rig) -> None:
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    gid = (await rig.redis.get(rig.keys.xid("account", "crm", a))).decode()
    erp_id = next(iter(rig.erp.records))
    rig.erp.fail_records[gid] = Gone("crm", "ENTITY_IS_DELETED")
    rig.crm.fail_records[gid] = Gone("crm", "ENTITY_IS_DELETED")
    rig.erp.user_update(erp_id, {"tax_id": "T-1"})
    await rig.settle()
    assert await rig.exceptions() == []
    assert (await rig.counts())[("skipped", "account", "target_deleted")] == 1


async def test_a_non_owner_catching_up_with_the_owner_is_not_a_violation(rig: Rig) -> None:
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    # the owner changes the field, and the ERP derives the same value before Accord has read the owner
    rig.crm.user_update(a, {"name": "Acme Holdings"})
    rig.erp.user_update(erp_id, {"name": "Acme Holdings"})
    await rig.poll("erp")  # looks like an edit of a CRM-owned field: parked until the CRM is read again
    assert ("violations", "erp", "account") not in await rig.counts()
    await rig.settle()
    assert ("violations", "erp", "account") not in await rig.counts()
    assert rig.crm.records[a]["name"] == rig.erp.records[erp_id]["name"] == "Acme Holdings"
    assert not await rig.redis.exists(rig.keys.suspects("erp", "account"))


async def test_a_real_non_owner_edit_is_judged_after_the_owner_is_read_again(rig: Rig) -> None:
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    rig.erp.user_update(erp_id, {"name": "Typo Inc"})
    await rig.poll("erp")
    assert ("violations", "erp", "account") not in await rig.counts()
    await rig.poll("crm")
    await rig.poll("erp")
    assert (await rig.counts())[("violations", "erp", "account")] == 1
    await rig.settle()
    assert rig.erp.records[erp_id]["name"] == rig.crm.records[a]["name"] == "Acme"
