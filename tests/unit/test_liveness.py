"""Liveness of the writer (DESIGN §2): every pending entry is in a writer's hands or scheduled, a waiting
record holds back only its own later changes, waiting records are woken when what they wait for
happens, parking is not a delivery, a lost lease makes the partition re-read its pending entries, and a
safety net finds what nothing scheduled. On fakeredis, the embedded Redis 6.2 and Redis 7."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from accord.actors.poll.poller import Poller
from accord.actors.write.lane import PARK_RECHECK_S
from accord.actors.write.writer import Writer
from accord.config.load import loads
from accord.connectors.errors import Retryable
from accord.pipeline_metrics import render
from accord.streams.batch import Batch
from accord.streams.exceptions import decode_exception
from accord.streams.keys import Keys
from accord.streams.log import ensure_groups
from accord.streams.state import Stats
from tests.fakes import MemorySystem
from tests.helpers import CRM_AND_ERP, wait_for

ENTITIES = ("account", "contact")


def config(**streams: str) -> str:
    lines = "\n".join(f"{k} = {v}" for k, v in {"partitions": "1", "retry_backoff_cap": '"60s"', **streams}.items())
    return f"""
namespace = "l"
[streams]
{lines}
""" + CRM_AND_ERP + """
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
[entities.contact]
owner = "crm"
systems = ["crm", "erp"]
"""


class Rig:
    """CRM -> ERP accounts and contacts (a contact references its account) on in-memory systems."""

    def __init__(self, redis: Redis, text: str) -> None:
        self.redis = redis
        self.settings = loads(text, env={})
        self.keys = Keys(self.settings.namespace)
        self.crm = MemorySystem("crm", batch_size=5, entities=ENTITIES)
        self.erp = MemorySystem("erp", batch_size=5, entities=ENTITIES)
        self.pollers = {s: Poller(self.settings, s, "", connector=c, redis=redis)  # type: ignore[arg-type]
                        for s, c in (("crm", self.crm), ("erp", self.erp))}
        self.writers = {e: self.writer(e) for e in ENTITIES}

    def writer(self, entity: str) -> Writer:
        writer = Writer(self.settings, entity, "", connectors={"crm": self.crm, "erp": self.erp},  # type: ignore[dict-item]
                        redis=self.redis)
        writer.assign(range(self.settings.streams.partitions))
        return writer

    async def setup(self, *, erp_loaded: bool = True) -> Rig:
        for entity in ENTITIES:
            await ensure_groups(self.redis, self.keys, entity, ["crm", "erp"], self.settings.streams.partitions)
            if erp_loaded:
                await self.pollers["erp"].poll_page(entity)
        return self

    async def publish(self, entity: str) -> None:
        await self.pollers["crm"].poll_page(entity)

    async def sweep_until(self, entity: str, done: Any, within: float) -> None:
        """Sweep ``entity``'s writer until ``done()`` holds, for at most ``within`` seconds."""
        async def swept() -> bool:
            await self.writers[entity].sweep()
            return bool(done())
        await wait_for(swept, timeout=within, interval=0.02, message=f"{entity} written")

    def erp_contacts(self) -> dict[str, dict[str, Any]]:
        table = self.erp.tables["contact"]
        return {rid: fields for rid, fields in table.records.items() if rid not in table.deleted}

    async def pending(self, entity: str, target: str = "erp") -> int:
        total = 0
        for p in range(self.settings.streams.partitions):
            summary = await self.redis.xpending(self.keys.changes(entity, p), Keys.group(target))
            total += int(summary["pending"])
        return total

    async def exceptions(self) -> list[Any]:
        return [decode_exception(v) for v in (await self.redis.hgetall(self.keys.exception_index())).values()]


async def test_a_parked_record_holds_back_only_its_own_later_changes(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config()).setup()
    ready = rig.crm.user_create({"name": "Ready"})
    await rig.publish("account")
    await rig.sweep_until("account", lambda: len(rig.erp.records) == 1, within=5)
    late = rig.crm.user_create({"name": "Late"})  # not synced yet
    blocked = rig.crm.user_create({"last_name": "Blocked", "account": late}, entity="contact")
    rig.crm.user_create({"last_name": "Flows", "account": ready}, entity="contact")
    await rig.publish("contact")

    # one partition: the contact waiting for its account does not hold back the other one
    await rig.sweep_until("contact", lambda: any(f.get("last_name") == "Flows" for f in rig.erp_contacts().values()),
                          within=5)
    assert [f["last_name"] for f in rig.erp_contacts().values()] == ["Flows"]
    rig.crm.user_update(blocked, {"last_name": "Blocked Twice"}, entity="contact")
    await rig.publish("contact")
    await rig.writers["contact"].sweep()
    assert len(rig.erp_contacts()) == 1, "a later change of a parked record waits behind it"
    rig.crm.user_create({"last_name": "Next", "account": ready}, entity="contact")
    await rig.publish("contact")  # a new record of the same partition is not held back by the parked one
    await rig.sweep_until("contact", lambda: len(rig.erp_contacts()) == 2, within=2)
    assert sorted(f["last_name"] for f in rig.erp_contacts().values()) == ["Flows", "Next"]

    await rig.publish("account")  # "Late" is synced: the waiting contact is woken, not left to its re-check
    await rig.sweep_until("account", lambda: len(rig.erp.records) == 2, within=5)
    started = time.monotonic()
    await rig.sweep_until("contact", lambda: len(rig.erp_contacts()) == 3, within=PARK_RECHECK_S - 1)
    assert time.monotonic() - started < PARK_RECHECK_S
    names = sorted(f["last_name"] for f in rig.erp_contacts().values())
    assert names == ["Blocked Twice", "Flows", "Next"], "its changes arrive in order, merged into one write"
    assert rig.erp.creates == 5  # 2 accounts, 3 contacts: none twice
    assert await rig.pending("contact") == 0 and await rig.exceptions() == []


async def test_creates_waiting_for_the_first_full_read_are_woken_when_it_ends(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config()).setup(erp_loaded=False)
    rig.crm.user_create({"name": "Acme"})
    await rig.publish("account")
    for _ in range(3):
        await rig.writers["account"].sweep()
    assert rig.erp.creates == 0, "creates wait for the target's first full read (match rules)"
    await rig.pollers["erp"].poll_page("account")  # the ERP's first full read ends
    started = time.monotonic()
    await rig.sweep_until("account", lambda: rig.erp.creates == 1, within=PARK_RECHECK_S - 1)
    assert time.monotonic() - started < PARK_RECHECK_S
    assert await rig.pending("account") == 0


async def test_parking_is_not_a_delivery(any_redis: Redis) -> None:
    """A record parked through many re-checks is written when its reference arrives, not filed as
    exhausted (what made the demo's ERP task items fail 'transiently 10 times in a row')."""
    rig = await Rig(any_redis, config(max_deliveries="3", retry_backoff_cap='"1ms"')).setup()
    account = rig.crm.user_create({"name": "Acme"})
    rig.crm.user_create({"last_name": "Waits", "account": account}, entity="contact")
    await rig.publish("contact")
    for _ in range(12):  # re-planned every sweep (1 ms re-check), parked every time
        await rig.writers["contact"].sweep()
        await asyncio.sleep(0.002)
    assert rig.erp_contacts() == {}
    await rig.publish("account")
    await rig.sweep_until("account", lambda: rig.erp.creates == 1, within=5)
    await rig.sweep_until("contact", lambda: len(rig.erp_contacts()) == 1, within=5)
    assert await rig.exceptions() == []
    assert rig.erp.find_calls == 0, "a record never attempted is not looked up as a possible earlier create"


async def test_a_commit_refused_for_a_lost_lease_is_redone_once_the_lease_is_back(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config()).setup()
    for i in range(4):
        rig.crm.user_create({"name": f"Firm {i}"})
    await rig.publish("account")
    writer = rig.writers["account"]
    lease = rig.keys.lease("account", "erp", 0)
    original = rig.erp.write

    async def lease_lost_meanwhile(entity: str, ops: Any) -> Any:
        await any_redis.set(lease, "account/9/9", px=60_000)  # another replica took the lapsed lease
        return await original(entity, ops)

    rig.erp.write = lease_lost_meanwhile  # type: ignore[method-assign]
    await writer.sweep()
    rig.erp.write = original  # type: ignore[method-assign]
    assert rig.erp.creates == 4 and await rig.pending("account") == 4, "written, but the commit was refused"

    await any_redis.delete(lease)  # the other replica is gone; this one takes the lease back
    await writer.renew_leases()
    await rig.sweep_until("account", lambda: True, within=5)
    assert await rig.pending("account") == 0, "the refused sweep's entries are re-read and settled"
    assert rig.erp.creates == 4 and len(rig.erp.records) == 4, "redone through idempotency, not duplicated"
    assert rig.erp.find_calls >= 1


async def test_the_safety_net_rereads_a_pending_entry_nothing_scheduled(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config(stuck_after='"20ms"')).setup()
    writer = rig.writers["account"]
    await writer.sweep()  # the partition's book is built (empty)
    rig.crm.user_create({"name": "Forgotten"})
    await rig.publish("account")
    # something reads the entry as the partition's consumer and forgets it (the bug class this guards)
    await any_redis.xreadgroup(Keys.group("erp"), Keys.consumer(0), {rig.keys.changes("account", 0): ">"})
    await asyncio.sleep(0.05)
    await rig.sweep_until("account", lambda: rig.erp.creates == 1, within=5)
    assert await rig.pending("account") == 0
    counts = await Stats(rig.keys).read(any_redis, Stats.RECORDS)
    assert counts[("stuck", "account", "erp")] == 1
    metrics = (await render(any_redis, rig.settings)).decode()
    assert 'accord_stream_stuck_entries_total{entity="account",target="erp"} 1.0' in metrics


async def test_failed_attempts_survive_a_restart_in_the_delivery_counter(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config(max_deliveries="3", retry_backoff_cap='"1ms"', retry_for='"0s"')).setup()
    rig.crm.user_create({"name": "Flaky"})
    await rig.publish("account")
    rig.erp.fail_batches.extend([Retryable("erp", "503"), Retryable("erp", "503")])
    for _ in range(2):
        await rig.writers["account"].sweep()
        await asyncio.sleep(0.002)
    stream = rig.keys.changes("account", 0)
    [row] = await any_redis.xpending_range(stream, Keys.group("erp"), "-", "+", 10)
    assert row["times_delivered"] == 2, "two attempts made, both recorded in Redis"
    rig.writers["account"] = rig.writer("account")  # restarted: its memory is gone, the counter is not
    rig.erp.fail_batches.extend([Retryable("erp", "503")])
    for _ in range(3):
        await rig.writers["account"].sweep()
        await asyncio.sleep(0.002)
    [exc] = await rig.exceptions()
    assert exc.reason == "max_deliveries" and exc.attempts == 4
    assert await rig.pending("account") == 0


async def test_the_lease_keeper_renews_while_a_write_outlasts_the_lease(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config(lease_ttl='"300ms"', idle_wait='"10ms"')).setup()
    rig.crm.user_create({"name": "Slow"})
    await rig.publish("account")
    original = rig.erp.write

    async def slow_write(entity: str, ops: Any) -> Any:
        await asyncio.sleep(1.0)  # more than three lease lifetimes
        return await original(entity, ops)

    rig.erp.write = slow_write  # type: ignore[method-assign]
    writer = rig.writers["account"]
    await writer.start([0])
    try:
        await wait_for(lambda: rig.erp.creates == 1, timeout=10, message="the slow create")
        await wait_for(_no_pending(rig), timeout=5, message="the create acked")
    finally:
        await writer.stop()
    assert rig.erp.write_calls == 1, "committed the first time: the lease never lapsed"


def _no_pending(rig: Rig) -> Any:
    async def check() -> bool:
        return await rig.pending("account") == 0
    return check


@pytest.mark.parametrize("partitions", [4])
async def test_nothing_stays_in_hand_after_a_failed_sweep(any_redis: Redis, partitions: int) -> None:
    rig = await Rig(any_redis, config(partitions=str(partitions), retry_backoff_cap='"1ms"')).setup()
    for i in range(6):
        rig.crm.user_create({"name": f"Firm {i}"})
    await rig.publish("account")
    writer = rig.writers["account"]

    async def broken(*_: Any) -> None:
        raise RuntimeError("planner bug")

    original = writer.planner.plan
    writer.planner.plan = broken  # type: ignore[method-assign]
    with pytest.raises(ExceptionGroup):
        await writer.sweep()
    writer.planner.plan = original  # type: ignore[method-assign]
    assert all(not part.book.in_hand() for lane in writer.lanes.values() for part in lane.partitions)
    await rig.sweep_until("account", lambda: rig.erp.creates == 6, within=5)
    assert await rig.pending("account") == 0


THREE = CRM_AND_ERP + """
[systems.psa]
kind = "harvest"
base_url = "http://127.0.0.1:3"
account_id = "1"
access_token = "t"
[entities.account]
owner = "crm"
systems = ["crm", "erp", "psa"]
fields = { tax_id = "erp" }
"""


async def test_a_create_held_with_another_systems_values_is_still_the_owners_create(any_redis: Redis) -> None:
    """The owner's change, parked for a target, and the values another system published back meanwhile
    (a create's seed) are attempted together: the record is created, not skipped as a non-owner create."""
    settings = loads('namespace = "c"\n[streams]\npartitions = 1\nretry_backoff_cap = "60s"\n' + THREE, env={})
    keys = Keys("c")
    systems = {s: MemorySystem(s, batch_size=5) for s in ("crm", "erp", "psa")}
    pollers = {s: Poller(settings, s, "", connector=c, redis=any_redis) for s, c in systems.items()}  # type: ignore[arg-type]
    writer = Writer(settings, "account", "", connectors=dict(systems), redis=any_redis)  # type: ignore[arg-type]
    writer.assign([0])
    await ensure_groups(any_redis, keys, "account", ["crm", "erp", "psa"], 1)
    await pollers["erp"].poll_page("account")  # the PSA has not finished its first read yet
    systems["crm"].user_create({"name": "Acme", "tax_id": "typed-in-crm"})
    await pollers["crm"].poll_page("account")
    await wait_for(lambda: writer.sweep() if systems["erp"].creates == 0 else True, timeout=5, interval=0.02,
                   message="the ERP create")
    await writer.sweep()  # the ERP's seeded tax id is published back and joins the PSA's hold
    assert systems["psa"].creates == 0
    await pollers["psa"].poll_page("account")  # the PSA's first full read ends: the hold is woken

    async def created_in_psa() -> bool:
        await writer.sweep()
        return systems["psa"].creates == 1
    await wait_for(created_in_psa, timeout=PARK_RECHECK_S - 1, interval=0.02, message="the PSA create")
    [psa] = systems["psa"].records.values()
    assert psa["name"] == "Acme" and psa["tax_id"] == "typed-in-crm"


async def test_a_reference_read_before_its_record_was_linked_resolves_through_an_alias(any_redis: Redis) -> None:
    """The ERP's poller reads a contact pointing at an account Accord just created there, before the
    writer's commit linked that account: it mints a gid for the reference. The link then makes that gid
    an alias, and the contact reaches the CRM pointing at the account's CRM record."""
    text = config().replace('[entities.contact]\nowner = "crm"', '[entities.contact]\nowner = "erp"')
    rig = await Rig(any_redis, text).setup()
    await rig.publish("contact")  # the CRM's first read of contacts (creates there wait for it)
    account = rig.crm.user_create({"name": "Acme"})
    await rig.publish("account")
    original = rig.erp.write

    async def write_then_someone_adds_a_contact(entity: str, ops: Any) -> Any:
        results = await original(entity, ops)
        if entity == "account":  # before the account writer commits its link
            rig.erp.user_create({"last_name": "Early", "account": results[0].target_id}, entity="contact")
            await rig.pollers["erp"].poll_page("contact")
        return results

    rig.erp.write = write_then_someone_adds_a_contact  # type: ignore[method-assign]
    await rig.sweep_until("account", lambda: rig.erp.creates == 1, within=5)
    rig.erp.write = original  # type: ignore[method-assign]
    crm_contacts = rig.crm.tables["contact"].records
    await rig.sweep_until("contact", lambda: len(crm_contacts) == 1, within=PARK_RECHECK_S - 1)
    [contact] = crm_contacts.values()
    assert contact["account"] == account
    assert await rig.pending("contact", "crm") == 0


async def test_a_create_carries_the_owners_newest_values_not_the_older_changes(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config(read_count="1")).setup()
    account = rig.crm.user_create({"name": "Acme"})
    await rig.publish("account")
    rig.crm.user_update(account, {"name": "Acme Group"})
    await rig.publish("account")  # two changes pending; the writer reads one entry per sweep
    await rig.writers["account"].sweep()
    [create] = rig.erp.writes
    assert create.kind == "upsert" and create.target_id is None and create.fields["name"] == "Acme Group"


async def test_an_outage_shorter_than_retry_for_sends_nothing_to_the_desk(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config(max_deliveries="2", retry_backoff_cap='"1ms"', retry_for='"1h"')).setup()
    rig.crm.user_create({"name": "Patient"})
    await rig.publish("account")
    rig.erp.fail_batches.extend([Retryable("erp", "503")] * 6)  # three times max_deliveries
    await rig.sweep_until("account", lambda: rig.erp.creates == 1, within=5)
    assert await rig.exceptions() == [] and await rig.pending("account") == 0
    assert rig.erp.write_calls == 7


@pytest.mark.redis
@pytest.mark.parametrize("version", ["6.2", "7"])
async def test_a_redis_restart_makes_every_partition_reread_its_pending_list(
        redis_servers: dict[str, Any], tmp_path: Any, version: str) -> None:
    """Restarted on its AOF (or failed over), Redis may hold pending entries the books no longer know of
    (an XACK lost in the last second): the writer notices the new server and re-reads, without waiting for
    the stuck-entry safety net."""
    from accord.redis_server import EmbeddedRedis

    if version not in redis_servers:
        pytest.skip("no Redis 7 here")
    server = EmbeddedRedis(tmp_path / "redis", binary=redis_servers[version].binary).start()
    client = Redis.from_url(server.url)
    try:
        rig = await Rig(client, config(stuck_after='"1h"')).setup()
        rig.crm.user_create({"name": "Acme"})
        await rig.publish("account")
        await rig.sweep_until("account", lambda: rig.erp.creates == 1, within=5)
        stream = rig.keys.changes("account", 0)
        [(entry_id, _)] = await client.xrange(stream)
        # the ack of this entry is lost: it is pending again, behind the books' back
        await client.execute_command("XCLAIM", stream, Keys.group("erp"), Keys.consumer(0), 0, entry_id, "FORCE")
        server.restart()

        async def renewed() -> bool:  # the first command on a dropped connection may fail: the keeper retries
            try:
                await rig.writers["account"].renew_leases()
            except RedisConnectionError:
                return False
            return True

        await wait_for(renewed, timeout=10, message="leases renewed on the restarted server")
        await rig.writers["account"].sweep()
        assert await rig.pending("account") == 0, "re-read after the restart and settled"
        assert rig.erp.creates == 1
    finally:
        await client.aclose()
        server.stop()


async def test_a_restarted_writer_looks_up_only_the_creates_it_had_sent(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config()).setup()
    rig.crm.user_create({"name": "Sent"})
    await rig.publish("account")

    async def killed(*_: Any) -> None:
        raise RuntimeError("killed before its commit")

    rig.writers["account"].lane("erp")._commit = killed  # type: ignore[method-assign]
    with pytest.raises(ExceptionGroup):
        await rig.writers["account"].sweep()
    rig.crm.user_create({"name": "Never sent"})
    await rig.publish("account")
    await any_redis.xreadgroup(Keys.group("erp"), Keys.consumer(0), {rig.keys.changes("account", 0): ">"})
    rig.writers["account"] = rig.writer("account")  # restarted: both entries are pending, one was written
    finds = []
    original = rig.erp.find_created

    async def find_created(entity: str, gids: Any, since_ms: int) -> Any:
        finds.append(sorted(gids))
        return await original(entity, gids, since_ms)

    rig.erp.find_created = find_created  # type: ignore[method-assign]
    await rig.sweep_until("account", lambda: len(rig.erp.records) == 2, within=5)
    sent = (await any_redis.get(rig.keys.xid("account", "crm", "crm-1"))).decode()
    assert finds == [[sent]], "only the create that was sent is looked up"
    assert rig.erp.creates == 2 and await rig.pending("account") == 0
    assert await any_redis.hlen(rig.keys.creating("erp", "account")) == 0


async def test_a_refused_commit_recovers_every_partition_it_held_entries_of(any_redis: Redis, monkeypatch: Any) -> None:
    """A commit refused for a lost lease leaves its entries pending: whatever they were (parked ones too,
    which touch no lease), their partitions re-read them; nothing is left in hand or counted stuck."""
    rig = await Rig(any_redis, config(partitions="2")).setup()
    account = rig.crm.user_create({"name": "Unsynced"})
    rig.crm.user_create({"last_name": "Waits", "account": account}, entity="contact")
    await rig.publish("contact")
    writer = rig.writers["contact"]
    original = Batch.apply
    refused: list[Batch] = []

    async def refuse(self: Batch, redis: Redis) -> bool:
        if self.args:
            refused.append(self)
            return False
        return await original(self, redis)

    monkeypatch.setattr(Batch, "apply", refuse)
    await writer.sweep()  # every commit of this sweep is refused: the parked one's too
    monkeypatch.setattr(Batch, "apply", original)
    assert len(refused) == 2, "one commit per lane"
    await writer.sweep()
    counts = await Stats(rig.keys).read(any_redis, Stats.RECORDS)
    assert not [k for k in counts if k[0] == "stuck"], "nothing was left in hand"
    assert all(not part.book.in_hand() for lane in writer.lanes.values() for part in lane.partitions)
    assert await rig.pending("contact") == 1 and await rig.pending("contact", "crm") == 0


async def test_a_read_that_fails_after_due_records_were_taken_leaves_nothing_in_hand(
        any_redis: Redis, monkeypatch: Any) -> None:
    from accord.actors.write import lane as lane_module

    rig = await Rig(any_redis, config(retry_backoff_cap='"1ms"')).setup()
    rig.crm.user_create({"name": "Due"})
    await rig.publish("account")
    rig.erp.fail_batches.append(Retryable("erp", "503"))
    await rig.writers["account"].sweep()  # failed: the record is scheduled for a retry
    await asyncio.sleep(0.01)

    async def redis_gone(*_: Any) -> Any:
        raise RedisConnectionError("Redis restarting")

    monkeypatch.setattr(lane_module, "read_new", redis_gone)
    with pytest.raises(ExceptionGroup):
        await rig.writers["account"].sweep()  # the due record was taken, then the read of new entries failed
    monkeypatch.undo()
    writer = rig.writers["account"]
    assert all(not part.book.in_hand() for lane in writer.lanes.values() for part in lane.partitions)
    await rig.sweep_until("account", lambda: rig.erp.creates == 1, within=5)
    assert ("stuck", "account", "erp") not in await Stats(rig.keys).read(any_redis, Stats.RECORDS)
