"""SalesforceConnector against the Salesforce sandbox, in process (httpx.ASGITransport)."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import parse_qs

import httpx
import msgspec
import pytest

from accord.config.types import dec_hook
from accord.connectors.base import Connector, MemoryTokenCache, SourceRecord, WriteOp
from accord.connectors.errors import AuthExpired, Gone, Permanent, RateLimited, Retryable
from accord.connectors.salesforce import client as client_module
from accord.connectors.salesforce import dedup
from accord.connectors.salesforce.client import SalesforceConnector
from accord.connectors.salesforce.mapping import (
    MappingError,
    format_datetime_ms,
    parse_datetime_ms,
    soql_datetime,
    to_canonical,
    to_wire,
    written_projection,
)
from accord.connectors.salesforce.settings import SalesforceSettings
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.salesforce.seed import seed_accounts
from tests.connectors.sf_rig import Recorder, settings

ACCOUNT_FIELDS = {"name", "website", "billing_address", "country", "currency", "tax_id", "payment_terms",
                  "legal_entity", "parent", "status"}


async def drain(conn: SalesforceConnector, cursor: str | None, entity: str = "account",
                ) -> tuple[list[SourceRecord], str]:
    """Fetch until ``more`` is false; every record returned, and the final cursor."""
    records: list[SourceRecord] = []
    while True:
        page = await conn.fetch(entity, cursor)
        records.extend(page.records)
        cursor = page.cursor
        if not page.more:
            return records, cursor


def op(gid: str, fields: dict[str, Any], *, target_id: str | None = None, kind: str = "upsert",
       correlation_id: str = "") -> WriteOp:
    return WriteOp(gid=gid, kind=kind, fields=fields, key=f"k-{gid}", target_id=target_id,  # type: ignore[arg-type]
                   correlation_id=correlation_id)


def soql_of(sf_state: SalesforceState) -> list[str]:
    return [parse_qs(e.query)["q"][0] for e in sf_state.requests.entries("query") if "q=" in e.query]


# -- mapping ---------------------------------------------------------------------------------------

def test_modstamp_round_trip_and_soql_literal() -> None:
    ms = parse_datetime_ms("2026-04-02T10:15:30.123+0000")
    assert ms == 1_775_124_930_123
    assert format_datetime_ms(ms) == "2026-04-02T10:15:30.123+0000"
    assert parse_datetime_ms("2026-04-02T10:15:30.123Z") == ms
    assert soql_datetime(ms) == "2026-04-02T10:15:30Z"
    with pytest.raises(ValueError, match="not a Salesforce dateTime"):
        parse_datetime_ms("yesterday")


def test_account_to_canonical_maps_every_field() -> None:
    wire = {"Id": "001x", "Name": "Acme", "Website": "https://acme.example", "BillingStreet": "1 Main St",
            "BillingCity": "Boston", "BillingState": None, "BillingPostalCode": "", "BillingCountryCode": "US",
            "CurrencyIsoCode": "USD", "Tax_Id__c": "12-3456789", "Payment_Terms__c": "Net 15",
            "Legal_Entity__c": "Accord Consulting UK Ltd", "ParentId": "0015g00000AbCdEAA1", "Accord_Id__c": "g-1", "IsDeleted": False, "SystemModstamp": "2026-04-02T10:15:30.000+0000"}
    fields, gid, version, deleted = to_canonical("account", wire)
    assert fields == {"name": "Acme", "website": "https://acme.example", "country": "US", "currency": "USD",
                      "billing_address": {"street": "1 Main St", "city": "Boston"}, "tax_id": "12-3456789",
                      "payment_terms": "net_15", "legal_entity": "Accord Consulting UK Ltd",
                      "parent": "0015g00000AbCdEAA1", "status": "active"}
    assert (gid, version, deleted) == ("g-1", 1_775_124_930_000, False)
    empty = {**wire, "BillingStreet": None, "BillingCity": None, "CurrencyIsoCode": "EUR"}
    assert to_canonical("account", empty, multi_currency=False)[0].keys() == ACCOUNT_FIELDS - {"currency"}
    assert to_canonical("account", empty)[0]["billing_address"] is None
    assert to_canonical("account", {**wire, "IsDeleted": True})[:4] == ({}, "g-1", 1_775_124_930_000, True)


def test_unknown_payment_terms_label_names_field_and_value() -> None:
    wire = {"Id": "001x", "Payment_Terms__c": "Net 45", "SystemModstamp": "2026-04-02T10:15:30.000+0000"}
    with pytest.raises(MappingError, match=r"payment_terms.*'Net 45'") as caught:
        to_canonical("account", wire)
    assert isinstance(caught.value, Permanent)
    dropped: list[MappingError] = []
    fields = to_canonical("account", wire, on_error=dropped.append)[0]
    assert "payment_terms" not in fields and dropped[0].field == "payment_terms"
    with pytest.raises(MappingError, match="net_45"):
        to_wire("account", {"payment_terms": "net_45"})


def test_to_wire_is_sparse_and_projection_normalises() -> None:
    fields = {"name": "Acme", "billing_address": {"city": "Leeds"}, "legal_name": "Acme Ltd", "status": "inactive",
              "payment_terms": "due_on_receipt"}
    assert to_wire("account", fields) == {"Name": "Acme", "BillingStreet": None, "BillingCity": "Leeds",
                                          "BillingState": None, "BillingPostalCode": None,
                                          "Payment_Terms__c": "Due on receipt"}
    assert to_wire("account", {"currency": "EUR"}, multi_currency=False) == {}
    assert written_projection("account", fields) == {"name": "Acme", "billing_address": {"city": "Leeds"},
                                                     "payment_terms": "due_on_receipt", "status": "active"}


def test_settings_decode_and_limits() -> None:
    raw = {"kind": "salesforce", "base_url": "https://acme.my.salesforce.com", "client_id": "a", "client_secret": "b", "overlap": "5s"}
    decoded = msgspec.convert(raw, SalesforceSettings, dec_hook=dec_hook)
    assert decoded.overlap == 5.0 and decoded.batch_size == 200 and decoded.api_version == "66.0"
    with pytest.raises(msgspec.ValidationError, match="batch_size"):
        msgspec.convert({**raw, "batch_size": 201}, SalesforceSettings, dec_hook=dec_hook)
    with pytest.raises(msgspec.ValidationError, match="api_version"):
        msgspec.convert({**raw, "api_version": "v66.0"}, SalesforceSettings, dec_hook=dec_hook)


# -- fetch -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("page_size", "max_batch", "calls"), [(2000, 7, 4), (5, 2000, 5)])
async def test_full_load_pages_with_batch_shrink(sf_state: SalesforceState, sf_recorder: Recorder, page_size: int,
                                                 max_batch: int, calls: int) -> None:
    ids = seed_accounts(sf_state, 25, random.Random(7))
    sf_state.max_batch = max_batch
    conn = SalesforceConnector(settings(page_size=page_size), transport=sf_recorder)
    records, cursor = await drain(conn, None)
    await conn.aclose()
    assert sorted(r.id for r in records) == sorted(ids)  # every record exactly once
    assert sf_state.requests.count("query", status=200) == calls
    assert all(r.headers["sforce-query-options"] == f"batchSize={page_size}" for r in sf_recorder.requests
               if "/query" in r.url.path)
    assert "WHERE" not in soql_of(sf_state)[0]  # a full load reads from the beginning, through queryAll
    assert all(e.path.split("/")[4] == "queryAll" for e in sf_state.requests.entries("query"))
    first = sf_state.get("Account", records[0].id)
    assert first is not None and records[0].version == parse_datetime_ms(first["SystemModstamp"])
    assert records[0].fields.keys() == ACCOUNT_FIELDS and records[0].gid is None
    assert json.loads(cursor)["wm"] == max(r.version for r in records)


async def test_same_modstamp_straddling_pages_and_expired_locator(sf_state: SalesforceState,
                                                                  sf: SalesforceConnector) -> None:
    before = sf_state.user_create("Account", {"Name": "Early"})
    sf_state.clock.advance(1)
    with sf_state.transaction():  # one transaction: five records share one SystemModstamp
        batch = [sf_state.user_create("Account", {"Name": f"Bulk {i}"}) for i in range(5)]
    sf_state.clock.advance(1)
    after = sf_state.user_create("Account", {"Name": "Late"})
    sf_state.max_batch = 2
    page = await sf.fetch("account", None)
    assert [r.id for r in page.records] == [before, batch[0]] and page.more
    sf_state.invalidate_cursors()  # the locator is refused: the query restarts from the watermark
    rest, cursor = await drain(sf, page.cursor)
    records = page.records + rest
    assert sorted(r.id for r in records) == sorted([before, *batch, after])
    assert len({r.version for r in records if r.id in batch}) == 1
    assert sf_state.requests.count("query", status=400) == 1
    again, _ = await drain(sf, cursor)
    assert again == []  # the overlap window is re-read but nothing repeats


async def test_a_window_larger_than_the_dedup_set_repeats_only_its_oldest_records(
        sf_state: SalesforceState, sf: SalesforceConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst inside one overlap window that outgrows the cursor's de-dup set repeats its oldest records
    only, on every poll the same few: the newest pairs are kept (regression: the repeats were appended
    last and evicted newer pairs, so each poll re-read a different part of the window, all of it over time)."""
    monkeypatch.setattr(client_module, "MAX_RECENT", 4)
    ids = []
    for i in range(6):
        ids.append(sf_state.user_create("Account", {"Name": f"Burst {i}"}))
        sf_state.clock.advance(0.1)  # all six inside the 2 s overlap
    records, cursor = await drain(sf, None)
    assert [r.id for r in records] == ids
    assert [pair[0] for pair in json.loads(cursor)["recent"]] == ids[2:]
    for _ in range(3):
        records, cursor = await drain(sf, cursor)
        assert sorted(r.id for r in records) == sorted(ids[:2])  # the same two, never the newer four
        assert sorted(pair[0] for pair in json.loads(cursor)["recent"]) == sorted(ids[2:])


async def test_repeats_from_the_overlap_window_are_not_mapped_again(
        sf_state: SalesforceState, sf: SalesforceConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every poll re-reads the overlap window; rows already returned are dropped before mapping, so an idle
    poll after a burst costs the transfer only (regression: each repeat was mapped, then dropped)."""
    with sf_state.transaction():
        ids = [sf_state.user_create("Account", {"Name": f"Burst {i}"}) for i in range(50)]
    records, cursor = await drain(sf, None)
    assert sorted(r.id for r in records) == sorted(ids)
    mapped: list[str] = []
    record = SalesforceConnector._record
    monkeypatch.setattr(SalesforceConnector, "_record",
                        lambda self, emap, raw: mapped.append(raw["Id"]) or record(self, emap, raw))
    sf_state.clock.advance(0.5)
    sf_state.user_update("Account", ids[7], {"Website": "https://seven.example"})
    records, cursor = await drain(sf, cursor)
    assert [r.id for r in records] == [ids[7]] and mapped == [ids[7]]
    assert sf_state.requests.count("query") == 2  # the window was served again, all 51 rows of it


async def test_a_large_window_stays_out_of_the_cursor_and_a_restart_repeats_it_once(
        sf_state: SalesforceState, sf: SalesforceConnector, sf_recorder: Recorder,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bulk load's window of de-dup pairs is kept in memory, not rewritten into the cursor with every
    page (regression: a 20,000-record load stored ~600 KB of cursor per page and the cost per record grew
    with the load). A new process with the stored cursor repeats that window once; nothing is lost."""
    monkeypatch.setattr(dedup, "CURSOR_PAIRS", 3)
    with sf_state.transaction():
        ids = [sf_state.user_create("Account", {"Name": f"Bulk {i}"}) for i in range(20)]
    records, cursor = await drain(sf, None)
    assert sorted(r.id for r in records) == sorted(ids)
    assert json.loads(cursor).get("recent") is None and len(cursor) < 200
    assert (await drain(sf, cursor))[0] == []  # the same process remembers the window
    restarted = SalesforceConnector(sf.settings, transport=sf_recorder)
    records, cursor = await drain(restarted, cursor)
    assert sorted(r.id for r in records) == sorted(ids)  # repeated once (writes are idempotent)...
    assert (await drain(restarted, cursor))[0] == []  # ...then remembered
    await restarted.aclose()


async def test_a_page_fetched_again_from_an_older_cursor_is_not_skipped(
        sf_state: SalesforceState, sf: SalesforceConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    """The poller fetches from the cursor it stored; if publishing a page failed, it asks again from the
    older cursor. The window in memory then already holds that page's records: it must not be used."""
    monkeypatch.setattr(dedup, "CURSOR_PAIRS", 3)
    sf_state.max_batch = 5
    with sf_state.transaction():
        ids = [sf_state.user_create("Account", {"Name": f"Bulk {i}"}) for i in range(12)]
    first = await sf.fetch("account", None)
    second = await sf.fetch("account", first.cursor)  # fetched, then its publish failed
    again = await sf.fetch("account", first.cursor)
    assert [r.id for r in again.records] == [r.id for r in second.records] and len(again.records) == 5
    rest, _ = await drain(sf, again.cursor)
    assert sorted(r.id for r in [*first.records, *again.records, *rest]) == sorted(ids)


async def test_incremental_fetch_returns_later_changes_once(sf_state: SalesforceState,
                                                            sf: SalesforceConnector) -> None:
    ids = seed_accounts(sf_state, 10, random.Random(3))
    now = [0.0]
    sf._clock = lambda: now[0]  # the connector's own clock: when a settling read is due
    _, cursor = await drain(sf, None)
    sf_state.clock.advance(60)
    sf_state.user_update("Account", ids[2], {"Name": "Renamed Partners LLP"})
    records, cursor = await drain(sf, cursor)
    assert [(r.id, r.fields["name"]) for r in records] == [(ids[2], "Renamed Partners LLP")]
    where = soql_of(sf_state)[-1]
    assert "WHERE SystemModstamp >= " in where and where.endswith("ORDER BY SystemModstamp ASC, Id ASC")
    sf_state.clock.advance(0.5)  # inside the 2 s overlap: ids[2] is read again and dropped as a repeat
    sf_state.user_update("Account", ids[5], {"Website": "https://renamed.example"})
    now[0] += 2.0  # a settling read: from the first read's watermark minus overlap, every repeat dropped
    records, cursor = await drain(sf, cursor)
    assert [(r.id, r.fields["website"]) for r in records] == [(ids[5], "https://renamed.example")]
    assert [pair[0] for pair in json.loads(cursor)["recent"]] == [ids[2], ids[5]]  # old pairs pruned
    assert (await drain(sf, cursor))[0] == []


async def test_deletes_come_back_through_query_all(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    [created] = await sf.write("account", [op("g-del", {"name": "Doomed Ltd"})])
    first, cursor = await drain(sf, None)
    sf_state.clock.advance(30)
    assert created.target_id is not None
    sf_state.user_delete("Account", created.target_id)
    records, _ = await drain(sf, cursor)
    assert len(records) == 1
    tomb = records[0]
    assert (tomb.id, tomb.deleted, tomb.gid, tomb.fields) == (created.target_id, True, "g-del", {})
    assert tomb.version > first[0].version


async def test_unmappable_value_is_left_out_not_fatal(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    rid = sf_state.user_create("Account", {"Name": "Odd Terms", "Payment_Terms__c": "Net 45"})
    records, _ = await drain(sf, None)
    assert records[0].id == rid and "payment_terms" not in records[0].fields
    assert records[0].fields["name"] == "Odd Terms" and sf.stats.errors == 1
    assert records[0].error is not None and "payment_terms" in records[0].error and "'Net 45'" in records[0].error


# -- auth, limits, faults --------------------------------------------------------------------------

async def test_expired_session_mints_a_new_token_and_retries_once(sf_state: SalesforceState,
                                                                  sf: SalesforceConnector) -> None:
    await sf.fetch("account", None)
    sf_state.expire_tokens()
    await sf.fetch("account", None)
    assert sf_state.requests.count("token") == 2
    assert sf_state.requests.count("query", status=401) == 1 and sf_state.requests.count("query", status=200) == 2


async def test_second_401_is_auth_expired(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    sf_state.token_ttl = 0  # every token is dead on arrival
    with pytest.raises(AuthExpired, match="INVALID_SESSION_ID"):
        await sf.fetch("account", None)
    assert sf_state.requests.count("token") == 2 and sf_state.requests.count("query", status=401) == 2


async def test_bad_client_secret_is_permanent(sf_recorder: Recorder) -> None:
    conn = SalesforceConnector(settings(client_secret="wrong"), transport=sf_recorder, name="crm")
    with pytest.raises(Permanent, match=r"^crm: .*invalid_client.*client_secret"):
        await conn.fetch("account", None)
    await conn.aclose()


async def test_shared_token_cache_is_reused(sf_recorder: Recorder, sf_state: SalesforceState) -> None:
    cache = MemoryTokenCache()
    one = SalesforceConnector(settings(), transport=sf_recorder, token_cache=cache)
    two = SalesforceConnector(settings(), transport=sf_recorder, token_cache=cache)
    await one.fetch("account", None)
    await two.fetch("account", None)
    assert sf_state.requests.count("token") == 1 and cache.token is not None and "expires_at" in cache.token
    await one.aclose()
    await two.aclose()


async def test_request_limit_exceeded_is_rate_limited(sf_state: SalesforceState, sf: SalesforceConnector,
                                                      sf_recorder: Recorder) -> None:
    sf_state.faults.add("query", "429")  # rendered the Salesforce way: 403 REQUEST_LIMIT_EXCEEDED
    with pytest.raises(RateLimited) as caught:
        await sf.fetch("account", None)
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (403, "REQUEST_LIMIT_EXCEEDED", 60.0)
    assert sf.stats.rate_limited == 1
    sf_state.api_limit = sf_state.usage()[0]  # the daily quota is now used up
    other = SalesforceConnector(settings(), transport=sf_recorder)  # another process: not paused by the first
    with pytest.raises(RateLimited):
        await other.write("account", [op("g-1", {"name": "Blocked"})])
    assert other.stats.rate_limited == 1 and sf_state.records("Account") == []
    await other.aclose()


async def test_server_unavailable_is_retryable(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    sf_state.faults.add("composite", "503")
    with pytest.raises(Retryable) as caught:
        await sf.write("account", [op("g-1", {"name": "Later Ltd"})])
    assert not isinstance(caught.value, RateLimited) and caught.value.code == "SERVER_UNAVAILABLE"
    sf_state.faults.add("query", "500")
    with pytest.raises(Retryable):
        await sf.fetch("account", None)
    [result] = await sf.write("account", [op("g-1", {"name": "Later Ltd"})])  # the fault is spent
    assert result.ok and len(sf_state.records("Account")) == 1


async def test_limit_info_is_parsed(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    assert sf.api_usage is None
    await sf.fetch("account", None)
    await sf.fetch("account", None)
    assert sf.api_usage == sf_state.usage() == (2, 15000)
    assert sf.stats.calls == 3  # one token call and two queries


# -- write -------------------------------------------------------------------------------------------

async def test_collection_upsert_partial_failure(sf_state: SalesforceState, sf: SalesforceConnector,
                                                 sf_recorder: Recorder) -> None:
    full = {"name": "Acme Consulting Ltd", "country": "GB", "currency": "GBP", "payment_terms": "net_30",
            "billing_address": {"city": "London", "postal_code": "EC2A 1AB"}, "legal_name": "Acme Consulting Limited"}
    ops = [op("g-1", full, correlation_id="c-1"), op("g-2", {"website": "https://nameless.example"},
                                                     correlation_id="c-2"),
           op("g-3", {"name": "Beta GmbH", "country": "DE"}, correlation_id="c-1")]
    results = await sf.write("account", ops)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, Permanent) and results[1].error.code == "REQUIRED_FIELD_MISSING"
    assert "Accord_Id__c=g-2" in results[1].error.message and "Name" in results[1].error.message
    assert results[0].created and results[0].fields == {k: v for k, v in full.items() if k != "legal_name"}
    stored = {r["Accord_Id__c"]: r for r in sf_state.records("Account")}
    assert stored.keys() == {"g-1", "g-3"} and stored["g-1"]["Id"] == results[0].target_id
    assert (stored["g-1"]["Payment_Terms__c"], stored["g-1"]["BillingCity"], stored["g-1"]["BillingStreet"]) == (
        "Net 30", "London", None)
    [sent] = [r for r in sf_recorder.requests if r.method == "PATCH"]
    assert sent.url.path == "/services/data/v66.0/composite/sobjects/Account/Accord_Id__c"
    assert sent.headers["sforce-call-options"] == "client=accord" and sent.headers["x-correlation-id"] == "c-1,c-2"
    assert json.loads(sent.content)["allOrNone"] is False


async def test_upsert_is_idempotent(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    first = await sf.write("account", [op("g-7", {"name": "Once Only Inc."})])
    again = await sf.write("account", [op("g-7", {"name": "Once Only Inc."})])  # a retried create
    assert len(sf_state.records("Account")) == 1
    assert (first[0].created, again[0].created) == (True, False)
    assert first[0].target_id == again[0].target_id


async def test_update_by_id_writes_only_given_fields(sf_state: SalesforceState, sf: SalesforceConnector,
                                                     sf_recorder: Recorder) -> None:
    rid = sf_state.user_create("Account", {"Name": "Old Name", "Website": "https://keep.example",
                                        "Tax_Id__c": "DE123", "BillingCity": "Berlin"})
    [result] = await sf.write("account", [op("g-9", {"name": "New Name"}, target_id=rid)])
    assert (result.ok, result.target_id, result.created, result.fields) == (True, rid, False, {"name": "New Name"})
    row = sf_state.get("Account", rid)
    assert row is not None
    assert (row["Name"], row["Website"], row["Tax_Id__c"], row["BillingCity"]) == (
        "New Name", "https://keep.example", "DE123", "Berlin")
    [sent] = [json.loads(r.content) for r in sf_recorder.requests if r.method == "PATCH"]
    assert sent["records"] == [{"attributes": {"type": "Account"}, "id": rid, "Name": "New Name"}]
    calls = sf_state.requests.count("composite")
    [skip] = await sf.write("account", [op("g-9", {"legal_name": "Not in Salesforce"}, target_id=rid)])
    assert skip.ok and sf_state.requests.count("composite") == calls  # nothing to write: no request


async def test_per_record_errors_are_classified(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    locked = sf_state.user_create("Account", {"Name": "Locked"})
    gone = sf_state.user_create("Account", {"Name": "Gone"})
    sf_state.user_delete("Account", gone)
    sf_state.lock_record(locked)
    sf_state.add_validation_rule("Account", "website_https", lambda r: not r["Website"] or
                              str(r["Website"]).startswith("https://"), "Website must start with https://")
    results = await sf.write("account", [
        op("g-1", {"name": "Busy"}, target_id=locked),
        op("g-2", {"name": "Dead"}, target_id=gone),
        op("g-3", {"name": "Plain", "website": "http://insecure.example"}),
        op("g-4", {"payment_terms": "net_90"}, target_id=locked),
    ])
    assert [type(r.error) for r in results] == [Retryable, Gone, Permanent, MappingError]
    assert [r.error.code for r in results if r.error] == [
        "UNABLE_TO_LOCK_ROW", "ENTITY_IS_DELETED", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "MAPPING_ERROR"]


async def test_delete(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    [made] = await sf.write("account", [op("g-5", {"name": "Short Lived"})])
    results = await sf.write("account", [op("g-5", {}, target_id=made.target_id, kind="delete"),
                                         op("g-6", {}, kind="delete")])
    assert [r.ok for r in results] == [True, True]
    assert sf_state.records("Account") == [] and len(sf_state.records("Account", include_deleted=True)) == 1
    deletes = [e for e in sf_state.requests.entries("composite") if e.method == "DELETE"]
    assert len(deletes) == 1 and parse_qs(deletes[0].query) == {"ids": [made.target_id], "allOrNone": ["false"]}
    [again] = await sf.write("account", [op("g-5", {}, target_id=made.target_id, kind="delete")])
    assert again.ok  # deleting a deleted record is done, not an error (a retried delete)


async def test_find_created(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    made = await sf.write("account", [op("g-1", {"name": "One"}), op("O'Brien-2", {"name": "Two"})])
    sf_state.user_create("Account", {"Name": "Unrelated"})
    found = await sf.find_created("account", ["g-1", "O'Brien-2", "g-missing"], 0)
    assert found.keys() == {"g-1", "O'Brien-2"}
    assert [found["g-1"].id, found["O'Brien-2"].id] == [r.target_id for r in made]
    assert found["g-1"].gid == "g-1" and found["g-1"].fields["name"] == "One"
    assert "WHERE Accord_Id__c IN ('g-1', 'O\\'Brien-2', 'g-missing')" in soql_of(sf_state)[-1]


async def test_single_currency_org(sf_recorder: Recorder, sf_state: SalesforceState) -> None:
    sf_state.multi_currency = False
    wrong = SalesforceConnector(settings(), transport=sf_recorder)
    with pytest.raises(Permanent, match="No such column 'CurrencyIsoCode'") as caught:
        await wrong.fetch("account", None)
    assert caught.value.code == "INVALID_FIELD"
    await wrong.aclose()
    conn = SalesforceConnector(settings(multi_currency=False), transport=sf_recorder)
    [result] = await conn.write("account", [op("g-1", {"name": "Mono", "currency": "EUR"})])
    assert result.ok and result.fields == {"name": "Mono"}
    records, _ = await drain(conn, None)
    assert records[0].fields.keys() == ACCOUNT_FIELDS - {"currency"}
    await conn.aclose()


async def test_system_name_is_settable(sf_recorder: Recorder, sf_state: SalesforceState) -> None:
    conn: Connector = SalesforceConnector(settings(), transport=sf_recorder)  # satisfies the contract
    conn.system = "crm"
    sf_state.faults.add("query", "503")
    with pytest.raises(Retryable, match=r"^crm: GET /services/data/v66.0/queryAll → 503 SERVER_UNAVAILABLE"):
        await conn.fetch("account", None)
    assert conn.entities() == ("account", "contact", "opportunity", "invoice", "payment")
    assert conn.batch_size == 200
    with pytest.raises(Permanent, match="not mapped"):
        await conn.fetch("time_entry", None)
    await conn.aclose()


async def test_transport_failures_are_classified() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/services/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "instance_url": "http://api.sf.test"})
        if "timeout" in request.url.params.get("q", ""):
            raise httpx.ReadTimeout("read timed out", request=request)
        return httpx.Response(200, text="<html>maintenance</html>")

    conn = SalesforceConnector(settings(), transport=httpx.MockTransport(handler))
    with pytest.raises(Retryable, match="not JSON"):
        await conn.fetch("account", None)
    with pytest.raises(Retryable, match="ReadTimeout"):
        await conn.find_created("account", ["timeout"], 0)
    assert conn.stats.drain() == {"calls": 3, "rate_limited": 0, "errors": 2, "error:transport": 1, "error:bad_body": 1}
    await conn.aclose()


def _commit_late(state: SalesforceState, name: str, stamp_ms: int) -> str:
    """A row whose transaction began (and took its SystemModstamp) before rows already read, and commits now."""
    rid = state.user_create("Account", {"Name": name})
    with state.lock:
        row = {**state.store.rows["Account"][rid], "SystemModstamp": stamp_ms, "LastModifiedDate": stamp_ms}
        state.store._put("Account", rid, row)
    return rid


async def test_between_settling_reads_a_busy_org_is_read_from_the_watermark_and_late_commits_still_arrive(
        sf_state: SalesforceState, sf: SalesforceConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    """Polls inside one ``overlap`` start at the watermark's second, so a busy org's last seconds are not
    transferred again on every poll; once per ``overlap`` a settling read re-reads from the last settled
    floor and returns what committed late with an earlier stamp (regression: every poll re-read the whole
    window: ten times the rows at a 0.2 s poll interval and a 2 s overlap)."""
    now = [0.0]
    sf._clock = lambda: now[0]
    transferred: list[int] = []
    query = SalesforceConnector._query

    async def counting(self: SalesforceConnector, path: str, soql: str | None = None) -> dict[str, Any]:
        body = await query(self, path, soql)
        transferred.append(len(body.get("records", [])))
        return body

    monkeypatch.setattr(SalesforceConnector, "_query", counting)
    with sf_state.transaction():
        burst = [sf_state.user_create("Account", {"Name": f"Burst {i}"}) for i in range(50)]
    records, cursor = await drain(sf, None)
    assert len(records) == 50
    wm = json.loads(cursor)["wm"]
    fresh = []
    for i in range(5):  # five polls 0.2 s apart, one new account each
        sf_state.clock.advance(1.0)
        now[0] += 0.2
        fresh.append(sf_state.user_create("Account", {"Name": f"Fresh {i}"}))
        records, cursor = await drain(sf, cursor)
        assert [r.id for r in records] == [fresh[-1]]
    # each poll: the new row, plus what shares the watermark's second (SOQL compares whole seconds), not the
    # whole 2 s window again (which would have been 51, 52, 3, 3, 3)
    assert transferred[1:] == [51, 2, 2, 2, 2]
    late = _commit_late(sf_state, "Late Committer", wm + 500)  # stamped among rows already read
    records, cursor = await drain(sf, cursor)
    assert records == []  # not yet: a fast read starts at the watermark
    now[0] += 2.0
    records, cursor = await drain(sf, cursor)
    assert [r.id for r in records] == [late]  # the settling read finds it, and nothing else again
    # from the first read's watermark minus overlap, thin (Id and SystemModstamp), then the one row not yet
    # read, whole, by Id
    assert transferred[-2:] == [len(burst) + 5 + 1, 1]
    now[0] += 2.0
    assert (await drain(sf, cursor))[0] == []
