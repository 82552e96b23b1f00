"""Invoices and payments through SalesforceConnector against the sandbox (Invoice__c, Payment__c), their
field tables, and the Account roll-ups that must not leak into the canonical account."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from accord.config.types import Duration
from accord.connectors.errors import Permanent, RateLimited, Retryable
from accord.connectors.salesforce.client import SalesforceConnector
from accord.connectors.salesforce.mapping import MappingError, select_fields, to_canonical, to_wire
from accord.model.entities import entity_fields, normalise_fields
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.salesforce.seed import seed_accounts
from accord.sandboxes.salesforce.store import id18
from tests.connectors.sf_rig import Recorder, drain, op, settings

STAMP = "2026-04-02T10:15:30.000+0000"
INVOICE_HELD = {"account", "project", "number", "issue_date", "due_date", "total", "balance", "tax", "status",
                "currency"}
PAYMENT_HELD = {"invoice", "amount", "paid_date", "reference"}


def invoice_fields(account: str | None, **extra: Any) -> dict[str, Any]:
    """A canonical invoice as the ERP sends it (lines, subtotal and period included)."""
    return {"account": account, "project": "prj-7f3a", "number": "INV-1042", "issue_date": "2026-03-01",
            "due_date": "2026-03-31", "currency": "EUR", "subtotal": "1500", "tax": "75.5", "total": "1575.5",
            "balance": "1575.5", "status": "open", "period_start": "2026-02-01", "period_end": "2026-02-28",
            "lines": [{"description": "Consulting", "quantity": "10", "unit_price": "150", "amount": "1500",
                       "time_entry": "te-1"}], **extra}


def canonical(entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    return normalise_fields(entity, fields)


async def made_invoice(sf: SalesforceConnector, sf_state: SalesforceState, gid: str = "g-inv", **extra: Any) -> str:
    [account] = seed_accounts(sf_state, 1, random.Random(len(gid)))
    [made] = await sf.write("invoice", [op(gid, invoice_fields(account, **extra))])
    assert made.ok and made.target_id, made.error
    return made.target_id


# -- field tables -------------------------------------------------------------------------------------

def test_invoice_and_payment_tables() -> None:
    wire = to_wire("invoice", invoice_fields("0015g00000AbCdEAA1"))
    assert wire == {"Account__c": "0015g00000AbCdEAA1", "Project_Ref__c": "prj-7f3a", "Name": "INV-1042",
                    "Issue_Date__c": "2026-03-01", "Due_Date__c": "2026-03-31", "Total__c": 1575.5,
                    "Balance__c": 1575.5, "Tax__c": 75.5, "Status__c": "Open", "CurrencyIsoCode": "EUR"}
    row = {"Id": "a0B5g00000000AAA", **wire, "Status__c": "Void", "Amount_Paid__c": 100.0, "Accord_Id__c": "g-1",
           "IsDeleted": False, "SystemModstamp": STAMP}
    fields, gid, _, _ = to_canonical("invoice", row)
    assert fields.keys() == INVOICE_HELD and gid == "g-1" and fields["status"] == "void"
    assert canonical("invoice", fields)["total"] == "1575.5"
    assert to_wire("payment", {"invoice": "a0B5g00000000AAA", "amount": "250", "paid_date": "2026-03-09",
                               "reference": "WIRE-1", "account": "0015g00000AbCdEAA1", "currency": "EUR",
                               "method": "wire"}) == {
        "Invoice__c": "a0B5g00000000AAA", "Amount__c": 250.0, "Paid_Date__c": "2026-03-09", "Reference__c": "WIRE-1"}
    assert select_fields("payment") == ["Id", "Invoice__c", "Amount__c", "Paid_Date__c", "Reference__c",
                                        "Accord_Id__c"]
    assert set(entity_fields("invoice")) - INVOICE_HELD == {"lines", "subtotal", "period_start", "period_end"}
    with pytest.raises(MappingError, match=r"invoice\.status: cannot map 'overdue'; expected one of"):
        to_wire("invoice", {"status": "overdue"})


def test_account_mapping_never_selects_rollups() -> None:
    selected = select_fields("account")
    assert not {"Invoiced_Total__c", "Open_Balance__c", "Last_Payment_Date__c"} & set(selected)
    row = {"Id": "001x", "Name": "Acme", "Invoiced_Total__c": 10.0, "Open_Balance__c": 5.0,
           "Last_Payment_Date__c": "2026-03-01", "SystemModstamp": STAMP}
    assert to_canonical("account", row)[0] == to_canonical("account", {**row, "Invoiced_Total__c": 99.0,
                                                                       "Last_Payment_Date__c": None})[0]


# -- round trips --------------------------------------------------------------------------------------

async def test_invoice_round_trip(sf_state: SalesforceState, sf: SalesforceConnector, sf_recorder: Recorder) -> None:
    [account] = seed_accounts(sf_state, 1, random.Random(1))
    sent = invoice_fields(account)
    [made] = await sf.write("invoice", [op("g-inv", sent)])
    assert made.ok and made.created and made.target_id is not None
    [body] = [json.loads(r.content) for r in sf_recorder.requests if r.method == "PATCH"]
    assert sf_recorder.requests[-1].url.path.endswith("/composite/sobjects/Invoice__c/Accord_Id__c")
    assert not {"lines", "Lines__c", "Subtotal__c"} & set(body["records"][0])
    held = {k: v for k, v in sent.items() if k in INVOICE_HELD}
    assert canonical("invoice", made.fields) == canonical("invoice", held)
    records, _ = await drain(sf, "invoice", None)
    assert [(r.id, r.gid, r.error) for r in records] == [(made.target_id, "g-inv", None)]
    assert canonical("invoice", records[0].fields) == canonical("invoice", held)
    row = sf_state.get("Invoice__c", made.target_id)
    assert row is not None and (row["Name"], row["Account__c"], row["Status__c"]) == ("INV-1042", account, "Open")


async def test_payment_round_trip(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    bill = await made_invoice(sf, sf_state)
    sent = {"invoice": bill, "account": "ignored", "currency": "USD", "amount": "500.25",
            "paid_date": "2026-03-09", "reference": "WIRE-77", "method": "wire", "notes": "first instalment"}
    [made] = await sf.write("payment", [op("g-pay", sent)])
    assert made.ok and made.created and made.target_id and made.target_id.startswith("a0C")
    held = {k: v for k, v in sent.items() if k in PAYMENT_HELD}
    assert canonical("payment", made.fields) == canonical("payment", held)
    records, _ = await drain(sf, "payment", None)
    assert [(r.id, r.gid) for r in records] == [(made.target_id, "g-pay")]
    assert canonical("payment", records[0].fields) == canonical("payment", held)
    paid = sf_state.get("Invoice__c", bill)
    assert paid is not None and (paid["Amount_Paid__c"], paid["Last_Payment_Date__c"]) == (500.25, "2026-03-09")
    [update] = await sf.write("payment", [op("g-pay", {"amount": "400"}, target_id=made.target_id)])
    assert update.ok and sf_state.get("Invoice__c", bill)["Amount_Paid__c"] == 400.0  # type: ignore[index]


# -- idempotency and faults -------------------------------------------------------------------------------

async def test_retried_create_makes_no_duplicate(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    bill = await made_invoice(sf, sf_state)
    again = await sf.write("invoice", [op("g-inv", invoice_fields(str(sf_state.records("Account")[0]["Id"])))])
    assert (again[0].ok, again[0].created, again[0].target_id) == (True, False, bill)
    first = await sf.write("payment", [op("g-pay", {"invoice": bill, "amount": "100", "paid_date": "2026-03-01"})])
    retry = await sf.write("payment", [op("g-pay", {"invoice": bill, "amount": "100", "paid_date": "2026-03-01"})])
    assert (first[0].created, retry[0].created, retry[0].target_id) == (True, False, first[0].target_id)
    assert len(sf_state.records("Invoice__c")) == len(sf_state.records("Payment__c")) == 1
    assert sf_state.get("Invoice__c", bill)["Amount_Paid__c"] == 100.0  # type: ignore[index]
    found = await sf.find_created("payment", ["g-pay", "g-none"], 0)
    assert found.keys() == {"g-pay"} and found["g-pay"].id == first[0].target_id
    assert (await sf.find_created("invoice", ["G-INV"], 0))["G-INV"].id == bill  # external ids ignore case


@pytest.mark.parametrize(("kind", "error"), [("drop", Retryable), ("503", Retryable), ("500", Retryable),
                                             ("429", RateLimited)])
async def test_fault_during_collection_write_ends_with_one_record(sf_state: SalesforceState, sf_recorder: Recorder,
                                                                  kind: Any, error: type[Exception]) -> None:
    # the daily limit's refusal pauses every caller for ``limit_retry_after`` (60 s by default)
    sf = SalesforceConnector(settings(limit_retry_after=Duration(0.2)), transport=sf_recorder)
    bill = await made_invoice(sf, sf_state)
    sf_state.faults.add("composite", kind)  # "drop": Salesforce saved the record, the answer was lost
    ops = [op("g-pay", {"invoice": bill, "amount": "250", "paid_date": "2026-03-02"})]
    with pytest.raises(error):
        await sf.write("payment", ops)
    assert len(sf_state.records("Payment__c")) == (1 if kind == "drop" else 0)
    found = await sf.find_created("payment", ["g-pay"], 0)  # what the writer asks before it retries
    assert found.keys() == ({"g-pay"} if kind == "drop" else set())
    [result] = await sf.write("payment", ops)
    assert result.ok and result.created == (kind != "drop")
    assert [r["Accord_Id__c"] for r in sf_state.records("Payment__c")] == ["g-pay"]
    assert sf_state.get("Invoice__c", bill)["Amount_Paid__c"] == 250.0  # type: ignore[index]  # counted once
    await sf.aclose()


# -- per-record errors --------------------------------------------------------------------------------------

async def test_bad_invoice_reference_names_field_and_value(sf_state: SalesforceState,
                                                           sf: SalesforceConnector) -> None:
    bill = await made_invoice(sf, sf_state)
    account = str(sf_state.records("Account")[0]["Id"])
    unknown = id18("a0B5g0000000zzz")
    base = {"amount": "10", "paid_date": "2026-03-01"}
    results = await sf.write("payment", [
        op("g-ok", {**base, "invoice": bill}),
        op("g-missing", base),
        op("g-none", {**base, "invoice": None}),
        op("g-gid", {**base, "invoice": "inv-7f3a-untranslated"}),
        op("g-unknown", {**base, "invoice": unknown}),
        op("g-account", {**base, "invoice": account}),
    ])
    assert [r.ok for r in results] == [True, False, False, False, False, False]
    errors = [r.error for r in results[1:]]
    assert all(isinstance(e, Permanent) and not isinstance(e, Retryable) for e in errors)
    assert [e.code for e in errors if e] == ["REQUIRED_FIELD_MISSING", "REQUIRED_FIELD_MISSING", "MALFORMED_ID",
                                             "INVALID_CROSS_REFERENCE_KEY", "FIELD_INTEGRITY_EXCEPTION"]
    messages = [str(e) for e in errors]
    assert all("(fields: Invoice__c)" in m and "payment.invoice" in m for m in messages)
    assert "Payment__c Accord_Id__c=g-missing" in messages[0] and "payment.invoice was not sent" in messages[0]
    assert "Payment__c Accord_Id__c=g-none" in messages[1] and "payment.invoice is empty" in messages[1]
    for message, value in zip(messages[2:], ("inv-7f3a-untranslated", unknown, account), strict=True):
        assert f"payment.invoice = '{value}'" in message
    assert [r["Accord_Id__c"] for r in sf_state.records("Payment__c")] == ["g-ok"]


async def test_invoice_errors_are_per_record(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    [account] = seed_accounts(sf_state, 1, random.Random(3))
    results = await sf.write("invoice", [
        op("g-1", invoice_fields(account)),
        op("g-2", invoice_fields(account, number=None)),
        op("g-3", invoice_fields(account, status="overdue")),
        op("g-4", invoice_fields(None)),
    ])
    assert [r.ok for r in results] == [True, False, False, False]
    assert [r.error.code for r in results[1:] if r.error] == ["REQUIRED_FIELD_MISSING", "MAPPING_ERROR",
                                                              "REQUIRED_FIELD_MISSING"]
    assert "invoice.number is empty (fields: Name)" in str(results[1].error)
    assert "invoice.account is empty (fields: Account__c)" in str(results[3].error)
    sf_state.lock_record(account)  # another transaction holds the master: retry later
    [busy] = await sf.write("invoice", [op("g-5", invoice_fields(account, number="INV-5"))])
    assert isinstance(busy.error, Retryable) and busy.error.code == "UNABLE_TO_LOCK_ROW"
    assert len(sf_state.records("Invoice__c")) == 1


# -- polling: roll-ups, deletes --------------------------------------------------------------------------

async def test_rollup_only_changes_leave_projections_unchanged(sf_state: SalesforceState,
                                                               sf: SalesforceConnector) -> None:
    [made] = await sf.write("account", [op("g-acme", {"name": "Acme Ltd", "currency": "EUR"})])
    assert made.target_id is not None
    before, accounts = await drain(sf, "account", None)
    sf_state.clock.advance(60)
    [bill] = await sf.write("invoice", [op("g-inv", invoice_fields(made.target_id))])
    invoices, invoice_cursor = await drain(sf, "invoice", None)
    sf_state.clock.advance(60)
    await sf.write("payment", [op("g-pay", {"invoice": bill.target_id, "amount": "75.5",
                                            "paid_date": "2026-03-09"})])
    row = sf_state.get("Account", made.target_id)
    assert row is not None and (row["Invoiced_Total__c"], row["Last_Payment_Date__c"]) == (1575.5, "2026-03-09")
    after, _ = await drain(sf, "account", accounts)
    assert [r.id for r in after] == [made.target_id] and after[0].version > before[0].version  # polled again
    assert after[0].fields == before[0].fields  # ... with the same projection: nothing to sync
    assert after[0].raw is not None and not {"Invoiced_Total__c", "Open_Balance__c"} & set(after[0].raw)
    again, _ = await drain(sf, "invoice", invoice_cursor)  # Amount_Paid__c moved the invoice too
    assert [r.id for r in again] == [bill.target_id] and again[0].fields == invoices[0].fields


async def test_deleting_an_invoice_tombstones_its_payments(sf_state: SalesforceState,
                                                           sf: SalesforceConnector) -> None:
    bill = await made_invoice(sf, sf_state)
    payments = await sf.write("payment", [op(f"g-p{i}", {"invoice": bill, "amount": "5", "paid_date": "2026-03-01"})
                                          for i in range(3)])
    _, cursor = await drain(sf, "payment", None)
    sf_state.clock.advance(30)
    [deleted] = await sf.write("invoice", [op("g-inv", {}, target_id=bill, kind="delete")])
    assert deleted.ok
    tombs, _ = await drain(sf, "payment", cursor)
    assert sorted((r.id, r.gid, r.deleted, r.fields) for r in tombs) == sorted(
        (p.target_id, p.gid, True, {}) for p in payments)
    late = await sf.write("payment", [op("g-p0", {}, target_id=payments[0].target_id, kind="delete")])
    assert late[0].ok  # already gone with its invoice: done
