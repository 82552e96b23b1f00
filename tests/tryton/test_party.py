"""The Tryton connector against a real trytond server: parties ↔ accounts."""

from __future__ import annotations

from typing import Any

import pytest

from accord.connectors.base import Page, SourceRecord, WriteOp
from accord.connectors.errors import Permanent, Retryable, StaleVersion
from accord.connectors.tryton.client import TrytonConnector
from accord.sandboxes.tryton.bootstrap import Rpc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # the first test may build the template


async def drain(connector: TrytonConnector, cursor: str | None) -> tuple[list[SourceRecord], str]:
    """Every page until ``more`` is false."""
    records: list[SourceRecord] = []
    while True:
        page: Page = await connector.fetch("account", cursor)
        records += page.records
        cursor = page.cursor
        if not page.more:
            return records, cursor


def make_party(rpc: Rpc, name: str, **extra: Any) -> int:
    party_id: int = rpc.call("model.party.party.create", [{"name": name, **extra}])[0]
    return party_id


async def test_reads_a_party_made_in_tryton(connector: TrytonConnector, rpc: Rpc) -> None:
    party = make_party(rpc, "ACME Corp", addresses=[["create", [{"street": "1 Main St", "city": "Springfield",
                                                                  "postal_code": "12345"}]]],
                       contact_mechanisms=[["create", [{"type": "website", "value": "https://acme.test"}]]],
                       identifiers=[["create", [{"type": None, "code": "VAT-42"}]]])
    records, _ = await drain(connector, None)
    by_id = {r.id: r for r in records}
    assert len(by_id) == len(records)  # each record once, across the pages of 3
    acme = by_id[str(party)]
    assert acme.fields == {"name": "ACME Corp", "status": "active", "website": "https://acme.test",
                           "tax_id": "VAT-42", "billing_address": {"street": "1 Main St", "city": "Springfield",
                                                                   "postal_code": "12345"}}
    assert acme.gid is None and acme.version > 0


async def test_creates_a_party_once_and_updates_it(connector: TrytonConnector, rpc: Rpc) -> None:
    fields = {"name": "Globex", "status": "active", "website": "https://globex.test", "tax_id": "GB-1",
              "billing_address": {"street": "2 Side Rd", "city": "Shelbyville"}}
    op = WriteOp(gid="g-globex", kind="upsert", fields=fields, key="k1", lookup=False)
    created, = await connector.write("account", [op])
    assert created.ok and created.created and created.target_id, created.error
    assert created.fields["billing_address"] == {"street": "2 Side Rd", "city": "Shelbyville"}
    again, = await connector.write("account", [WriteOp(gid="g-globex", kind="upsert", fields=fields, key="k1")])
    assert again.ok and again.target_id == created.target_id  # a repeated create finds the first one
    assert rpc.call("model.party.party.search", [["name", "=", "Globex"]], 0, None, None) == [int(created.target_id)]
    found = await connector.find_created("account", ["g-globex"], 0)
    assert found["g-globex"].id == created.target_id
    update = WriteOp(gid="g-globex", kind="upsert", target_id=created.target_id, key="k2",
                     fields={"name": "Globex Inc", "website": None, "status": "inactive"})
    updated, = await connector.write("account", [update])
    assert updated.ok and updated.version is not None and updated.version > (created.version or 0)
    row, = rpc.call("model.party.party.read", [int(created.target_id)], ["name", "active", "contact_mechanisms"])
    assert (row["name"], row["active"], row["contact_mechanisms"]) == ("Globex Inc", False, [])


async def test_an_edit_in_tryton_between_read_and_write_is_a_retryable_conflict(
        connector: TrytonConnector, rpc: Rpc, monkeypatch: pytest.MonkeyPatch) -> None:
    party = make_party(rpc, "Initech")
    read = connector.read

    async def read_then_someone_edits(*args: Any) -> Any:
        rows = await read(*args)
        monkeypatch.setattr(connector, "read", read)  # once
        rpc.call("model.party.party.write", [party], {"name": "Initech (edited in Tryton)"})
        return rows

    monkeypatch.setattr(connector, "read", read_then_someone_edits)
    op = WriteOp(gid="g-initech", kind="upsert", target_id=str(party), key="k", fields={"name": "Initech LLC"})
    refused, = await connector.write("account", [op])
    assert not refused.ok and isinstance(refused.error, Retryable) and isinstance(refused.error, StaleVersion)
    assert refused.error.code == "concurrency"
    assert rpc.call("model.party.party.read", [party], ["name"])[0]["name"] == "Initech (edited in Tryton)"
    retried, = await connector.write("account", [op])  # the next attempt reads again and writes
    assert retried.ok and retried.fields == {"name": "Initech LLC"}


async def test_a_validation_error_is_permanent_and_names_the_field(connector: TrytonConnector, rpc: Rpc) -> None:
    party = make_party(rpc, "Umbrella")
    # a configured field map adds a typed identifier; Tryton validates its code
    vat = {"identifiers": [["create", [{"type": "eu_vat", "code": "XX123"}]]]}
    op = WriteOp(gid="g-u", kind="upsert", target_id=str(party), key="k", fields={"name": "Umbrella"}, wire=vat)
    refused, = await connector.write("account", [op])
    assert not refused.ok and isinstance(refused.error, Permanent) and not isinstance(refused.error, Retryable)
    assert refused.error.code == "user_error"
    assert 'The European VAT Number "XX123" for party "Umbrella" is not valid.' in refused.error.message
    gone, = await connector.write("account", [WriteOp(gid="g-x", kind="upsert", target_id="999999", key="k",
                                                      fields={"name": "x"})])
    assert not gone.ok and isinstance(gone.error, Permanent) and gone.error.code == "not_found"


async def test_incremental_reads_return_only_later_changes(connector: TrytonConnector, rpc: Rpc) -> None:
    old = make_party(rpc, "Old Co")
    _, cursor = await drain(connector, None)
    nothing, cursor = await drain(connector, cursor)
    assert nothing == []  # the overlap re-reads, the cursor's de-dup drops the repeats
    new = make_party(rpc, "New Co")
    rpc.call("model.party.party.write", [old], {"name": "Old Co (renamed)"})
    later, cursor = await drain(connector, cursor)
    assert sorted((r.id, r.fields["name"]) for r in later) == [(str(old), "Old Co (renamed)"), (str(new), "New Co")]
    assert (await drain(connector, cursor))[0] == []


async def test_a_deleted_party_is_found_by_the_id_scan(connector: TrytonConnector, rpc: Rpc) -> None:
    party = make_party(rpc, "Short Lived")
    assert str(party) in await connector.scan_ids("account")
    rpc.call("model.party.party.delete", [party])
    assert str(party) not in await connector.scan_ids("account")


async def test_an_idle_entity_costs_one_call_a_poll_once_its_watermark_is_final(
        connector: TrytonConnector, rpc: Rpc, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each poll read every listing again from ``overlap`` behind its watermark (2–3 ``search_read`` an
    entity, with nothing new). Once a whole read that started ``overlap`` + 1 s after the watermarks last
    moved has seen everything up to them, a poll asks one ``search_count`` whether anything is past them."""
    now = [1_000_000.0]
    connector._wall = lambda: now[0]
    calls: list[str] = []
    call = connector.session.call

    async def counting(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method.rsplit(".", 1)[-1])
        return await call(method, *args, **kwargs)

    monkeypatch.setattr(connector.session, "call", counting)
    make_party(rpc, "Quiet Co")
    _, cursor = await drain(connector, None)
    now[0] += 1.0  # too early: a commit stamped before the watermark may still land in the overlap
    _, cursor = await drain(connector, cursor)
    calls.clear()
    now[0] += connector.settings.overlap + 1.0
    nothing, cursor = await drain(connector, cursor)  # a whole read late enough: the watermarks are final
    assert nothing == [] and calls.count("search_read") >= 2 and "search_count" not in calls
    calls.clear()
    nothing, same = await drain(connector, cursor)
    assert nothing == [] and calls == ["search_count"] and same == cursor
    busy = make_party(rpc, "Busy Co")
    calls.clear()
    later, cursor = await drain(connector, cursor)
    assert [r.id for r in later] == [str(busy)] and calls[0] == "search_count" and "search_read" in calls
    calls.clear()
    await drain(connector, cursor)  # the watermark moved: whole reads again until it is final
    assert "search_count" not in calls


async def test_a_party_is_read_with_its_addresses_mechanisms_and_identifiers_in_one_call(
        connector: TrytonConnector, rpc: Rpc, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page of parties, and each read before and after a write, read the party's addresses, contact
    mechanisms and identifiers by three more calls (about 40% of the Tryton demo's calls); Tryton reads them
    with the party as dotted fields."""
    _, cursor = await drain(connector, None)
    methods: list[str] = []
    call = connector.session.call

    async def counting(method: str, *args: Any, **kwargs: Any) -> Any:
        methods.append(method)
        return await call(method, *args, **kwargs)

    monkeypatch.setattr(connector.session, "call", counting)
    party = make_party(rpc, "Nested Co", addresses=[["create", [{"street": "9 Elm St", "city": "Ogdenville"}]]],
                       contact_mechanisms=[["create", [{"type": "website", "value": "https://nested.test"}]]],
                       identifiers=[["create", [{"type": None, "code": "NE-9"}]]])
    records, _ = await drain(connector, cursor)
    nested = next(r for r in records if r.id == str(party))
    assert nested.fields["billing_address"] == {"street": "9 Elm St", "city": "Ogdenville"}
    assert nested.fields["website"] == "https://nested.test" and nested.fields["tax_id"] == "NE-9"
    update = WriteOp(gid="g-nested", kind="upsert", target_id=str(party), key="k", fields={"website": "https://n2.test"})
    done, = await connector.write("account", [update])
    assert done.ok and done.fields["website"] == "https://n2.test"
    subs = [m for m in methods if m.split(".")[1:3] in (["party", "address"], ["party", "contact_mechanism"],
                                                         ["party", "identifier"])]
    assert subs == [], f"sub-records read apart: {subs}"
