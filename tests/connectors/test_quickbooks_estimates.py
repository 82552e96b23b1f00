"""Canonical opportunities as QuickBooks estimates: the mapping both ways through the connector, the
writer's retries (requestid replay, find_created, stale SyncToken), reads by query and CDC, deletes, and
the sandbox's Estimate rules. Real HTTP to the sandbox, in-process."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from accord.connectors.base import Page, SourceRecord
from accord.connectors.errors import Gone, Permanent, Retryable, StaleVersion
from accord.connectors.quickbooks.client import QuickBooksConnector
from accord.connectors.quickbooks.cursor import CdcCursor, decode
from accord.connectors.quickbooks.faults import QboFault
from accord.connectors.quickbooks.mapping import DELETED_VERSION, MappingError, to_canonical, to_wire
from accord.sandboxes.quickbooks.sandbox import QuickBooksState, build_app
from tests.connectors.qbo_rig import op, write1

SALES = "SalesItemLineDetail"
HELD = ("account", "name", "stage", "is_won", "amount", "currency", "close_date")


@pytest.fixture
def firm(qbo_state: QuickBooksState) -> dict[str, str]:
    """A US client, a UK client (billed in GBP) and a project of the US client."""
    us = qbo_state.user_create("Customer", {"DisplayName": "Northwind", "CompanyName": "Northwind Inc."})
    uk = qbo_state.user_create("Customer", {"DisplayName": "Globex UK", "CurrencyRef": {"value": "GBP"}})
    return {"us": us, "uk": uk, "project": qbo_state.user_create_project(us, "Northwind ERP rollout")}


async def load(connector: QuickBooksConnector, cursor: str | None = None) -> tuple[list[Page], str]:
    pages: list[Page] = [await connector.fetch("opportunity", cursor)]
    while pages[-1].more:
        pages.append(await connector.fetch("opportunity", pages[-1].cursor))
    return pages, pages[-1].cursor


async def records(connector: QuickBooksConnector) -> dict[str, SourceRecord]:
    pages, _ = await load(connector)
    return {r.id: r for p in pages for r in p.records}


def estimate(qbo_state: QuickBooksState, customer: str, amount: float, **extra: Any) -> str:
    """An estimate as a salesperson types it into QuickBooks: one line of ``amount``."""
    return qbo_state.user_create("Estimate", {"CustomerRef": {"value": customer}, "Line": [
        {"DetailType": SALES, "Amount": amount, SALES: {}}], **extra})


def won(account: str, **extra: Any) -> dict[str, Any]:
    return {"account": account, "name": "Northwind ERP rollout", "stage": "Closed Won", "is_won": True,
            "amount": "1575.5", "currency": "USD", "close_date": "2026-06-30", **extra}


# ------------------------------------------------------------------------------------------------
# create → fetch
# ------------------------------------------------------------------------------------------------

async def test_created_estimate_reads_back_as_the_same_opportunity(qbo_state, qbo, firm) -> None:
    fields = won(firm["us"])
    not_held = {"service_line": "Advisory", "billing_model": "fixed_fee", "delivery_region": "EMEA",
                "project": firm["project"]}
    result = await write1(qbo, "opportunity", op("opp-1", {**fields, **not_held}))

    assert result.ok and result.created and result.version == 0, result.error
    assert result.fields == fields
    wire = qbo_state.get("Estimate", result.target_id)
    assert wire["PrivateNote"] == "accord:opp-1" and "ProjectRef" not in wire
    assert (wire["TxnStatus"], wire["AcceptedDate"], wire["ExpirationDate"]) == ("Accepted", "2026-06-30",
                                                                                  "2026-06-30")
    assert wire["CustomerMemo"] == {"value": "Northwind ERP rollout"}
    assert wire["TotalAmt"] == 1575.5 and wire["CurrencyRef"]["value"] == "USD"
    [line, subtotal] = wire["Line"]
    assert (line["Amount"], line["Description"], line[SALES]["ItemRef"]["name"]) == (
        1575.5, "Northwind ERP rollout", "Services")
    assert subtotal["DetailType"] == "SubTotalLineDetail" and subtotal["Amount"] == 1575.5
    assert wire["DocNumber"] == "1001"

    record = (await records(qbo))[result.target_id]
    assert record.fields == fields  # canonical equal: decimals unpadded, dates ISO, refs native ids
    assert (record.gid, record.version, record.error) == ("opp-1", 0, None)
    assert not set(not_held) & set(record.fields)


def batch_items(seen: list[httpx.Request]) -> list[dict[str, Any]]:
    return [item for r in seen if r.url.path.endswith("/batch") for item in json.loads(r.content)["BatchItemRequest"]]


async def test_only_the_given_fields_are_written_and_a_name_keeps_the_line(qbo_state, make_qbo, firm) -> None:
    seen: list[httpx.Request] = []
    qbo = make_qbo(hook=seen.append)
    created = await write1(qbo, "opportunity", op("opp-2", won(firm["us"])))
    renamed = await write1(qbo, "opportunity", op("opp-2", {"name": "ERP rollout, phase 1"}, target=created.target_id,
                                   version=created.version))
    assert renamed.ok and renamed.version == 1 and renamed.fields == {"name": "ERP rollout, phase 1"}
    sent = batch_items(seen)[1]
    assert sent["operation"] == "update" and set(sent["Estimate"]) == {
        "CustomerMemo", "Line", "Id", "SyncToken", "sparse"}
    wire = qbo_state.get("Estimate", created.target_id)
    assert wire["CustomerMemo"] == {"value": "ERP rollout, phase 1"}
    assert wire["Line"][0]["Description"] == "ERP rollout, phase 1" and wire["TotalAmt"] == 1575.5
    assert (wire["TxnStatus"], wire["AcceptedDate"], wire["PrivateNote"]) == ("Accepted", "2026-06-30",
                                                                              "accord:opp-2")

    repriced = await write1(qbo, "opportunity", op("opp-2", {"amount": "2000"}, target=created.target_id,
                                    version=renamed.version))
    assert repriced.ok and repriced.fields == {"amount": "2000"}
    wire = qbo_state.get("Estimate", created.target_id)
    assert wire["TotalAmt"] == 2000.0 and wire["Line"][0]["Description"] == "ERP rollout, phase 1"


# ------------------------------------------------------------------------------------------------
# stage / is_won ↔ TxnStatus
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("stage", "is_won", "status"), [
    ("Closed Won", True, "Accepted"),
    ("Negotiation", True, "Accepted"),  # is_won decides
    ("closed won", None, "Accepted"),
    ("Closed Lost", False, "Rejected"),
    ("Proposal", False, "Pending"),
    (None, None, "Pending"),
])
async def test_stage_writes_txn_status(qbo_state, qbo, firm, stage, is_won, status) -> None:
    fields = {**won(firm["us"]), "stage": stage, "is_won": is_won}
    result = await write1(qbo, "opportunity", op("opp-s", fields))
    assert result.ok, result.error
    wire = qbo_state.get("Estimate", result.target_id)
    assert wire["TxnStatus"] == status
    assert wire.get("AcceptedDate") == ("2026-06-30" if status == "Accepted" else None)
    read_back = {"Accepted": {"stage": "Closed Won", "is_won": True}, "Rejected": {"stage": "Closed Lost",
                                                                                "is_won": False}}
    assert {k: result.fields[k] for k in ("stage", "is_won") if k in result.fields} == read_back.get(
        status, {"is_won": False})  # Pending reads no stage


@pytest.mark.parametrize(("status", "stage", "is_won"), [
    ("Accepted", "Closed Won", True), ("Closed", "Closed Won", True), ("Rejected", "Closed Lost", False),
    ("Pending", None, False)])
async def test_txn_status_reads_stage_and_is_won(qbo_state, qbo, firm, status, stage, is_won) -> None:
    made = estimate(qbo_state, firm["us"], 900, TxnStatus=status)
    record = (await records(qbo))[made]
    assert record.fields["is_won"] is is_won
    if stage is None:
        assert "stage" not in record.fields  # an open estimate holds no stage: the CRM's stands
    else:
        assert record.fields["stage"] == stage
    assert record.fields["amount"] == "900" and record.fields["name"] is None


async def test_status_changes_move_the_acceptance(qbo_state, qbo, firm) -> None:
    created = await write1(qbo, "opportunity", op("opp-3", {**won(firm["us"]), "stage": "Proposal", "is_won": False,
                                             "close_date": None}))
    target = created.target_id
    assert qbo_state.get("Estimate", target)["TxnStatus"] == "Pending"
    today = dt.date.today().isoformat()

    accepted = await write1(qbo, "opportunity", op("opp-3", {"stage": "Closed Won", "is_won": True}, target=target))
    assert accepted.ok and accepted.fields == {"stage": "Closed Won", "is_won": True}
    assert qbo_state.get("Estimate", target)["AcceptedDate"] in (today, dt.date.today().isoformat())  # no date: today

    moved = await write1(qbo, "opportunity", op("opp-3", {"close_date": "2026-07-15"}, target=target))
    assert moved.ok and qbo_state.get("Estimate", target)["AcceptedDate"] == "2026-07-15"  # follows close_date

    qbo_state.user_update("Estimate", target, {"AcceptedBy": "Kim Allen"})
    reopened = await write1(qbo, "opportunity", op("opp-3", {"stage": "Negotiation", "is_won": False}, target=target))
    assert reopened.ok and reopened.fields == {"is_won": False}  # Pending: no stage read back
    wire = qbo_state.get("Estimate", target)
    assert (wire["TxnStatus"], wire.get("AcceptedDate"), wire.get("AcceptedBy")) == ("Pending", None, None)

    lost = await write1(qbo, "opportunity", op("opp-3", {"stage": "Closed Lost", "is_won": False}, target=target))
    assert lost.ok and qbo_state.get("Estimate", target)["TxnStatus"] == "Rejected"
    unchanged = await write1(qbo, "opportunity", op("opp-3", {"is_won": False}, target=target))  # alone: a lost deal stays lost
    assert unchanged.ok and qbo_state.get("Estimate", target)["TxnStatus"] == "Rejected"

    qbo_state.user_update("Estimate", target, {"TxnStatus": "Closed"})  # finance invoiced it
    echoed = await write1(qbo, "opportunity", op("opp-3", {"stage": "Closed Won", "is_won": True}, target=target))
    assert echoed.ok and qbo_state.get("Estimate", target)["TxnStatus"] == "Closed"  # never reopened


def test_pending_stage_is_not_held_and_unknown_status_is_reported() -> None:
    wire = {"Id": "7", "SyncToken": "3", "CustomerRef": {"value": "58"}, "TotalAmt": 3000.0,
            "CurrencyRef": {"value": "EUR"}, "ExpirationDate": "2026-09-01", "TxnStatus": "Pending",
            "CustomerMemo": {"value": "Data platform"}, "PrivateNote": "Quote v2\naccord:opp-7"}
    record = to_canonical("opportunity", wire)
    assert record.fields == {"account": "58", "name": "Data platform", "is_won": False, "amount": "3000",
                             "currency": "EUR", "close_date": "2026-09-01"}
    assert record.gid == "opp-7"
    problems: list[MappingError] = []
    odd = to_canonical("opportunity", {**wire, "TxnStatus": "Converted"}, on_error=problems.append)
    assert [p.field for p in problems] == ["stage", "stage"]  # stage and is_won both read TxnStatus
    assert "stage" not in odd.fields and "is_won" not in odd.fields and "Converted" in (odd.error or "")


# ------------------------------------------------------------------------------------------------
# lines and currency
# ------------------------------------------------------------------------------------------------

def test_line_writes_start_from_the_current_line() -> None:
    current = {"Id": "9", "SyncToken": "1", "CustomerRef": {"value": "5"}, "TxnStatus": "Pending", "Line": [
        {"Id": "1", "DetailType": SALES, "Amount": 3000.0, "Description": "Advisory",
         SALES: {"ItemRef": {"value": "3"}, "Qty": 20, "UnitPrice": 150}},
        {"DetailType": "SubTotalLineDetail", "Amount": 3000.0, "SubTotalLineDetail": {}}]}
    assert to_wire("opportunity", {"amount": "3300"}, current) == {"Line": [
        {"Id": "1", "DetailType": SALES, "Amount": 3300, "Description": "Advisory",
         SALES: {"ItemRef": {"value": "3"}}}]}  # Qty × UnitPrice no longer holds: both dropped
    assert to_wire("opportunity", {"amount": "3000.00"}, current)["Line"][0][SALES]["Qty"] == 20
    assert to_wire("opportunity", {"name": None}, current) == {"CustomerMemo": None, "Line": [
        {"Id": "1", "DetailType": SALES, "Amount": 3000.0, SALES: {"ItemRef": {"value": "3"}, "Qty": 20,
                                                                   "UnitPrice": 150}}]}

    split = {**current, "Line": [*current["Line"][:1], {**current["Line"][0], "Id": "2"}]}
    assert to_wire("opportunity", {"name": "Advisory"}, split) == {"CustomerMemo": {"value": "Advisory"}}
    with pytest.raises(MappingError) as caught:
        to_wire("opportunity", {"amount": "100"}, split)
    assert caught.value.field == "amount" and "2 lines" in caught.value.message
    assert to_canonical("opportunity", {**split, "TotalAmt": 6000.0}).fields["amount"] == "6000"


async def test_refused_writes_name_the_field_and_the_fix(qbo_state, qbo, firm) -> None:
    results = await qbo.write("opportunity", [
        op("ok", won(firm["us"])),
        op("gbp", won(firm["uk"], currency="USD")),
        op("no-account", {"name": "Nobody", "amount": "10"}),
        op("no-amount", {"account": firm["us"], "name": "Early lead", "stage": "Prospecting"}),
        op("global", won("gid-acc-9")),
        op("negative", won(firm["us"], amount="-5"))])
    assert [r.ok for r in results] == [True, False, False, False, False, False]
    errors = {r.gid: r.error for r in results[1:]}
    assert all(isinstance(e, MappingError) for e in errors.values())
    assert errors["gbp"].field == "currency" and "bills in GBP" in errors["gbp"].message
    assert "quote the opportunity in GBP" in errors["gbp"].message
    assert errors["no-account"].field == "account" and "made out to a customer" in errors["no-account"].message
    assert errors["no-amount"].field == "amount" and "set the opportunity's amount" in errors["no-amount"].message
    assert errors["global"].field == "account" and "numeric Id" in errors["global"].message
    assert errors["negative"].field == "amount"
    assert [e["Id"] for e in qbo_state.records("Estimate")] == [results[0].target_id]

    same = await write1(qbo, "opportunity", op("gbp-2", won(firm["uk"], currency="GBP")))
    assert same.ok and same.fields["currency"] == "GBP" and qbo_state.get("Estimate", same.target_id)[
        "CurrencyRef"] == {"value": "GBP", "name": "British Pound Sterling"}


async def test_an_estimate_for_a_missing_customer_fails_alone(qbo_state, qbo, firm) -> None:
    results = await qbo.write("opportunity", [
        op("a", won(firm["us"])), op("b", won("4040", currency=None)), op("c", won("4041"))])
    assert [r.ok for r in results] == [True, False, False]
    refused = results[1].error  # no currency to check: QuickBooks refuses the reference
    assert isinstance(refused, Permanent) and refused.code == "2500"
    assert "CustomerRef" in refused.message and "'4040'" in refused.message
    looked_up = results[2].error  # the currency check reads the customer first
    assert isinstance(looked_up, MappingError) and looked_up.field == "account"
    assert "Customer 4041 does not exist" in looked_up.message
    assert len(qbo_state.records("Estimate")) == 1


# ------------------------------------------------------------------------------------------------
# retries: crash, stale SyncToken
# ------------------------------------------------------------------------------------------------

async def test_retried_create_after_a_crash_does_not_duplicate(qbo_state, qbo, firm) -> None:
    ops = [op("opp-9", won(firm["us"]), key="change-41")]
    qbo_state.clock.advance(10)
    since_ms = int(qbo_state.clock.now() * 1000)
    qbo_state.faults.add("batch", "drop")  # the estimate is created, then the answer is lost
    with pytest.raises(Retryable):
        await qbo.write("opportunity", ops)
    [made] = qbo_state.records("Estimate")

    # the daemon crashed before it could retry: on restart it looks for what the lost create made
    found = await qbo.find_created("opportunity", ["opp-9", "opp-other"], since_ms)
    assert set(found) == {"opp-9"} and found["opp-9"].id == made["Id"]
    assert found["opp-9"].fields == won(firm["us"])

    [replayed] = await qbo.write("opportunity", ops)  # or the same batch again: the same requestid
    assert replayed.ok and replayed.created and replayed.target_id == made["Id"]
    assert [e["Id"] for e in qbo_state.records("Estimate")] == [made["Id"]]
    first, second = qbo_state.requests.entries("batch")
    assert (first.status, second.status) == (503, 200)
    assert parse_qs(first.query)["requestid"] == parse_qs(second.query)["requestid"]


async def test_stale_synctoken_is_reread_and_retried(qbo_state, qbo, firm) -> None:
    created = await write1(qbo, "opportunity", op("opp-5", won(firm["us"])))
    qbo_state.user_update("Estimate", created.target_id, {"ExpirationDate": "2026-08-31"})  # between read and write

    result = await write1(qbo, "opportunity", op("opp-5", {"amount": "1800"}, target=created.target_id, version=created.version))
    assert result.ok and result.version == 2, result.error
    wire = qbo_state.get("Estimate", created.target_id)
    assert wire["TotalAmt"] == 1800.0 and wire["ExpirationDate"] == "2026-08-31"  # both edits kept
    batches = qbo_state.requests.entries("batch")
    assert [e.status for e in batches] == [200, 200, 200]  # create, the stale attempt (5010 inside), the retry
    assert parse_qs(batches[1].query)["requestid"] != parse_qs(batches[2].query)["requestid"]


async def test_stale_twice_gives_stale_version(qbo_state, make_qbo, firm) -> None:
    made = estimate(qbo_state, firm["us"], 500)

    def user_edits_before_each_batch(request: httpx.Request) -> None:
        if request.url.path.endswith("/batch"):
            qbo_state.user_update("Estimate", made, {"PrivateNote": f"edit {request.url.params['requestid']}"})

    connector = make_qbo(hook=user_edits_before_each_batch)
    result = await write1(connector, "opportunity", op("opp-6", {"amount": "600"}, target=made, version=0))
    assert not result.ok and isinstance(result.error, StaleVersion) and result.error.code == "5010"
    assert qbo_state.requests.count("batch") == 2


# ------------------------------------------------------------------------------------------------
# reads: query paging and CDC; deletes
# ------------------------------------------------------------------------------------------------

async def test_query_pages_then_cdc_brings_changes_and_deletes(qbo_state, make_qbo, firm) -> None:
    statements: list[str] = []
    connector = make_qbo(page_size=2, hook=lambda r: statements.append(r.content.decode())
                     if r.url.path.endswith("/query") else None)
    ids = [estimate(qbo_state, firm["us"], 100 * n) for n in range(1, 6)]
    pages, cursor = await load(connector)
    assert [[r.id for r in p.records] for p in pages] == [ids[:2], ids[2:4], ids[4:]]
    assert statements == [f"SELECT * FROM Estimate ORDERBY Id STARTPOSITION {start} MAXRESULTS 2"
                          for start in (1, 3, 5)]
    assert isinstance(decode(cursor), CdcCursor)

    qbo_state.clock.advance(60)
    qbo_state.user_update("Estimate", ids[0], {"TxnStatus": "Accepted"})
    qbo_state.user_delete("Estimate", ids[1])
    fresh = estimate(qbo_state, firm["uk"], 250)
    changes = await connector.fetch("opportunity", cursor)
    by_id = {r.id: r for r in changes.records}
    assert set(by_id) == {ids[0], ids[1], fresh} and changes.more is False
    assert (by_id[ids[0]].fields["stage"], by_id[ids[0]].version) == ("Closed Won", 1)
    assert by_id[ids[1]].deleted and by_id[ids[1]].version == DELETED_VERSION
    assert by_id[fresh].fields["currency"] == "GBP" and by_id[fresh].fields["amount"] == "250"
    assert parse_qs(qbo_state.requests.entries("cdc")[-1].query)["entities"] == ["Estimate"]


async def test_delete_removes_the_estimate(qbo_state, make_qbo, firm) -> None:
    seen: list[httpx.Request] = []
    qbo = make_qbo(hook=seen.append)
    created = await write1(qbo, "opportunity", op("opp-8", won(firm["us"])))
    _, cursor = await load(qbo)
    qbo_state.clock.advance(5)
    gone = await write1(qbo, "opportunity", op("opp-8", {}, target=created.target_id, kind="delete", version=created.version))
    assert gone.ok and gone.version == DELETED_VERSION and qbo_state.get("Estimate", created.target_id) is None
    assert batch_items(seen)[-1] == {"bId": "0", "operation": "delete",
                                     "Estimate": {"Id": created.target_id, "SyncToken": "0"}}
    [record] = [r for p in (await load(qbo, cursor))[0] for r in p.records]
    assert record.id == created.target_id and record.deleted

    again = await write1(qbo, "opportunity", op("opp-8", {"amount": "10"}, target=created.target_id, version=created.version))
    assert isinstance(again.error, Gone)


# ------------------------------------------------------------------------------------------------
# the sandbox's Estimate
# ------------------------------------------------------------------------------------------------

def test_sandbox_estimate_rules(qbo_state, firm) -> None:
    def refused(body: dict[str, Any]) -> QboFault:
        with pytest.raises(QboFault) as caught:
            qbo_state.user_create("Estimate", body)
        return caught.value

    line = {"DetailType": SALES, "Amount": 300, SALES: {"Qty": 2, "UnitPrice": 150}}
    assert refused({"Line": [line]}).code == "2020"  # CustomerRef
    assert refused({"CustomerRef": {"value": "404"}, "Line": [line]}).code == "2500"
    assert refused({"CustomerRef": {"value": firm["us"]}}).element == "Line"
    assert refused({"CustomerRef": {"value": firm["us"]}, "Line": [{"DetailType": SALES, SALES: {}}]}).element == (
        "Line.Amount")
    assert refused({"CustomerRef": {"value": firm["us"]}, "Line": [{**line, "Amount": 301}]}).code == "6070"
    assert refused({"CustomerRef": {"value": firm["us"]}, "Line": [line], "TxnStatus": "Won"}).element == "TxnStatus"
    assert refused({"CustomerRef": {"value": firm["us"]}, "Line": [line], "ExpirationDate": "30/06/2026"}).code == (
        "2010")
    assert refused({"CustomerRef": {"value": firm["uk"]}, "ProjectRef": {"value": firm["project"]},
                    "Line": [line]}).code == "2500"  # a project of another customer

    made = qbo_state.user_create("Estimate", {"CustomerRef": {"value": firm["uk"]}, "TotalAmt": 1, "Line": [
        line, {"DetailType": SALES, "Amount": 50.5}]})
    wire = qbo_state.get("Estimate", made)
    assert (wire["TxnStatus"], wire["TotalAmt"], wire["CurrencyRef"]["value"]) == ("Pending", 350.5, "GBP")
    assert wire["TxnDate"] == "2026-05-28" and wire["DocNumber"] == "1001" and wire["SyncToken"] == "0"
    qbo_state.user_update("Estimate", made, {"TxnStatus": "Accepted", "AcceptedBy": "Kim", "AcceptedDate": "2026-06-01"})
    wire = qbo_state.get("Estimate", made)
    assert (wire["TxnStatus"], wire["DocNumber"], wire["SyncToken"], wire["TotalAmt"]) == ("Accepted", "1001", "1",
                                                                                          350.5)


async def test_sandbox_estimate_over_http(qbo_state, firm) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(qbo_state)),
                                 base_url=f"http://qbo.test/v3/company/{qbo_state.realm_id}") as client:
        client.headers["Authorization"] = f"Bearer {qbo_state.issue_token()['access_token']}"
        body = {"CustomerRef": {"value": firm["us"]}, "TxnStatus": "Accepted",
                "Line": [{"DetailType": SALES, "Amount": 1200}]}
        params = {"minorversion": "75", "requestid": "est-req-1"}
        first = await client.post("/estimate", params=params, json=body)
        again = await client.post("/estimate", params=params, json=body)  # replayed, not run twice
        assert first.status_code == again.status_code == 200 and first.json() == again.json()
        made = first.json()["Estimate"]
        assert len(qbo_state.records("Estimate")) == 1

        full = await client.post("/estimate", params={"minorversion": "75"}, json={
            "Id": made["Id"], "SyncToken": "0", "CustomerRef": {"value": firm["us"]},
            "Line": [{"DetailType": SALES, "Amount": 1300}]})  # a full update: omitted TxnStatus → Pending
        assert full.status_code == 200 and full.json()["Estimate"]["TxnStatus"] == "Pending"
        stale = await client.post("/estimate", params={"minorversion": "75"}, json={
            "Id": made["Id"], "SyncToken": "0", "sparse": True, "TxnStatus": "Rejected"})
        assert stale.status_code == 400 and stale.json()["Fault"]["Error"][0]["code"] == "5010"

        query = await client.get("/query", params={"minorversion": "75",
                                                   "query": "SELECT * FROM Estimate WHERE TxnStatus = 'Pending'"})
        assert [e["Id"] for e in query.json()["QueryResponse"]["Estimate"]] == [made["Id"]]
        deleted = await client.post("/estimate", params={"minorversion": "75", "operation": "delete"},
                                    json={"Id": made["Id"], "SyncToken": "1"})
        assert deleted.json()["Estimate"]["status"] == "Deleted" and qbo_state.records("Estimate") == []
        read = await client.get(f"/estimate/{made['Id']}", params={"minorversion": "75"})
        assert read.status_code == 400 and read.json()["Fault"]["Error"][0]["code"] == "610"
