"""QuickBooks invoices that bill time and expenses: the invoice line links (time_entry, expense,
service_date, the derived period) through the connector, and the sandbox's billing run of billable
time and billable expenses. Real HTTP to the sandbox, in-process."""

from __future__ import annotations

from typing import Any

import pytest

from accord.connectors.base import Page, SourceRecord
from accord.connectors.errors import Permanent
from accord.connectors.quickbooks.client import QuickBooksConnector
from accord.connectors.quickbooks.mapping import MappingError, to_canonical, to_wire
from accord.sandboxes.quickbooks.sandbox import QuickBooksState
from tests.connectors.qbo_rig import op, write1

EXPENSE = "AccountBasedExpenseLineDetail"


async def load(connector: QuickBooksConnector, entity: str) -> dict[str, SourceRecord]:
    pages: list[Page] = [await connector.fetch(entity, None)]
    while pages[-1].more:
        pages.append(await connector.fetch(entity, pages[-1].cursor))
    return {r.id: r for p in pages for r in p.records}


@pytest.fixture
def firm(qbo_state: QuickBooksState) -> dict[str, str]:
    """An account with two projects, an employee without a bill rate and a priced service item."""
    account = qbo_state.user_create("Customer", {"DisplayName": "Northwind"})
    return {"account": account, "project": qbo_state.user_create_project(account, "Northwind ERP rollout"),
            "other": qbo_state.user_create_project(account, "Northwind CRM"),
            "employee": qbo_state.user_create("Employee", {"GivenName": "Kim", "FamilyName": "Allen"}),
            "item": qbo_state.user_create("Item", {"Name": "Northwind ERP rollout - Design", "Type": "Service",
                                               "UnitPrice": 140, "IncomeAccountRef": {"value": "1"}})}


def spend(qbo_state: QuickBooksState, lines: list[tuple[float, str | None, str]], *, day: str,
          note: str | None = None) -> str:
    """A cash Purchase with one expense line per ``(amount, project or None, BillableStatus)``."""
    body: dict[str, Any] = {"PaymentType": "Cash", "AccountRef": {"value": "2"}, "TxnDate": day, "Line": [
        {"DetailType": EXPENSE, "Amount": amount, EXPENSE: {
            "AccountRef": {"value": "3"}, "BillableStatus": status,
            **({"CustomerRef": {"value": project}} if project else {})}} for amount, project, status in lines]}
    if note is not None:
        body["PrivateNote"] = note
    return qbo_state.user_create("Purchase", body)


def statuses(qbo_state: QuickBooksState, purchase: str) -> list[str]:
    return [line[EXPENSE]["BillableStatus"] for line in qbo_state.get("Purchase", purchase)["Line"]]


# ------------------------------------------------------------------------------------------------
# invoice lines: links, service dates, the derived period
# ------------------------------------------------------------------------------------------------

async def test_invoice_line_links_are_written_and_read(qbo_state, qbo, firm) -> None:
    time = qbo_state.user_log_time(firm["employee"], firm["project"], 2.0, rate=150.0, work_date="2026-05-04")
    older = qbo_state.user_log_time(firm["employee"], firm["project"], 1.0, rate=150.0, work_date="2026-05-02")
    taxi = spend(qbo_state, [(42.5, firm["project"], "Billable")], day="2026-05-06", note="Taxi")
    lines = [{"description": "Build", "quantity": "2", "unit_price": "150", "time_entry": time,
              "service_date": "2026-05-04"},
             {"description": "Taxi", "amount": "42.50", "expense": taxi, "service_date": "2026-05-06"},
             {"description": "Kick-off", "quantity": "1", "unit_price": "150", "source": older,  # deprecated alias
              "service_date": "2026-05-02"},
             {"description": "Fixed fee", "amount": "500"}]
    result = await write1(qbo, "invoice", op("inv-1", {
        "account": firm["account"], "project": firm["project"], "lines": lines,
        "period_start": "2020-01-01", "period_end": "2030-01-01"}))  # derived: ignored on write
    assert result.ok, result.error
    assert set(result.fields) == {"account", "project", "lines"}

    wire = qbo_state.get("Invoice", result.target_id)
    assert [line.get("LinkedTxn") for line in wire["Line"][:4]] == [
        [{"TxnId": time, "TxnType": "TimeActivity"}], [{"TxnId": taxi, "TxnType": "Purchase"}],
        [{"TxnId": older, "TxnType": "TimeActivity"}], None]
    assert [line["SalesItemLineDetail"].get("ServiceDate") for line in wire["Line"][:4]] == [
        "2026-05-04", "2026-05-06", "2026-05-02", None]
    # the invoice bills what it links: both activities and the expense line
    assert {qbo_state.get("TimeActivity", i)["BillableStatus"] for i in (time, older)} == {"HasBeenBilled"}
    assert statuses(qbo_state, taxi) == ["HasBeenBilled"]

    invoice = (await load(qbo, "invoice"))[result.target_id]
    assert [{k: line.get(k) for k in ("time_entry", "expense", "service_date")} for line in invoice.fields["lines"]] == [
        {"time_entry": time, "expense": None, "service_date": "2026-05-04"},
        {"time_entry": None, "expense": taxi, "service_date": "2026-05-06"},
        {"time_entry": older, "expense": None, "service_date": "2026-05-02"},
        {"time_entry": None, "expense": None, "service_date": None}]
    assert not any("source" in line for line in invoice.fields["lines"])
    assert (invoice.fields["period_start"], invoice.fields["period_end"]) == ("2026-05-02", "2026-05-06")
    assert (await load(qbo, "expense"))[taxi].fields["locked"] is True


def test_line_mapping_without_dates_and_conflicting_alias() -> None:
    bare = {"Id": "5", "SyncToken": "0", "CustomerRef": {"value": "1"}, "TotalAmt": 10,
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 10, "SalesItemLineDetail": {}}]}
    fields = to_canonical("invoice", bare).fields
    assert (fields["period_start"], fields["period_end"], fields["lines"]) == (None, None, [{"amount": "10.00"}])
    assert to_wire("invoice", {"period_start": "2026-05-01", "period_end": "2026-05-31"}) == {}
    same = to_wire("invoice", {"lines": [{"amount": "10", "time_entry": "7", "source": "7"}]})
    assert same["Line"][0]["LinkedTxn"] == [{"TxnId": "7", "TxnType": "TimeActivity"}]
    with pytest.raises(MappingError) as caught:
        to_wire("invoice", {"lines": [{"amount": "10", "time_entry": "7", "source": "8"}]})
    assert caught.value.field == "lines[0].source" and "time_entry" in caught.value.message


# ------------------------------------------------------------------------------------------------
# the billing run bills time and billable expenses
# ------------------------------------------------------------------------------------------------

async def test_billing_run_bills_time_and_billable_expenses_once(qbo_state, qbo, firm) -> None:
    late = qbo_state.user_log_time(firm["employee"], firm["project"], 2.0, item_id=firm["item"], work_date="2026-05-07")
    early = qbo_state.user_log_time(firm["employee"], firm["project"], 1.5, rate=160.0, work_date="2026-05-04")
    unbillable_time = qbo_state.user_log_time(firm["employee"], firm["project"], 3.0, billable=False)
    hotel = spend(qbo_state, [(310.0, firm["project"], "Billable"), (25.0, firm["project"], "NotBillable")],
                  day="2026-05-05", note="Hotel Berlin\naccord:gid-exp-1")
    meals = spend(qbo_state, [(48.2, firm["project"], "Billable")], day="2026-05-03")
    elsewhere = spend(qbo_state, [(99.0, firm["other"], "Billable")], day="2026-05-03")
    before = {r.id: r.version for r in (await load(qbo, "expense")).values()}

    invoice_id = qbo_state.billing_run(firm["project"])
    assert invoice_id is not None and qbo_state.billing_run(firm["project"]) is None  # nothing left to bill
    invoice = qbo_state.get("Invoice", invoice_id)
    sales = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [(line["LinkedTxn"], line["SalesItemLineDetail"]["ServiceDate"]) for line in sales] == [
        ([{"TxnId": early, "TxnType": "TimeActivity"}], "2026-05-04"),
        ([{"TxnId": late, "TxnType": "TimeActivity"}], "2026-05-07"),
        ([{"TxnId": meals, "TxnType": "Purchase", "TxnLineId": "1"}], "2026-05-03"),
        ([{"TxnId": hotel, "TxnType": "Purchase", "TxnLineId": "1"}], "2026-05-05")]
    hotel_line = sales[3]
    assert (hotel_line["Amount"], hotel_line["SalesItemLineDetail"]["Qty"],
            hotel_line["SalesItemLineDetail"]["UnitPrice"], hotel_line["Description"]) == (310.0, 1, 310.0, "Hotel Berlin")
    assert sales[2]["Description"] == "Travel"  # no note: the expense account's name
    # the item's UnitPrice is the rate of last resort, and its Name rides on the ItemRef
    assert (sales[1]["SalesItemLineDetail"]["UnitPrice"], sales[1]["Amount"]) == (140.0, 280.0)
    assert sales[1]["SalesItemLineDetail"]["ItemRef"] == {"value": firm["item"], "name": "Northwind ERP rollout - Design"}
    assert invoice["TotalAmt"] == 240.0 + 280.0 + 48.2 + 310.0

    assert {i: qbo_state.get("TimeActivity", i)["BillableStatus"] for i in (early, late, unbillable_time)} == {
        early: "HasBeenBilled", late: "HasBeenBilled", unbillable_time: "NotBillable"}
    assert statuses(qbo_state, hotel) == ["HasBeenBilled", "NotBillable"]  # only the billable line
    assert statuses(qbo_state, meals) == ["HasBeenBilled"] and statuses(qbo_state, elsewhere) == ["Billable"]

    expenses = await load(qbo, "expense")
    assert {i: (expenses[i].fields["locked"], expenses[i].version - before[i]) for i in (hotel, meals, elsewhere)} == {
        hotel: (True, 1), meals: (True, 1), elsewhere: (False, 0)}
    billed = (await load(qbo, "invoice"))[invoice_id]
    assert [(line.get("time_entry"), line.get("expense")) for line in billed.fields["lines"]] == [
        (early, None), (late, None), (None, meals), (None, hotel)]
    assert (billed.fields["period_start"], billed.fields["period_end"]) == ("2026-05-03", "2026-05-07")

    qbo_state.clock.advance(5)
    qbo_state.user_void_invoice(invoice_id)  # voiding gives the time and the expenses back
    assert statuses(qbo_state, hotel) == ["Billable", "NotBillable"] and statuses(qbo_state, meals) == ["Billable"]
    assert qbo_state.get("TimeActivity", early)["BillableStatus"] == "Billable"
    rebilled = qbo_state.billing_run(firm["project"])
    assert rebilled is not None and len(qbo_state.get("Invoice", rebilled)["Line"]) == 5  # four lines + subtotal


async def test_an_expense_cannot_be_billed_twice(qbo_state, qbo, firm) -> None:
    taxi = spend(qbo_state, [(42.5, firm["project"], "Billable")], day="2026-05-06")
    assert qbo_state.billing_run(firm["project"]) is not None
    again = await write1(qbo, "invoice", op("inv-2", {"account": firm["account"], "lines": [
        {"description": "Taxi", "amount": "42.50", "expense": taxi}]}))
    assert isinstance(again.error, Permanent) and again.error.code == "6000"
    assert f"Purchase {taxi} has already been billed" in again.error.message
    missing = await write1(qbo, "invoice", op("inv-3", {"account": firm["account"], "lines": [
        {"amount": "1", "expense": "404"}]}))
    assert isinstance(missing.error, Permanent) and missing.error.code == "2500"
