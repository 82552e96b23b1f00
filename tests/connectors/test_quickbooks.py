"""The QuickBooks connector driven against its sandbox in-process (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any
from urllib.parse import parse_qs

import httpx
import msgspec
import pytest

from accord.config.types import Duration, RateLimit, dec_hook
from accord.connectors.base import MemoryTokenCache, Page, WriteOp
from accord.connectors.budget import Priority, requests_as
from accord.connectors.errors import AuthExpired, Permanent, RateLimited, Retryable, StaleVersion
from accord.connectors.quickbooks import writer as writer_module
from accord.connectors.quickbooks.cdc import CdcGather
from accord.connectors.quickbooks.client import QuickBooksConnector
from accord.connectors.quickbooks.cursor import CdcCursor, QueryCursor, decode, encode, shift
from accord.connectors.quickbooks.faults import qbo_time
from accord.connectors.quickbooks.mapping import (
    DELETED_VERSION,
    MappingError,
    to_canonical,
    to_wire,
    with_gid,
)
from accord.connectors.quickbooks.settings import QuickBooksSettings
from accord.connectors.quickbooks.webhooks import sign
from accord.sandboxes.quickbooks.sandbox import QuickBooksState, build_app
from accord.sandboxes.quickbooks.seed import seed_customers
from tests.connectors.qbo_rig import START


async def drain(connector: QuickBooksConnector, cursor: str | None = None, *,
                entity: str = "account") -> tuple[list[Page], str]:
    pages = [await connector.fetch(entity, cursor)]
    while pages[-1].more:
        pages.append(await connector.fetch(entity, pages[-1].cursor))
    return pages, pages[-1].cursor


def customer(name: str, **extra: Any) -> dict[str, Any]:
    return {"DisplayName": name, "CompanyName": f"{name} Inc.", **extra}


def statuses(qbo_state: QuickBooksState, endpoint: str) -> list[int]:
    return [e.status for e in qbo_state.requests.entries(endpoint)]


# ------------------------------------------------------------------------------------------------
# reads
# ------------------------------------------------------------------------------------------------

async def test_full_load_pages_every_record_once_even_while_users_edit(qbo_state, make_qbo) -> None:
    seed_customers(qbo_state, 25, random.Random(7))
    qbo_state.user_deactivate("Customer", "5")  # inactive customers are part of the load too
    connector = make_qbo(page_size=10)

    first = await connector.fetch("account", None)
    qbo_state.clock.advance(5)
    qbo_state.user_update("Customer", "1", {"CompanyName": "Moved To The End Ltd"})  # already read
    pages, cursor = await drain(connector, first.cursor)
    pages.insert(0, first)

    ids = [r.id for p in pages for r in p.records]
    assert sorted(ids, key=int) == [str(i) for i in range(1, 26)]  # each exactly once, none skipped
    assert [p.more for p in pages] == [True, True, False]
    assert qbo_state.requests.count("query") == 3
    assert isinstance(decode(cursor), CdcCursor)
    inactive = next(r for p in pages for r in p.records if r.id == "5")
    assert inactive.fields["status"] == "inactive"

    later = await connector.fetch("account", cursor)  # the edit made during the load arrives by CDC
    assert [r.id for r in later.records] == ["1"]
    assert later.records[0].fields["legal_name"] == "Moved To The End Ltd"


async def test_cdc_returns_only_later_changes_and_deactivations(qbo_state, make_qbo) -> None:
    seed_customers(qbo_state, 6, random.Random(1))
    connector = make_qbo()
    _, cursor = await drain(connector)
    qbo_state.clock.advance(60)
    qbo_state.user_update("Customer", "3", {"CompanyName": "Renamed Holdings"})
    qbo_state.user_deactivate("Customer", "4")
    new_id = qbo_state.user_create("Customer", customer("Fresh Client"))

    page = await connector.fetch("account", cursor)

    by_id = {r.id: r for r in page.records}
    assert set(by_id) == {"3", "4", new_id}
    assert by_id["4"].fields["status"] == "inactive" and not by_id["4"].deleted
    assert by_id["3"].version == 1 and by_id["4"].version == 1 and by_id[new_id].version == 0
    assert page.more is False
    sent = parse_qs(qbo_state.requests.entries("cdc")[-1].query)
    assert sent["entities"] == ["Customer"] and sent["minorversion"] == ["75"]
    loaded = decode(cursor)
    assert isinstance(loaded, CdcCursor)
    assert sent["changedSince"] == [shift(loaded.since, -2.0)]  # the load's server time minus the overlap


def employee(first: str) -> dict[str, Any]:
    return {"GivenName": first, "FamilyName": "Lovelace", "PrimaryEmailAddr": {"Address": f"{first}@example.com"}}


async def test_cdc_reads_arriving_together_go_as_one_request(qbo_state, make_qbo) -> None:
    """A poller polls its entities concurrently; their CDC reads share one ``/cdc`` call from the earliest
    watermark, and each gets what its own call would have returned (not the other's older changes)."""
    seed_customers(qbo_state, 3, random.Random(5))
    connector = make_qbo()
    _, accounts = await drain(connector)
    qbo_state.clock.advance(30)
    qbo_state.user_create("Employee", employee("Early"))  # before the people's watermark: read already
    qbo_state.clock.advance(30)
    _, people = await drain(connector, None, entity="resource")
    qbo_state.clock.advance(30)
    qbo_state.user_update("Customer", "2", {"CompanyName": "Renamed Ltd"})
    qbo_state.user_create("Employee", employee("Late"))
    before = qbo_state.requests.count("cdc")

    account_page, people_page = await asyncio.gather(connector.fetch("account", accounts),
                                                     connector.fetch("resource", people))
    assert [r.id for r in account_page.records] == ["2"]
    assert [r.fields["email"] for r in people_page.records] == ["Late@example.com"]
    assert qbo_state.requests.count("cdc") == before + 1
    sent = parse_qs(qbo_state.requests.entries("cdc")[-1].query)
    assert sent["entities"] == ["Customer,Employee"]
    assert sent["changedSince"] == [shift(decode(accounts).since, -2.0)]  # type: ignore[union-attr]


async def test_a_capped_shared_cdc_read_sends_every_reader_to_the_query(qbo_state, make_qbo) -> None:
    """The 1000 objects of a response are counted across entities: when full, any entity may be cut, so
    every reader in it pages its own window through the query."""
    seed_customers(qbo_state, 990, random.Random(6))
    connector = make_qbo()
    _, accounts = await drain(connector)
    _, people = await drain(connector, None, entity="resource")
    qbo_state.clock.advance(60)
    for record_id in range(1, 991):
        qbo_state.user_update("Customer", str(record_id), {"Notes": "reviewed"})
    for n in range(12):
        qbo_state.user_create("Employee", employee(f"P{n}"))
    account_page, people_page = await asyncio.gather(connector.fetch("account", accounts),
                                                     connector.fetch("resource", people))
    for page in (account_page, people_page):
        assert page.records == [] and page.more and isinstance(decode(page.cursor), QueryCursor)
    _, tail = await drain(connector, people_page.cursor, entity="resource")
    assert isinstance(decode(tail), CdcCursor)


async def test_a_failed_shared_cdc_read_fails_every_reader(qbo_state, make_qbo) -> None:
    connector = make_qbo()
    _, accounts = await drain(connector)
    _, people = await drain(connector, None, entity="resource")
    qbo_state.clock.advance(60)
    qbo_state.faults.add("cdc", "500")
    results = await asyncio.gather(connector.fetch("account", accounts), connector.fetch("resource", people),
                                   return_exceptions=True)
    assert all(isinstance(r, Retryable) for r in results), results
    assert qbo_state.requests.count("cdc", status=500) == 1


async def test_a_shared_cdc_read_cancelled_while_gathering_fails_its_readers_and_the_next_read_works() -> None:
    calls: list[dict[str, str]] = []

    async def call(params: dict[str, str]) -> dict[str, Any]:
        calls.append(params)
        return {"CDCResponse": [{"QueryResponse": []}], "time": "2026-04-01T00:00:10+00:00"}
    gather = CdcGather(call)
    reader = asyncio.create_task(gather.read("Customer", "2026-04-01T00:00:00+00:00"))
    await asyncio.sleep(0)
    assert gather._sending is not None
    gather._sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    read = await gather.read("Invoice", "2026-04-01T00:00:00+00:00")
    assert read.objects == [] and not read.capped and calls == [
        {"entities": "Invoice", "changedSince": "2026-04-01T00:00:00+00:00"}]


async def test_overlap_window_is_deduplicated(qbo_state, make_qbo) -> None:
    seed_customers(qbo_state, 3, random.Random(2))
    connector = make_qbo()
    _, cursor = await drain(connector)
    qbo_state.clock.advance(30)
    qbo_state.user_update("Customer", "2", {"CompanyName": "Within Overlap"})
    first = await connector.fetch("account", cursor)
    assert [r.id for r in first.records] == ["2"]

    qbo_state.clock.advance(0.5)  # still inside the 2 s overlap: the server sends "2" again
    again = await connector.fetch("account", first.cursor)
    assert again.records == []
    remembered = decode(again.cursor)
    assert isinstance(remembered, CdcCursor) and ("2", 1) in [tuple(x) for x in remembered.recent]
    forgetful = await connector.fetch("account", encode(CdcCursor(since=remembered.since)))
    assert [r.id for r in forgetful.records] == ["2"]  # proof the server did send it again

    qbo_state.clock.advance(10)
    qbo_state.user_update("Customer", "2", {"CompanyName": "Second Edit"})
    third = await connector.fetch("account", again.cursor)
    assert [(r.id, r.version) for r in third.records] == [("2", 2)]


async def test_cdc_at_the_cap_falls_back_to_a_query_window(qbo_state, make_qbo) -> None:
    seed_customers(qbo_state, 1005, random.Random(3))
    statements: list[str] = []
    connector = make_qbo(hook=lambda r: statements.append(r.content.decode()) if r.url.path.endswith("/query") else None)
    _, cursor = await drain(connector)
    qbo_state.clock.advance(60)
    for record_id in range(1, 1006):
        qbo_state.user_update("Customer", str(record_id), {"Notes": "reviewed"})

    capped = await connector.fetch("account", cursor)
    assert capped.records == [] and capped.more is True
    window = decode(capped.cursor)
    assert isinstance(window, QueryCursor) and window.after is not None

    pages, end = await drain(connector, capped.cursor)
    assert sorted(int(r.id) for p in pages for r in p.records) == list(range(1, 1006))
    assert isinstance(decode(end), CdcCursor)
    assert statements[-2:] == [
        f"SELECT * FROM Customer WHERE Active IN (true, false) AND Job = false AND Metadata.LastUpdatedTime >= "
        f"'{window.after}' "
        f"ORDERBY Id STARTPOSITION {start} MAXRESULTS 1000" for start in (1, 1001)]


async def test_a_capped_cdc_window_skips_what_was_returned_already(qbo_state, make_qbo) -> None:
    """After a query window, the next CDC (from that window's start minus the overlap) returns everything
    the window read; capped again, the query that replaces it skips those pairs and returns only what is
    new (regression: the dedup set was dropped at the cap, so every cycle re-read the last one)."""
    seed_customers(qbo_state, 1005, random.Random(3))
    connector = make_qbo()
    _, cursor = await drain(connector)
    qbo_state.clock.advance(60)
    for record_id in range(1, 1006):
        qbo_state.user_update("Customer", str(record_id), {"Notes": "reviewed"})
    pages, cursor = await drain(connector, cursor)
    assert len([r for p in pages for r in p.records]) == 1005
    qbo_state.clock.advance(0.5)  # inside the overlap: the next CDC sends all 1005 again, and is capped
    for record_id in (7, 700, 1001):
        qbo_state.user_update("Customer", str(record_id), {"Notes": "reviewed twice"})
    pages, cursor = await drain(connector, cursor)
    assert qbo_state.requests.count("cdc") >= 2 and isinstance(decode(cursor), CdcCursor)
    assert sorted((int(r.id), r.version) for p in pages for r in p.records) == [(7, 2), (700, 2), (1001, 2)]


async def test_watermark_older_than_cdc_window_requeries(qbo_state, make_qbo) -> None:
    seed_customers(qbo_state, 4, random.Random(4))
    connector = make_qbo()
    old = encode(CdcCursor(since=qbo_time(START - 31 * 86400, millis=True)))
    pages, cursor = await drain(connector, old)
    assert len([r for p in pages for r in p.records]) == 4
    assert qbo_state.requests.count("cdc") == 0 and qbo_state.requests.count("query") == 1
    assert isinstance(decode(cursor), CdcCursor)


async def test_unmappable_term_is_left_out_not_fatal(qbo_state, make_qbo) -> None:
    term = qbo_state.user_create("Term", {"Name": "Net 45", "DueDays": 45})
    qbo_state.user_create("Customer", customer("Odd Terms", SalesTermRef={"value": term}))
    connector = make_qbo()
    (record,) = (await connector.fetch("account", None)).records
    assert "payment_terms" not in record.fields
    assert record.fields["name"] == "Odd Terms"
    assert record.error is not None and "payment_terms" in record.error and repr(term) in record.error
    assert connector.stats.errors == 1


# ------------------------------------------------------------------------------------------------
# auth
# ------------------------------------------------------------------------------------------------

async def test_refresh_token_rotates_and_cache_keeps_the_newest(qbo_state, make_qbo) -> None:
    cache = MemoryTokenCache()
    connector = make_qbo(cache=cache)
    await connector.fetch("account", None)
    assert cache.token is not None
    first_refresh = cache.token["refresh_token"]
    assert first_refresh == qbo_state.refresh_token != "AB11-sandbox-initial"

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(qbo_state)),
                                 base_url="http://qbo.test") as raw:
        old = await raw.post("/oauth2/v1/tokens/bearer", auth=(qbo_state.client_id, qbo_state.client_secret),
                             data={"grant_type": "refresh_token", "refresh_token": "AB11-sandbox-initial"})
    assert old.status_code == 400 and old.json() == {"error": "invalid_grant"}

    qbo_state.clock.advance(3601)  # the access token expired: refreshed before the call, no 401
    await connector.fetch("account", None)
    assert statuses(qbo_state, "token") == [200, 400, 200]  # ours, the probe with the old token, ours
    assert 401 not in statuses(qbo_state, "query")
    assert cache.token["refresh_token"] == qbo_state.refresh_token != first_refresh


async def test_cached_refresh_token_is_preferred_over_settings(qbo_state, make_qbo) -> None:
    cache = MemoryTokenCache({"refresh_token": qbo_state.refresh_token, "access_token": "gone", "expires_at": 0})
    connector = make_qbo(cache=cache, refresh_token="AB11-long-rotated-away")
    await connector.fetch("account", None)
    assert statuses(qbo_state, "token") == [200]


async def test_401_refreshes_and_retries_once(qbo_state, make_qbo) -> None:
    connector = make_qbo()
    await connector.fetch("account", None)
    qbo_state.expire_tokens()
    page = await connector.fetch("account", None)
    assert page.cursor
    assert statuses(qbo_state, "query") == [200, 401, 200]
    assert statuses(qbo_state, "token") == [200, 200]


async def test_second_401_raises_auth_expired(qbo_state, make_qbo) -> None:
    qbo_state.token_ttl = 0  # every token the sandbox issues is already expired
    with pytest.raises(AuthExpired):
        await make_qbo().fetch("account", None)
    assert statuses(qbo_state, "query") == [401, 401]


async def test_refused_refresh_token_raises_auth_expired_naming_the_fix(qbo_state, make_qbo) -> None:
    with pytest.raises(AuthExpired, match="re-authorize"):
        await make_qbo(refresh_token="AB11-revoked").fetch("account", None)


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------

async def test_429_raises_rate_limited_with_retry_after(qbo_state, make_qbo) -> None:
    connector = make_qbo()
    qbo_state.faults.add("query", "429", retry_after=1)
    with pytest.raises(RateLimited) as info:
        await connector.fetch("account", None)
    assert info.value.retry_after == 1
    assert connector.stats.rate_limited == 1

    qbo_state.rate_limit = qbo_state.quotas.used("per_minute", qbo_state.realm_id)  # the per-minute budget is spent
    with pytest.raises(RateLimited) as info:
        await connector.fetch("account", None)  # after the budget's 1 s pause: the window frees in 59 s
    assert 58 <= info.value.retry_after <= 60
    assert qbo_state.requests.entries("query")[-1].fault == "limit"


@pytest.mark.parametrize("kind", ["500", "503", "timeout"])
async def test_5xx_and_timeouts_are_retryable(qbo_state, make_qbo, kind) -> None:
    connector = make_qbo()
    _, cursor = await drain(connector)
    qbo_state.faults.add("cdc", kind)
    with pytest.raises(Retryable) as info:
        await connector.fetch("account", cursor)
    assert not isinstance(info.value, RateLimited)
    assert (await connector.fetch("account", cursor)).more is False  # the fault was used up


async def test_minorversion_below_75_is_refused_naming_the_parameter(make_qbo) -> None:
    with pytest.raises(Permanent, match="minorversion"):
        await make_qbo(minor_version=74).fetch("account", None)


# ------------------------------------------------------------------------------------------------
# writes
# ------------------------------------------------------------------------------------------------

def op(gid: str, fields: dict[str, Any], *, target: str | None = None, version: int | None = None,
       kind: str = "upsert", key: str | None = None, correlation: str = "") -> WriteOp:
    return WriteOp(gid=gid, kind=kind, fields=fields, key=key or f"chg-{gid}", target_id=target,  # type: ignore[arg-type]
                   version=version, correlation_id=correlation)


def batch_bodies(seen: list[httpx.Request]) -> list[dict[str, Any]]:
    return [json.loads(r.content) for r in seen if r.url.path.endswith("/batch")]


async def test_create_carries_the_gid_marker_and_fetch_returns_it(qbo_state, make_qbo) -> None:
    seen: list[httpx.Request] = []
    connector = make_qbo(hook=seen.append)
    fields = {"name": "Globex", "legal_name": "Globex Corporation", "country": "GB", "currency": "GBP",
              "billing_address": {"street": "1 King Street", "city": "London", "postal_code": "EC2V 8AU"},
              "payment_terms": "net_30", "tax_id": "GB123456789", "website": "https://globex.example",
              "status": "active"}
    (result,) = await connector.write("account", [op("g-1", fields, correlation="corr-1")])

    assert result.ok and result.created and result.version == 0
    assert result.fields == fields
    stored = qbo_state.get("Customer", str(result.target_id))
    assert stored is not None and stored["Notes"] == "accord:g-1"
    assert stored["SalesTermRef"] == {"value": "3"} and stored["BillAddr"]["Country"] == "GB"
    (record,) = (await connector.fetch("account", None)).records
    assert record.gid == "g-1" and record.fields == fields
    batch = [r for r in seen if r.url.path.endswith("/batch")][0]
    assert batch.headers["X-Correlation-ID"] == "corr-1"
    assert len(batch.url.params["requestid"]) == 36


async def test_sparse_update_writes_only_the_given_fields(qbo_state, make_qbo) -> None:
    record_id = qbo_state.user_create("Customer", customer("Initech", PrimaryTaxIdentifier="12-3456789",
                                                       PrimaryEmailAddr={"Address": "ap@initech.example"},
                                                       WebAddr={"URI": "https://initech.example"}))
    seen: list[httpx.Request] = []
    connector = make_qbo(hook=seen.append)
    (result,) = await connector.write("account", [op("g-2", {"website": "https://initech.test"},
                                                     target=record_id, version=0)])
    assert result.ok and not result.created and result.version == 1
    assert result.fields == {"website": "https://initech.test"}
    (body,) = batch_bodies(seen)
    assert body["BatchItemRequest"][0]["Customer"] == {"WebAddr": {"URI": "https://initech.test"},
                                                       "Id": record_id, "SyncToken": "0", "sparse": True}
    stored = qbo_state.get("Customer", record_id)
    assert stored is not None
    assert stored["PrimaryTaxIdentifier"] == "12-3456789" and stored["CompanyName"] == "Initech Inc."
    assert stored["PrimaryEmailAddr"] == {"Address": "ap@initech.example"}
    assert qbo_state.requests.count("query") == 0  # the version was known: nothing read first


async def test_address_write_keeps_the_country_it_does_not_carry(qbo_state, make_qbo) -> None:
    record_id = qbo_state.user_create("Customer", customer("Umbrella", BillAddr={
        "Line1": "1 Old Rd", "Line2": "Suite 5", "City": "Raccoon", "Country": "US"}))
    (result,) = await make_qbo().write("account", [op("g-3", {"billing_address": {"street": "9 New Rd", "city": "Austin"}},
                                                  target=record_id, version=0)])
    assert result.ok
    stored = qbo_state.get("Customer", record_id)
    assert stored is not None
    assert stored["BillAddr"] == {"Line1": "9 New Rd", "Line2": "Suite 5", "City": "Austin", "Country": "US"}


async def test_update_without_a_known_version_reads_it_first(qbo_state, make_qbo) -> None:
    record_id = qbo_state.user_create("Customer", customer("Hooli"))
    qbo_state.user_update("Customer", record_id, {"CompanyName": "Hooli XYZ"})
    (result,) = await make_qbo().write("account", [op("g-4", {"tax_id": "98-7654321"}, target=record_id)])
    assert result.ok and result.version == 2
    assert [e.endpoint for e in qbo_state.requests.entries() if e.endpoint != "token"] == ["query", "batch"]


async def test_delete_deactivates_the_customer(qbo_state, make_qbo) -> None:
    seen: list[httpx.Request] = []
    record_id = qbo_state.user_create("Customer", customer("Soylent"))
    (result,) = await make_qbo(hook=seen.append).write("account", [op("g-5", {}, target=record_id, version=0,
                                                                      kind="delete")])
    assert result.ok and result.fields == {"status": "inactive"} and result.version == 1
    stored = qbo_state.get("Customer", record_id)
    assert stored is not None and stored["Active"] is False
    item = batch_bodies(seen)[0]["BatchItemRequest"][0]
    assert item["operation"] == "update" and item["Customer"]["Active"] is False


async def test_stale_synctoken_is_reread_and_retried(qbo_state, make_qbo) -> None:
    record_id = qbo_state.user_create("Customer", customer("Vandelay"))
    connector = make_qbo()
    (read,) = (await connector.fetch("account", None)).records
    qbo_state.user_update("Customer", record_id, {"CompanyName": "Vandelay Industries"})  # between read and write

    (result,) = await connector.write("account", [op("g-6", {"name": "Vandelay Imports"}, target=record_id,
                                                         version=read.version)])
    assert result.ok and result.version == 2
    stored = qbo_state.get("Customer", record_id)
    assert stored is not None
    assert stored["DisplayName"] == "Vandelay Imports" and stored["CompanyName"] == "Vandelay Industries"
    batches = qbo_state.requests.entries("batch")
    assert [e.status for e in batches] == [200, 200]
    assert [e.endpoint for e in qbo_state.requests.entries() if e.endpoint != "token"] == ["query", "batch", "query",
                                                                                       "batch"]
    assert parse_qs(batches[0].query)["requestid"] != parse_qs(batches[1].query)["requestid"]


async def test_stale_twice_gives_stale_version(qbo_state, make_qbo) -> None:
    record_id = qbo_state.user_create("Customer", customer("Kramerica"))

    def user_edits_before_each_batch(request: httpx.Request) -> None:
        if request.url.path.endswith("/batch"):
            qbo_state.user_update("Customer", record_id, {"Notes": f"edit at {request.url.params['requestid']}"})

    connector = make_qbo(hook=user_edits_before_each_batch)
    (result,) = await connector.write("account", [op("g-7", {"name": "Kramerica Inc"}, target=record_id,
                                                         version=0)])
    assert not result.ok and isinstance(result.error, StaleVersion)
    assert qbo_state.requests.count("batch") == 2


async def test_lost_batch_response_is_replayed_not_run_twice(qbo_state, make_qbo) -> None:
    connector = make_qbo()
    qbo_state.faults.add("batch", "drop")  # the server creates the customer, then the answer is lost
    ops = [op("g-8", {"name": "Pied Piper"})]
    with pytest.raises(Retryable):
        await connector.write("account", ops)
    assert len(qbo_state.records("Customer")) == 1

    (result,) = await connector.write("account", ops)  # the same batch again: the same requestid
    assert result.ok and result.created
    assert [r["Id"] for r in qbo_state.records("Customer")] == [result.target_id]
    assert statuses(qbo_state, "batch") == [503, 200]
    first, second = qbo_state.requests.entries("batch")
    assert parse_qs(first.query)["requestid"] == parse_qs(second.query)["requestid"]


async def test_spilled_single_create_lost_is_replayed_or_found_never_made_twice(
        qbo_state, make_qbo, monkeypatch) -> None:
    """While batches wait for the /batch window, ops go as single requests: a lost single create is
    replayed by its own requestid, and a retry that goes as a batch instead (another requestid, which QBO
    would run again) finds what the lost create made by its gid marker, as the writer does before it
    creates again (``maybe_written``)."""
    monkeypatch.setattr(writer_module, "BATCH_WAITERS", 0)  # every op spills to a single request
    connector = make_qbo()
    since_ms = int(qbo_state.clock.now() * 1000)
    qbo_state.faults.add("customer", "drop")  # the server creates the customer, then the answer is lost
    ops = [op("g-9", {"name": "Hooli"})]
    (lost,) = await connector.write("account", ops)
    assert not lost.ok and isinstance(lost.error, Retryable)
    [made] = qbo_state.records("Customer")

    (replayed,) = await connector.write("account", ops)  # singly again: the same requestid, replayed
    assert replayed.ok and replayed.created and replayed.target_id == made["Id"]
    assert statuses(qbo_state, "customer") == [503, 200] and statuses(qbo_state, "batch") == []
    first, second = qbo_state.requests.entries("customer")
    assert parse_qs(first.query)["requestid"] == parse_qs(second.query)["requestid"]

    monkeypatch.setattr(writer_module, "BATCH_WAITERS", 2)  # the batch window is free again
    found = await connector.find_created("account", ["g-9"], since_ms)
    assert found["g-9"].id == made["Id"]
    assert [r["Id"] for r in qbo_state.records("Customer")] == [made["Id"]]


async def test_spilled_chunks_pool_their_waiting_ops_into_full_batches(qbo_state, make_qbo, monkeypatch) -> None:
    """Two chunks spill while a batch of the process waits for the /batch window: each sends a few of
    its own singly, and once that batch got its grant the rest of both goes as one full batch."""
    monkeypatch.setattr(writer_module, "BATCH_WAITERS", 1)
    batches: list[int] = []
    singles = 0

    def hook(request: httpx.Request) -> None:
        nonlocal singles
        if request.url.path.endswith("/batch"):
            batches.append(len(json.loads(request.content)["BatchItemRequest"]))
        elif request.method == "POST" and request.url.path.endswith("/customer"):
            singles += 1
            if singles == 2 * writer_module.SINGLES_IN_FLIGHT:
                connector._writer._batch_waiters = 0  # the waiting batch was granted and sent
    connector = make_qbo(hook=hook)
    connector._writer._batch_waiters = 1  # a batch of this process waits for the window
    first = [op(f"a-{n}", {"name": f"Alpha {n}"}) for n in range(20)]
    second = [op(f"b-{n}", {"name": f"Beta {n}"}) for n in range(20)]
    results = [r for chunk in await asyncio.gather(connector.write("account", first), connector.write("account", second))
               for r in chunk]
    assert all(r.ok and r.created for r in results), [r.error for r in results if not r.ok]
    assert len(qbo_state.records("Customer")) == 40 == len({r.target_id for r in results})
    assert singles == 8 and batches[0] == 30 and sum(batches) == 32, (singles, batches)


async def test_a_few_fresh_changes_go_singly_when_the_batch_window_is_spent(qbo_state, make_qbo) -> None:
    """A fresh chunk of a few ops does not queue behind the realm's /batch window: with no batch grant
    free it goes as single requests at once; a larger chunk, or a backlog one, still waits for a batch."""
    sent: list[tuple[str, int]] = []

    def hook(request: httpx.Request) -> None:
        if request.url.path.endswith("/batch"):
            sent.append(("batch", len(json.loads(request.content)["BatchItemRequest"])))
        elif request.method == "POST" and request.url.path.endswith("/customer"):
            sent.append(("single", 1))
    connector = make_qbo(hook=hook, batch_limit=RateLimit(requests=1, period=Duration(1.0)))
    await connector.write("account", [op("a-0", {"name": "Alpha 0"})])  # takes the window's one grant
    few = await connector.write("account", [op(f"b-{n}", {"name": f"Beta {n}"}) for n in range(writer_module.FEW_FRESH)])
    with requests_as(Priority.BACKLOG):
        backlog = await connector.write("account", [op("c-0", {"name": "Gamma 0"})])
    more = await connector.write("account", [op(f"d-{n}", {"name": f"Delta {n}"})
                                              for n in range(writer_module.FEW_FRESH + 1)])
    assert all(r.ok and r.created for r in [*few, *backlog, *more])
    assert sent == [("batch", 1), *[("single", 1)] * writer_module.FEW_FRESH, ("batch", 1),
                    ("batch", writer_module.FEW_FRESH + 1)], sent
    assert len(qbo_state.records("Customer")) == 2 * writer_module.FEW_FRESH + 3


async def test_batch_partial_failure(qbo_state, make_qbo) -> None:
    qbo_state.user_create("Customer", customer("Acme"))
    results = await make_qbo().write("account", [op("a", {"name": "Alpha"}), op("b", {"name": "acme"}),
                                              op("c", {"name": "Beta"}), op("d", {"name": "Gamma",
                                                                                  "payment_terms": "net_45"})])
    assert [r.ok for r in results] == [True, False, True, False]
    assert isinstance(results[1].error, Permanent) and results[1].error.code == "6240"
    assert isinstance(results[3].error, Permanent) and "payment_terms" in str(results[3].error)
    assert sorted(r["DisplayName"] for r in qbo_state.records("Customer")) == ["Acme", "Alpha", "Beta"]


async def test_find_created_matches_gid_markers(qbo_state, make_qbo) -> None:
    connector = make_qbo()
    qbo_state.clock.advance(10)
    since_ms = int(qbo_state.clock.now() * 1000)
    results = await connector.write("account", [op("g1", {"name": "One"}), op("g2", {"name": "Two"})])
    qbo_state.user_create("Customer", customer("Someone Else", Notes="accord:g3 is mentioned but not a marker"))

    found = await connector.find_created("account", ["g1", "g3"], since_ms)
    assert set(found) == {"g1"}
    assert found["g1"].id == results[0].target_id and found["g1"].version == 0

    qbo_state.clock.advance(120)
    later = int(qbo_state.clock.now() * 1000)
    assert await connector.find_created("account", ["g1", "g2"], later) == {}


# ------------------------------------------------------------------------------------------------
# webhooks
# ------------------------------------------------------------------------------------------------

async def test_webhook_signature_and_both_payload_formats(qbo_state, make_qbo) -> None:
    connector = make_qbo()
    legacy = json.dumps({"eventNotifications": [
        {"realmId": qbo_state.realm_id, "dataChangeEvent": {"entities": [
            {"name": "Customer", "id": "58", "operation": "Update", "lastUpdated": "2026-04-02T17:15:30.000Z"}]}},
        {"realmId": "someone-else", "dataChangeEvent": {"entities": [{"name": "Customer", "id": "9",
                                                                       "operation": "Create"}]}}]}).encode()
    cloud = json.dumps([{"specversion": "1.0", "id": "6b1c", "type": "qbo.customer.deleted.v1",
                         "intuitentityid": "77", "intuitaccountid": qbo_state.realm_id, "data": {}},
                        {"specversion": "1.0", "id": "6b1d", "type": "qbo.timeactivity.created.v1",
                         "intuitentityid": "5", "intuitaccountid": qbo_state.realm_id, "data": {}}]).encode()
    good = sign(legacy, "verifier-token")
    assert connector.verify_webhook(legacy, good, "verifier-token")
    assert not connector.verify_webhook(legacy + b" ", good, "verifier-token")
    assert not connector.verify_webhook(legacy, good, "another-token")
    assert not connector.verify_webhook(legacy, "not base64!", "verifier-token")
    assert connector.parse_webhook(legacy) == [("Customer", "58", "Update")]
    assert connector.parse_webhook(cloud) == [("Customer", "77", "Delete"), ("TimeActivity", "5", "Create")]
    assert connector.parse_webhook(b"not json") == []


# ------------------------------------------------------------------------------------------------
# mapping
# ------------------------------------------------------------------------------------------------

def test_mapping_reads_customer_and_cdc_stubs() -> None:
    wire = {"Id": "58", "SyncToken": "2", "DisplayName": "ABC Corp", "CompanyName": "ABC Corporation",
            "BillAddr": {"Line1": "1 Main St", "City": "Springfield", "CountrySubDivisionCode": "CA",
                         "Country": "USA"}, "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "SalesTermRef": {"value": "1"}, "Active": True, "Notes": "VIP client\naccord:gid-58",
            "MetaData": {"LastUpdatedTime": "2026-04-01T09:10:00-07:00"}}
    record = to_canonical("account", wire)
    assert record.fields == {"name": "ABC Corp", "legal_name": "ABC Corporation", "website": None,
                             "billing_address": {"street": "1 Main St", "city": "Springfield", "state": "CA"},
                             "country": "US", "currency": "USD", "tax_id": None, "payment_terms": "due_on_receipt",
                             "status": "active"}
    assert (record.id, record.version, record.gid) == ("58", 2, "gid-58")
    assert record.modified_ms == 1775059800000
    stub = to_canonical("account", {"domain": "QBO", "status": "Deleted", "Id": "130",
                                    "MetaData": {"LastUpdatedTime": "2026-04-01T11:00:00-07:00"}})
    assert stub.deleted and stub.version == DELETED_VERSION and stub.fields == {}
    assert to_canonical("account", {"Id": "1", "SyncToken": "0", "DisplayName": "X"}).fields["billing_address"] is None


def test_mapping_errors_name_the_field_and_value() -> None:
    with pytest.raises(MappingError, match="payment_terms value '7'"):
        to_canonical("account", {"Id": "1", "SyncToken": "0", "SalesTermRef": {"value": "7"}})
    with pytest.raises(MappingError, match="country value 'Atlantis'"):
        to_canonical("account", {"Id": "1", "SyncToken": "0", "BillAddr": {"Country": "Atlantis"}})
    with pytest.raises(MappingError, match="name"):
        to_wire("account", {"name": ""})
    with pytest.raises(MappingError, match="currency"):
        to_wire("account", {"currency": "dollars"})


def test_mapping_writes_only_given_fields_and_keeps_other_notes() -> None:
    assert to_wire("account", {"payment_terms": "net_60", "status": "inactive", "legal_entity": "ignored"}) == {
        "SalesTermRef": {"value": "4"}, "Active": False}
    assert to_wire("account", {"website": None, "tax_id": None}) == {"WebAddr": None, "PrimaryTaxIdentifier": None}
    assert with_gid("Call before invoicing\naccord:old", "new") == "Call before invoicing\naccord:new"


def test_settings_decode_with_durations_and_limits() -> None:
    base = {"kind": "quickbooks", "base_url": "http://127.0.0.1:8102", "realm_id": "1", "client_id": "c",
            "token_url": "http://127.0.0.1:8102/oauth2/v1/tokens/bearer", "client_secret": "s", "refresh_token": "r"}
    settings = msgspec.convert({**base, "overlap": "5s"}, QuickBooksSettings, dec_hook=dec_hook)
    assert settings.overlap == 5.0 and settings.batch_size == 30 and settings.minor_version == 75
    for bad in ({"batch_size": 31}, {"page_size": 1001}, {"bogus": 1}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({**base, **bad}, QuickBooksSettings, dec_hook=dec_hook)
