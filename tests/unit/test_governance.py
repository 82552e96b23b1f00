"""Governance in the sync logic: references and parking, match rules before creates, the first-read
barrier, and non-owner edits reverted or sent to review. Runs on fakeredis, Redis 6.2 and Redis 7."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from accord.actors.poll.edits import park
from accord.actors.poll.page import PagePlan
from accord.actors.poll.poller import Poller
from accord.actors.poll.suspects import Suspect
from accord.actors.write.nudge import Nudger
from accord.actors.write.writer import Writer
from accord.config.load import loads
from accord.connectors.base import Page, SourceRecord
from accord.connectors.harvest.settings import HarvestSettings
from accord.streams.exceptions import decode_exception
from accord.streams.keys import Keys
from accord.streams.log import ensure_groups
from accord.streams.state import Stats
from tests.fakes import MemorySystem
from tests.helpers import CRM_AND_ERP, wait_for

BASE = """
namespace = "g"
[streams]
partitions = 4
max_deliveries = 3
retry_for = "0s"
retry_backoff_cap = "1ms"
""" + CRM_AND_ERP + """[entities.account]
owner = "crm"
systems = ["crm", "erp"]
fields = { tax_id = "erp", payment_terms = "erp" }
match = [["tax_id"], ["name", "country"]]
on_violation = "{policy}"
[entities.contact]
owner = "crm"
systems = ["crm", "erp"]
park_timeout = "{park}"
"""


class Rig:
    def __init__(self, redis: Redis, policy: str = "revert", park: str = "10m") -> None:
        self.settings = loads(BASE.replace("{policy}", policy).replace("{park}", park), env={})
        self.redis = redis
        self.keys = Keys("g")
        self.crm = MemorySystem("crm", entities=("account", "contact"))
        self.erp = MemorySystem("erp", entities=("account", "contact"))
        self.systems = {"crm": self.crm, "erp": self.erp}
        self.pollers = {s: Poller(self.settings, s, "", connector=c, redis=redis) for s, c in self.systems.items()}
        self.writers = {e: self._writer(e) for e in ("account", "contact")}

    def _writer(self, entity: str) -> Writer:
        writer = Writer(self.settings, entity, "", connectors=dict(self.systems), redis=self.redis)  # type: ignore[arg-type]
        writer.assign(range(4))
        return writer

    async def setup(self) -> Rig:
        for entity in ("account", "contact"):
            await ensure_groups(self.redis, self.keys, entity, ["crm", "erp"], 4)
        return self

    async def poll(self, system: str, entity: str = "account") -> None:
        await self.pollers[system].poll_page(entity)

    async def sweep(self, entity: str = "account") -> int:
        total = 0
        while handled := await self.writers[entity].sweep():
            total += handled
        return total

    async def settle(self, entities: tuple[str, ...] = ("account",), rounds: int = 5) -> None:
        for _ in range(rounds):
            for entity in entities:
                await self.poll("crm", entity)
                await self.poll("erp", entity)
                await self.sweep(entity)

    async def counts(self) -> dict[tuple[str, ...], int]:
        return await Stats(self.keys).read(self.redis, Stats.RECORDS)

    async def exceptions(self) -> list[Any]:
        return [decode_exception(v) for v in (await self.redis.hgetall(self.keys.exception_index())).values()]


@pytest.fixture
async def rig(any_redis: Redis) -> Rig:
    return await Rig(any_redis).setup()


async def test_creates_wait_for_the_targets_first_full_read(rig: Rig) -> None:
    rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.poll("crm")
    await rig.writers["account"].sweep()  # one sweep: a second one may retry the parked record already
    assert rig.erp.creates == 0  # the ERP has not been read yet: its existing records are unknown
    assert (await rig.counts())[("parked", "account")] == 1
    await rig.poll("erp")

    async def created() -> bool:
        await rig.writers["account"].sweep()
        return rig.erp.creates >= 1

    await wait_for(created, timeout=10, interval=0.01, message="the parked create")
    await rig.settle()
    assert rig.erp.creates == 1


async def test_existing_target_record_is_linked_by_tax_id_not_duplicated(rig: Rig) -> None:
    pre = rig.erp.user_create({"name": "ACME Holdings, Inc.", "country": "US", "tax_id": "US-1",
                               "payment_terms": "net_60"})
    a = rig.crm.user_create({"name": "Acme", "country": "US", "tax_id": "us-1"})
    await rig.settle()
    assert rig.erp.creates == 0 and len(rig.erp.records) == 1
    gid = (await rig.redis.get(rig.keys.xid("account", "crm", a))).decode()
    assert (await rig.redis.get(rig.keys.xid("account", "erp", pre))).decode() == gid
    assert rig.erp.records[pre]["name"] == "Acme"  # the CRM owns the name
    assert rig.erp.records[pre]["tax_id"] == "US-1"  # the ERP keeps what it owns...
    assert rig.crm.records[a]["payment_terms"] == "net_60"  # ...and publishes it back after the link
    assert (await rig.counts())[("matched", "erp", "account")] == 1


async def test_normalised_name_and_country_match(rig: Rig) -> None:
    pre = rig.erp.user_create({"name": "Globex GmbH", "country": "DE"})
    rig.crm.user_create({"name": "  globex  ", "country": "DE"})
    await rig.settle()
    assert rig.erp.creates == 0 and rig.erp.records[pre]["name"] == "  globex  "


async def test_ambiguous_match_is_an_exception_not_a_guess(rig: Rig) -> None:
    rig.erp.user_create({"name": "Initech", "country": "US", "tax_id": "T-9"})
    rig.erp.user_create({"name": "Initech (old)", "country": "US", "tax_id": "T-9"})
    rig.crm.user_create({"name": "Initech", "country": "US", "tax_id": "T-9"})
    await rig.settle()
    assert rig.erp.creates == 0
    [exc] = await rig.exceptions()
    assert exc.reason == "ambiguous_match" and "2 erp records match" in exc.message


async def test_non_owner_edit_is_reverted_to_the_owners_value(rig: Rig) -> None:
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    rig.erp.user_update(erp_id, {"name": "ACME edited in the ERP"})
    await rig.settle()
    assert rig.erp.records[erp_id]["name"] == "Acme"
    assert rig.crm.records[a]["name"] == "Acme"
    assert (await rig.counts())[("violations", "erp", "account")] == 1
    writes = len(rig.erp.writes)
    await rig.settle()
    assert len(rig.erp.writes) == writes  # the revert's echo settles


async def test_non_owner_edit_goes_to_review_when_configured(any_redis: Redis) -> None:
    rig = await Rig(any_redis, policy="review").setup()
    rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    rig.erp.user_update(erp_id, {"name": "Edited"})
    await rig.settle()
    assert rig.erp.records[erp_id]["name"] == "Edited"
    [exc] = await rig.exceptions()
    assert exc.reason == "governance" and "name: 'Acme' -> 'Edited' (owner: crm)" in exc.message


async def test_reference_is_translated_and_a_dangling_one_parks(rig: Rig) -> None:
    await rig.poll("erp", "contact")
    await rig.poll("erp")
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    rig.crm.user_create({"first_name": "Kim", "last_name": "Allen", "account": a}, entity="contact")
    await rig.poll("crm", "contact")  # the contact arrives before its account exists in the ERP
    await rig.writers["contact"].sweep()
    assert rig.erp.tables["contact"].records == {}
    assert (await rig.counts())[("parked", "contact")] == 1
    nudges = await rig.redis.xrange(rig.keys.intake("crm"))  # the CRM's poller is asked for the account now
    assert [fields for _, fields in nudges] == [{b"entity": b"account"}]
    await rig.poll("crm")
    await rig.sweep()
    erp_account = next(iter(rig.erp.records))

    async def contact_written() -> bool:
        await rig.writers["contact"].sweep()
        return bool(rig.erp.tables["contact"].records)

    await wait_for(contact_written, timeout=10, interval=0.01, message="the parked contact")
    [contact] = rig.erp.tables["contact"].records.values()
    assert contact["account"] == erp_account  # the ERP's own id of the account, not the CRM's
    await rig.settle(("account", "contact"))
    assert len(rig.erp.writes) == 2 and await rig.exceptions() == []


async def test_parked_past_its_deadline_becomes_an_exception(any_redis: Redis) -> None:
    rig = await Rig(any_redis, park="1ms").setup()
    await rig.poll("erp", "contact")
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    rig.crm.user_create({"first_name": "Kim", "last_name": "Allen", "account": a}, entity="contact")
    await rig.poll("crm", "contact")

    async def filed() -> list[Any]:
        await rig.writers["contact"].sweep()
        return await rig.exceptions()

    [exc] = await wait_for(filed, timeout=10, interval=0.01, message="the parked exception")
    assert exc.reason == "parked" and "account" in exc.message


async def test_only_records_meeting_the_targets_conditions_flow(any_redis: Redis) -> None:
    text = BASE.replace("{policy}", "revert").replace("{park}", "10m") + (
        '\n[entities.time_entry]\nowner = "crm"\nsystems = ["crm", "erp"]\n'
        'when.erp = { approval = "approved", billable = true }\n')
    rig = Rig(any_redis)
    rig.settings = loads(text, env={})
    rig.crm = MemorySystem("crm", entities=("account", "contact", "time_entry"))
    rig.erp = MemorySystem("erp", entities=("account", "contact", "time_entry"))
    rig.systems = {"crm": rig.crm, "erp": rig.erp}
    rig.pollers = {s: Poller(rig.settings, s, "", connector=c, redis=any_redis) for s, c in rig.systems.items()}
    rig.writers = {"time_entry": rig._writer("time_entry")}
    await ensure_groups(any_redis, rig.keys, "time_entry", ["crm", "erp"], 4)
    await rig.poll("erp", "time_entry")
    draft = rig.crm.user_create({"hours": "2.5", "billable": True, "approval": "draft"}, entity="time_entry")
    rig.crm.user_create({"hours": "1.0", "billable": False, "approval": "approved"}, entity="time_entry")
    await rig.settle(("time_entry",))
    assert rig.erp.tables["time_entry"].records == {}
    assert (await rig.counts())[("skipped", "time_entry", "filtered")] == 2
    rig.crm.user_update(draft, {"approval": "approved"}, entity="time_entry")  # a change of one field
    await rig.settle(("time_entry",))
    [entry] = rig.erp.tables["time_entry"].records.values()
    assert entry == {"hours": "2.5", "billable": True, "approval": "approved"}  # created whole, once


class ScannedSystem(MemorySystem):
    """A system with no delete feed: deleted records just vanish from its lists (like Harvest)."""

    scan_interval = 3600.0

    async def scan_ids(self, entity: str) -> set[str]:
        return set(self.tables[entity].records)

    def vanish(self, rid: str, entity: str = "account") -> None:
        table = self.tables[entity]
        del table.records[rid], table.versions[rid], table.gids[rid]


async def test_records_vanished_from_a_system_without_delete_feed_are_found_by_full_scan(
        any_redis: Redis) -> None:
    rig = Rig(any_redis)
    crm = ScannedSystem("crm", entities=("account", "contact"))
    rig.crm, rig.systems["crm"] = crm, crm
    scanned = HarvestSettings(base_url="http://127.0.0.1:3", account_id="1", access_token="t")  # deletes by scan
    settings = msgspec.structs.replace(rig.settings, systems={**rig.settings.systems, "crm": scanned})
    rig.pollers["crm"] = Poller(settings, "crm", "", connector=crm, redis=any_redis)
    rig.writers["account"] = rig._writer("account")
    await rig.setup()
    a = crm.user_create({"name": "Acme", "country": "US"})
    b = crm.user_create({"name": "Globex", "country": "DE"})
    await rig.settle()
    assert len(rig.erp.records) == 2
    crm.vanish(a)
    assert await rig.pollers["crm"].scan_for_deletes("account") == 1
    await rig.sweep()
    statuses = {rig.erp.records[r].get("name"): rig.erp.records[r].get("status") for r in rig.erp.records}
    assert statuses == {"Acme": "inactive", "Globex": None}
    assert await rig.pollers["crm"].scan_for_deletes("account") == 0  # reported once
    assert b in crm.records


async def test_a_field_reverted_again_and_again_goes_to_review_instead_of_looping(rig: Rig) -> None:
    rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    for i in range(5):  # someone (or a lossy mapping) keeps changing the CRM-owned name in the ERP
        rig.erp.user_update(erp_id, {"name": f"Edited {i}"})
        await rig.settle(rounds=2)
    reverts = sum(1 for op in rig.erp.writes if op.target_id and op.fields.get("name") == "Acme")
    assert reverts == 3
    assert [e.reason for e in await rig.exceptions()] == ["governance", "governance"]


async def test_excluded_fields_are_never_synced_with_that_system(any_redis: Redis) -> None:
    rig = Rig(any_redis)
    text = BASE.replace("{policy}", "revert").replace("{park}", "10m").replace(
        'on_violation = "revert"', 'on_violation = "revert"\nexclude = { erp = ["website"] }')
    rig.settings = loads(text, env={})
    rig.pollers = {s: Poller(rig.settings, s, "", connector=c, redis=any_redis) for s, c in rig.systems.items()}
    rig.writers = {"account": rig._writer("account")}
    await rig.setup()
    a = rig.crm.user_create({"name": "Acme", "country": "US", "website": "acme.example"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    assert "website" not in rig.erp.records[erp_id]
    rig.erp.user_update(erp_id, {"website": "free-text in the ERP"})
    await rig.settle()
    assert rig.crm.records[a]["website"] == "acme.example"
    assert ("violations", "erp", "account") not in await rig.counts()


async def test_configured_field_map_with_lookup_and_drift(any_redis: Redis) -> None:
    text = BASE.replace("{policy}", "revert").replace("{park}", "10m") + '''
[mappings.erp.account]
expect = ["name", "country", "LegalEntityCode"]
fields = { legal_entity = { path = "LegalEntityCode", lookup = "entities" } }
[lookups.entities]
"ACME-US" = "US01"
"ACME-UK" = "GB01"
'''
    rig = Rig(any_redis)
    rig.settings = loads(text, env={})
    rig.pollers = {s: Poller(rig.settings, s, "", connector=c, redis=any_redis) for s, c in rig.systems.items()}
    rig.writers = {"account": rig._writer("account")}
    await rig.setup()
    a = rig.crm.user_create({"name": "Acme", "country": "US", "legal_entity": "US01"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    assert rig.erp.records[erp_id]["LegalEntityCode"] == "ACME-US"  # written through the lookup, reversed
    rig.crm.user_update(a, {"legal_entity": "GB01"})
    await rig.settle()
    assert rig.erp.records[erp_id]["LegalEntityCode"] == "ACME-UK"
    rig.erp.user_update(erp_id, {"Region": "EMEA"})  # a source field the map does not expect
    await rig.settle()
    counts = await rig.counts()
    assert counts[("drift", "erp", "account")] >= 1
    assert ("violations", "erp", "account") not in counts  # read back through the map: no false edit
    rig.crm.user_update(a, {"legal_entity": "XX99"})  # no wire value for it: an exception, not a guess
    await rig.settle()
    [exc] = await rig.exceptions()
    assert exc.reason == "mapping" and "'XX99' has no wire value" in exc.message


async def test_governance_counters_are_exported_as_metrics(rig: Rig) -> None:
    from accord.pipeline_metrics import render

    rig.erp.user_create({"name": "ACME Holdings, Inc.", "country": "US", "tax_id": "US-1"})
    rig.crm.user_create({"name": "Acme", "country": "US", "tax_id": "us-1"})
    await rig.poll("crm")
    await rig.writers["account"].sweep()  # parked (once): the ERP has not been read yet
    await rig.settle()
    body = (await render(rig.redis, rig.settings)).decode()
    assert 'accord_records_matched_total{entity="account",system="erp"} 1.0' in body
    assert 'accord_records_parked_total{entity="account"} 1.0' in body


def replay_once(system: MemorySystem, page: Page) -> None:
    """The system's next fetch answers ``page``: a page fetched earlier, planned only now (a slow poll)."""
    original = system.fetch

    async def stale(entity: str, cursor: str | None) -> Page:
        system.fetch = original  # type: ignore[method-assign]
        return page

    system.fetch = stale  # type: ignore[method-assign]


async def test_a_page_fetched_before_accords_write_is_a_stale_read_not_a_violation(rig: Rig) -> None:
    """The ERP poller fetches the record, the writer then writes the CRM's rename there and stores the
    newer version with the projection, and only then is the page planned: the old name it shows is an
    older version of the record, not an ERP edit to revert."""
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    before = await rig.erp.fetch("account", "0")  # what a poll sent now answers: "Acme"
    rig.crm.user_update(a, {"name": "Acme Group"})
    await rig.poll("crm")
    await rig.sweep()
    assert rig.erp.records[erp_id]["name"] == "Acme Group"
    replay_once(rig.erp, before)
    await rig.poll("erp")  # plans the page fetched before the write
    [seen], _ = await rig.pollers["erp"].ctx.projections.load("erp", "account", [erp_id])
    assert seen is not None and seen["name"] == "Acme Group"  # the newer projection is kept...
    assert seen["_v"] == rig.erp.tables["account"].versions[erp_id]
    assert await rig.redis.hlen(rig.keys.suspects("erp", "account")) == 0  # ...and nothing is suspected
    await rig.settle()  # the owner is read again, the ERP's newer version too: suspects would be judged
    counts = await rig.counts()
    assert ("violations", "erp", "account") not in counts
    assert counts[("stale_reads", "erp", "account")] == 1
    assert rig.erp.records[erp_id]["name"] == "Acme Group"
    assert [op.fields for op in rig.erp.writes if op.target_id] == [{"name": "Acme Group"}]  # no revert
    assert await rig.exceptions() == []


async def test_a_suspect_is_judged_by_the_systems_latest_read(rig: Rig) -> None:
    """A system whose version stamps are coarse (Harvest's ``updated_at`` is to the second) can show a
    read from before Accord's write with the write's own version: it is parked as a suspect, and the
    page that reads the record again judges it by that newer read (the owner's value: no violation)."""
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    erp_id = next(iter(rig.erp.records))
    rig.crm.user_update(a, {"name": "Acme Group"})
    await rig.poll("crm")
    await rig.sweep()
    table = rig.erp.tables["account"]
    version = table.versions[erp_id]  # the write's version, shown by a read that predates the write
    stale = SourceRecord(id=erp_id, version=version, fields={**table.records[erp_id], "name": "Acme"},
                         gid=table.gids[erp_id])
    replay_once(rig.erp, Page(records=[stale], cursor=str(version - 1)))
    await rig.poll("erp")
    assert await rig.redis.hlen(rig.keys.suspects("erp", "account")) == 1
    await rig.poll("crm")  # the owner has been read since: the suspect is due on the ERP's next page,
    await rig.poll("erp")  # which reads the record again ("Acme Group") and judges it by that read
    await rig.settle()
    assert ("violations", "erp", "account") not in await rig.counts()
    assert [op.fields for op in rig.erp.writes if op.target_id] == [{"name": "Acme Group"}]


async def test_a_create_read_before_its_commit_is_judged_after_the_owners_newer_change_lands(rig: Rig) -> None:
    """Accord creates the record in the ERP from the CRM's create ("Acme") while the CRM's rename ("Acme
    Group") is still on its way there, and the ERP's poller reads the new record before the writer has
    recorded the create: the old name is Accord's own write, lagging behind the owner, not an ERP edit."""
    await rig.poll("erp")
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.poll("crm")
    rig.crm.user_update(a, {"name": "Acme Group"})
    await rig.poll("crm")
    gid = (await rig.redis.get(rig.keys.xid("account", "crm", a))).decode()
    made = rig.erp.user_create({"name": "Acme", "country": "US"})  # the create, not recorded yet
    rig.erp.gids[made] = gid
    await rig.poll("erp")
    assert ("violations", "erp", "account") not in await rig.counts()
    await rig.settle()
    assert rig.erp.records[made]["name"] == "Acme Group" and len(rig.erp.records) == 1
    assert ("violations", "erp", "account") not in await rig.counts()
    assert not [op for op in rig.erp.writes if op.key.endswith(":revert")]


async def test_a_value_the_owner_changed_since_is_not_judged_before_the_change_lands(rig: Rig) -> None:
    """The CRM holds the ERP-owned payment terms the ERP took over from it at the create ("net_30"); finance
    then changes them in the ERP ("net_15"). Judged before that change reaches the CRM, the CRM's value
    differs from the owner's: it lags, it was not edited."""
    await rig.poll("erp")
    rig.crm.user_create({"name": "Acme", "country": "US", "payment_terms": "net_30"})  # typed in the CRM
    await rig.poll("crm")  # first seen while the ERP has no record: waits for the owner's
    await rig.sweep()  # the ERP's create takes the CRM's value as its own
    erp_id = next(iter(rig.erp.records))
    assert rig.erp.records[erp_id]["payment_terms"] == "net_30"
    rig.erp.user_update(erp_id, {"payment_terms": "net_15"})
    await rig.poll("erp")  # the owner has been read since: the CRM's value is due for judgement...
    await rig.poll("crm")  # ...while the ERP's change is still on its way to the CRM
    await rig.settle()
    assert rig.crm.records[next(iter(rig.crm.records))]["payment_terms"] == "net_15"
    assert ("violations", "crm", "account") not in await rig.counts()
    assert not [op for op in rig.crm.writes if op.key.endswith(":revert")]


def test_a_records_suspects_are_parked_as_one() -> None:
    """The suspects book holds one suspect per record: parking another merges them (the later view of a
    field wins), so neither overwrites the other in the page's batch."""
    plan = PagePlan(fetched_ms=2)
    park(plan, "r1", Suspect(gid="g", version=3, changed={"name": ("A", "B"), "website": ("x", "y")}, seen_ms=1))
    park(plan, "r1", Suspect(gid="g", version=5, changed={"name": ("B", "C")}, seen_ms=2))
    park(plan, "r2", Suspect(gid="h", version=1, changed={"name": (None, "Z")}, seen_ms=2, adopted=True))
    assert plan.parked == [
        ("r1", Suspect(gid="g", version=5, changed={"name": ("B", "C"), "website": ("x", "y")}, seen_ms=2)),
        ("r2", Suspect(gid="h", version=1, changed={"name": (None, "Z")}, seen_ms=2, adopted=True))]


async def test_only_what_someone_else_did_keeps_polls_at_their_base_interval(rig: Rig) -> None:
    """A poll's finds (``Poller.found``, which keeps an entity at its base interval) count changes to
    publish, non-owner edits and records made outside Accord, never Accord's own writes read back."""
    crm, erp = rig.pollers["crm"], rig.pollers["erp"]
    await rig.poll("erp")  # the ERP's first full read, so creates can go
    rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    assert rig.erp.creates == 1
    assert crm.found["account"] == 1 and erp.found["account"] == 0  # the ERP read back Accord's create

    rid = next(iter(rig.erp.records))
    rig.erp.user_update(rid, {"payment_terms": "net_45"})  # the ERP owns payment terms: a change to publish
    await rig.poll("erp")
    assert erp.found["account"] == 1
    await rig.settle()
    assert crm.found["account"] == 1 and erp.found["account"] == 1  # the CRM read back Accord's update

    rig.erp.user_create({"name": "Initech", "country": "US"})  # made in the ERP, which does not own accounts
    await rig.poll("erp")
    assert erp.found["account"] == 2


async def test_an_entity_slow_to_answer_does_not_hold_back_the_others_polls(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A poller polls its due entities concurrently: one stuck in a slow request (a busy host, a long
    page) does not delay the next entity's poll past its interval (before: one after the other)."""
    crm = rig.pollers["crm"]
    released, fetch = asyncio.Event(), rig.crm.fetch

    async def slow_accounts(entity: str, cursor: str | None) -> Page:
        if entity == "account":
            await released.wait()
        return await fetch(entity, cursor)
    monkeypatch.setattr(rig.crm, "fetch", slow_accounts)
    round_ = asyncio.create_task(crm._poll_due())
    try:
        await wait_for(lambda: crm.pages == 1, timeout=5, message="contacts polled meanwhile")
        assert not round_.done()
    finally:
        released.set()
        await asyncio.wait_for(round_, timeout=5)
    assert crm.pages == 2


def test_a_nudge_per_system_and_entity_at_most_once_per_its_base_poll_interval() -> None:
    """Parked records ask the source's poller for what they reference; a backlog of them asks no more
    often than the referenced entity's poll schedule, and never a system that does not hold it."""
    now = [100.0]
    nudger = Nudger(loads(BASE.replace("{policy}", "revert").replace("{park}", "10m"), env={}), clock=lambda: now[0])
    interval = nudger._settings.entities["account"].poll_interval
    assert nudger.due([("crm", "account"), ("crm", "account"), ("psa", "account")]) == [("crm", "account")]
    now[0] += interval / 2
    assert nudger.due([("crm", "account")]) == []
    assert nudger.due([("erp", "account")]) == [("erp", "account")]
    now[0] += interval / 2
    assert nudger.due([("crm", "account")]) == [("crm", "account")]
