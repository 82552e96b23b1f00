"""The QuickBooks connector's PSA and finance entities (project, resource, task, time_entry, expense,
invoice, payment) against the sandbox, in-process; plus the sandbox's business rules for them."""

from __future__ import annotations

import random

import httpx
import pytest

from accord.connectors.base import Page, SourceRecord
from accord.connectors.errors import Permanent
from accord.connectors.quickbooks.client import QuickBooksConnector
from accord.connectors.quickbooks.mapping import DELETED_VERSION, MappingError, to_canonical, to_wire
from accord.sandboxes.quickbooks.sandbox import QuickBooksState, build_app
from accord.sandboxes.quickbooks.seed import seed_customers, seed_practice
from tests.connectors.qbo_rig import op, write1


async def load(connector: QuickBooksConnector, entity: str, cursor: str | None = None) -> tuple[list[SourceRecord], str]:
    pages: list[Page] = [await connector.fetch(entity, cursor)]
    while pages[-1].more:
        pages.append(await connector.fetch(entity, pages[-1].cursor))
    return [r for p in pages for r in p.records], pages[-1].cursor


@pytest.fixture
def firm(qbo_state: QuickBooksState) -> dict[str, str]:
    """An account with a project, an employee and a service item, made by users in QuickBooks."""
    account = qbo_state.user_create("Customer", {"DisplayName": "Northwind", "CompanyName": "Northwind Inc."})
    project = qbo_state.user_create_project(account, "Northwind ERP rollout")
    employee = qbo_state.user_create("Employee", {"GivenName": "Kim", "FamilyName": "Allen", "BillRate": 150})
    item = qbo_state.user_create("Item", {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    return {"account": account, "project": project, "employee": employee, "item": item}


# ------------------------------------------------------------------------------------------------
# each mapping both ways: written by Accord, read back the same
# ------------------------------------------------------------------------------------------------

async def test_every_new_entity_round_trips(qbo_state, qbo, firm) -> None:
    written = {
        "project": {"account": firm["account"], "name": "Northwind Data Platform", "status": "active"},
        "resource": {"name": "Ana Maria Lopez", "email": "ana@firm.example", "bill_rate": "175.00",
                     "cost_rate": "80.50", "active": True},
        "task": {"name": "Solution design", "code": "SD-01", "project": firm["project"]},
        "time_entry": {"project": firm["project"], "task": firm["item"], "resource": firm["employee"],
                       "work_date": "2026-05-04", "hours": "7.5", "billable": True, "bill_rate": "150.00",
                       "notes": "Workshop\nwith the CFO"},
        "expense": {"project": firm["project"], "resource": firm["employee"], "spent_date": "2026-05-05",
                    "amount": "412.30", "category": "Travel", "billable": True},
        "invoice": {"account": firm["account"], "project": firm["project"], "number": "INV-77",
                    "issue_date": "2026-05-31", "due_date": "2026-06-30", "lines": [
                        {"description": "Design, May", "quantity": "10", "unit_price": "150.00", "amount": "1500.00",
                         "service_date": "2026-05-29"},
                        {"description": "Travel", "amount": "412.30"}]},
    }
    ids: dict[str, str | None] = {}
    for entity, fields in written.items():
        result = await write1(qbo, entity, op(f"gid-{entity}", fields))
        ids[entity] = result.target_id
        assert result.ok and result.created, (entity, result.error)
        assert result.fields == fields, entity  # the projection QBO holds is what was written
        records, _ = await load(qbo, entity)
        [mine] = [r for r in records if r.id == result.target_id]
        assert mine.gid == f"gid-{entity}" and mine.error is None
        assert {k: mine.fields[k] for k in fields} == fields, entity

    employee = qbo_state.get("Employee", ids["resource"])
    assert (employee["GivenName"], employee["FamilyName"], employee["EmployeeNumber"]) == (
        "Ana Maria", "Lopez", "accord:gid-resource")
    activity = qbo_state.records("TimeActivity")[0]
    assert (activity["NameOf"], activity["Hours"], activity["Minutes"]) == ("Employee", 7, 30)
    assert activity["Description"] == "Workshop\nwith the CFO\naccord:gid-time_entry"
    invoice = qbo_state.records("Invoice")[0]
    assert invoice["TotalAmt"] == 1912.3 and invoice["Balance"] == 1912.3
    assert [line["DetailType"] for line in invoice["Line"]] == ["SalesItemLineDetail"] * 2 + ["SubTotalLineDetail"]
    [fetched] = (await load(qbo, "invoice"))[0]
    assert {k: fetched.fields[k] for k in ("subtotal", "total", "balance", "status", "currency")} == {
        "subtotal": "1912.30", "total": "1912.30", "balance": "1912.30", "status": "open", "currency": "USD"}
    task = qbo_state.records("Item")[-1]
    assert (task["Type"], task["IncomeAccountRef"], task["Name"], task["PurchaseDesc"]) == (
        "Service", {"value": "1"}, "Northwind ERP rollout - Solution design",
        f"project:{firm['project']} Northwind ERP rollout\naccord:gid-task")


def test_pure_mapping_of_a_user_made_time_activity_and_payment() -> None:
    activity = {"Id": "9", "SyncToken": "3", "NameOf": "Employee", "EmployeeRef": {"value": "2", "name": "Kim"},
                "CustomerRef": {"value": "7"}, "ItemRef": {"value": "1"}, "TxnDate": "2026-05-04",
                "StartTime": "2026-05-04T09:00:00-07:00", "EndTime": "2026-05-04T17:20:00-07:00", "BreakHours": 1,
                "BillableStatus": "HasBeenBilled", "HourlyRate": 150, "Description": "Build"}
    record = to_canonical("time_entry", activity)
    assert record.version == 3 and record.fields == {
        "project": "7", "task": "1", "resource": "2", "work_date": "2026-05-04", "hours": "7.33",
        "billable": True, "bill_rate": "150.00", "notes": "Build", "locked": True}
    assert to_wire("time_entry", {"billable": True}, activity) == {}  # billed time stays billed
    assert to_wire("time_entry", {"hours": "0.33", "billable": False}, activity) == {
        "Hours": 0, "Minutes": 20, "BillableStatus": "NotBillable"}

    payment = {"Id": "12", "SyncToken": "0", "CustomerRef": {"value": "58"}, "TotalAmt": 3000.0,
               "TxnDate": "2026-04-15", "PaymentRefNum": "ACH-7781", "CurrencyRef": {"value": "USD"},
               "Line": [{"Amount": 3000.0, "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]}]}
    assert to_canonical("payment", payment).fields == {
        "account": "58", "invoice": "130", "paid_date": "2026-04-15", "amount": "3000.00", "currency": "USD",
        "reference": "ACH-7781"}
    assert to_wire("payment", {"amount": "2500"}, payment) == {
        "TotalAmt": 2500, "Line": [{"Amount": 2500, "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]}]}


def test_references_must_be_native_ids() -> None:
    with pytest.raises(MappingError) as caught:
        to_wire("time_entry", {"project": "gid-0001"})
    assert caught.value.field == "project" and "numeric Id" in caught.value.message


# ------------------------------------------------------------------------------------------------
# accounts and projects share the Customer table
# ------------------------------------------------------------------------------------------------

async def test_accounts_and_projects_are_kept_apart(qbo_state, qbo, firm) -> None:
    seed_customers(qbo_state, 4, random.Random(2))
    accounts, account_cursor = await load(qbo, "account")
    projects, project_cursor = await load(qbo, "project")
    assert firm["project"] not in {r.id for r in accounts} and len(accounts) == 5
    assert [(r.id, r.fields["account"], r.fields["name"]) for r in projects] == [
        (firm["project"], firm["account"], "Northwind ERP rollout")]
    assert "account" not in accounts[0].fields and "legal_name" not in projects[0].fields

    qbo_state.clock.advance(10)
    qbo_state.user_update("Customer", firm["project"], {"DisplayName": "Northwind ERP phase 2"})
    qbo_state.user_update("Customer", firm["account"], {"CompanyName": "Northwind Holdings Inc."})
    [changed_account], _ = await load(qbo, "account", account_cursor)
    [changed_project], _ = await load(qbo, "project", project_cursor)
    assert changed_account.id == firm["account"] and changed_account.fields["legal_name"] == "Northwind Holdings Inc."
    assert changed_project.id == firm["project"] and changed_project.fields["name"] == "Northwind ERP phase 2"
    assert qbo_state.get("Customer", firm["project"])["FullyQualifiedName"] == "Northwind:Northwind ERP phase 2"


async def test_project_create_makes_a_sub_customer_and_delete_deactivates(qbo_state, qbo, firm) -> None:
    created = await write1(qbo, "project", op("p-1", {"account": firm["account"], "name": "Cloud move"}))
    wire = qbo_state.get("Customer", created.target_id)
    assert (wire["Job"], wire["ParentRef"]["value"], wire["Level"]) == (True, firm["account"], 1)
    gone = await write1(qbo, "project", op("p-1", {}, target=created.target_id, kind="delete",
                                           version=created.version))
    assert gone.ok and gone.fields == {"status": "inactive"}
    assert qbo_state.get("Customer", created.target_id)["Active"] is False

    orphan = await write1(qbo, "project", op("p-2", {"account": "999", "name": "Nowhere"}))
    assert isinstance(orphan.error, Permanent) and orphan.error.code == "2500"


# ------------------------------------------------------------------------------------------------
# time activities are transactions
# ------------------------------------------------------------------------------------------------

async def test_time_activity_create_update_delete(qbo_state, qbo, firm) -> None:
    _, cursor = await load(qbo, "time_entry")
    fields = {"project": firm["project"], "resource": firm["employee"], "task": firm["item"],
              "work_date": "2026-05-04", "hours": "2", "billable": True, "notes": "Kick-off"}
    created = await write1(qbo, "time_entry", op("t-1", fields))
    assert created.ok and created.version == 0

    updated = await write1(qbo, "time_entry", op("t-1", {"hours": "3.25"}, target=created.target_id,
                                                 version=created.version))
    assert updated.ok and updated.version == 1 and updated.fields == {"hours": "3.25"}
    wire = qbo_state.get("TimeActivity", created.target_id)
    assert (wire["Hours"], wire["Minutes"], wire["Description"]) == (3, 15, "Kick-off\naccord:t-1")

    renoted = await write1(qbo, "time_entry", op("t-1", {"notes": "Kick-off workshop"}, target=created.target_id,
                                                 version=updated.version))
    assert renoted.ok and qbo_state.get("TimeActivity", created.target_id)["Description"] == "Kick-off workshop\naccord:t-1"

    qbo_state.clock.advance(5)
    deleted = await write1(qbo, "time_entry", op("t-1", {}, target=created.target_id, kind="delete",
                                                 version=renoted.version))
    assert deleted.ok and qbo_state.get("TimeActivity", created.target_id) is None
    writes = [e for e in qbo_state.requests.entries() if e.method == "POST" and e.endpoint in ("batch", "timeactivity")]
    assert len(writes) == 4  # one request per write (a batch, or alone once the batch pace binds), no reads
    records, _ = await load(qbo, "time_entry", cursor)
    assert [(r.id, r.deleted, r.version) for r in records] == [(created.target_id, True, DELETED_VERSION)]


async def test_time_on_a_missing_project_is_refused_with_2500(qbo_state, qbo, firm) -> None:
    result = await write1(qbo, "time_entry", op("t-9", {"project": "4040", "resource": firm["employee"],
                                                        "hours": "1", "billable": True}))
    assert isinstance(result.error, Permanent) and result.error.code == "2500" and "4040" in result.error.message
    assert qbo_state.records("TimeActivity") == []


async def test_unparseable_date_marks_only_that_record(qbo_state, qbo, firm) -> None:
    good = qbo_state.user_log_time(firm["employee"], firm["project"], 1.0, work_date="2026-05-04")
    bad = qbo_state.user_log_time(firm["employee"], firm["project"], 2.0, work_date="2026-05-05")
    qbo_state.realm().tables["TimeActivity"][bad].wire["TxnDate"] = "05/05/2026"  # as an old import left it
    records, _ = await load(qbo, "time_entry")
    by_id = {r.id: r for r in records}
    assert by_id[good].error is None and by_id[good].fields["hours"] == "1"
    assert "work_date" in by_id[bad].error and "05/05/2026" in by_id[bad].error
    assert "work_date" not in by_id[bad].fields and by_id[bad].fields["hours"] == "2"


# ------------------------------------------------------------------------------------------------
# invoices, payments, billing
# ------------------------------------------------------------------------------------------------

async def test_payment_reduces_the_invoice_balance(qbo_state, qbo, firm) -> None:
    invoice = await write1(qbo, "invoice", op("i-1", {"account": firm["account"], "lines": [
        {"description": "Advisory", "quantity": "20", "unit_price": "150"}]}))
    assert invoice.ok and qbo_state.get("Invoice", invoice.target_id)["Balance"] == 3000.0
    _, cursor = await load(qbo, "invoice")

    part = await write1(qbo, "payment", op("pay-1", {"account": firm["account"], "invoice": invoice.target_id,
                                                     "amount": "1000", "paid_date": "2026-06-01",
                                                     "reference": "ACH-1"}))
    assert part.ok and part.fields == {"account": firm["account"], "invoice": invoice.target_id,
                                       "amount": "1000.00", "paid_date": "2026-06-01", "reference": "ACH-1"}
    wire = qbo_state.get("Invoice", invoice.target_id)
    assert wire["Balance"] == 2000.0 and wire["LinkedTxn"] == [{"TxnId": part.target_id, "TxnType": "Payment"}]
    assert wire["SyncToken"] == "1"  # the application changed the invoice

    too_much = await write1(qbo, "payment", op("pay-2", {"account": firm["account"], "invoice": invoice.target_id,
                                                         "amount": "2500"}))
    assert isinstance(too_much.error, Permanent) and too_much.error.code == "6000"
    assert "open balance" in too_much.error.message

    rest = await write1(qbo, "payment", op("pay-3", {"account": firm["account"], "invoice": invoice.target_id,
                                                     "amount": "2000"}))
    assert rest.ok
    qbo_state.clock.advance(5)
    [changed], cursor = await load(qbo, "invoice", cursor)
    assert (changed.fields["balance"], changed.fields["status"]) == ("0.00", "paid")

    undone = await write1(qbo, "payment", op("pay-3", {}, target=rest.target_id, kind="delete", version=rest.version))
    assert undone.ok and qbo_state.get("Invoice", invoice.target_id)["Balance"] == 2000.0
    [reopened], _ = await load(qbo, "invoice", cursor)
    assert (reopened.fields["balance"], reopened.fields["status"]) == ("2000.00", "open")


def test_payment_of_another_customers_invoice_is_refused(qbo_state, firm) -> None:
    other = qbo_state.user_create("Customer", {"DisplayName": "Contoso"})
    invoice = qbo_state.user_create_invoice(firm["account"], [("Advisory", 2, 100.0)])
    with pytest.raises(Exception, match="belongs to customer"):
        qbo_state.user_create("Payment", {"CustomerRef": {"value": other}, "TotalAmt": 200,
                                      "Line": [{"Amount": 200, "LinkedTxn": [{"TxnId": invoice,
                                                                              "TxnType": "Invoice"}]}]})
    paid = qbo_state.user_record_payment(invoice, reference="CHK-1")
    assert qbo_state.get("Payment", paid)["UnappliedAmt"] == 0 and qbo_state.get("Invoice", invoice)["Balance"] == 0
    with pytest.raises(Exception, match="payments applied"):
        qbo_state.user_delete("Invoice", invoice)


async def test_billing_run_invoices_billable_time_once(qbo_state, qbo, firm) -> None:
    first = qbo_state.user_log_time(firm["employee"], firm["project"], 7.5, item_id=firm["item"], rate=160.0,
                                work_date="2026-05-04", notes="Workshop")
    second = qbo_state.user_log_time(firm["employee"], firm["project"], 2.0, work_date="2026-05-05")  # employee rate
    unbilled = qbo_state.user_log_time(firm["employee"], firm["project"], 1.0, billable=False, work_date="2026-05-05")
    _, cursor = await load(qbo, "time_entry")
    qbo_state.clock.advance(5)

    invoice_id = qbo_state.billing_run(firm["project"])
    assert invoice_id is not None and qbo_state.billing_run(firm["project"]) is None
    invoice = qbo_state.get("Invoice", invoice_id)
    assert invoice["CustomerRef"]["value"] == firm["account"] and invoice["ProjectRef"]["value"] == firm["project"]
    assert invoice["TotalAmt"] == 7.5 * 160 + 2 * 150 and invoice["DocNumber"] == "1001"
    [line1, line2, _] = invoice["Line"]
    assert (line1["SalesItemLineDetail"]["Qty"], line1["SalesItemLineDetail"]["UnitPrice"], line1["Amount"]) == (
        7.5, 160.0, 1200.0)
    assert line1["Description"] == "Kim Allen, 2026-05-04, Workshop"
    assert line2["LinkedTxn"] == [{"TxnId": second, "TxnType": "TimeActivity"}]
    statuses = {i: qbo_state.get("TimeActivity", i)["BillableStatus"] for i in (first, second, unbilled)}
    assert statuses == {first: "HasBeenBilled", second: "HasBeenBilled", unbilled: "NotBillable"}

    changed, cursor = await load(qbo, "time_entry", cursor)
    assert {r.id: (r.fields["locked"], r.version) for r in changed} == {first: (True, 1), second: (True, 1)}
    [billed], _ = await load(qbo, "invoice")
    assert [line.get("time_entry") for line in billed.fields["lines"]] == [first, second]
    assert not any("source" in line for line in billed.fields["lines"])  # deprecated: no longer read
    assert (billed.fields["period_start"], billed.fields["period_end"]) == ("2026-05-04", "2026-05-05")
    assert billed.fields["project"] == firm["project"] and billed.fields["total"] == "1500.00"

    qbo_state.clock.advance(5)
    qbo_state.user_void_invoice(invoice_id)
    [voided], _ = await load(qbo, "invoice")
    assert (voided.fields["status"], voided.fields["total"]) == ("void", "0.00")
    assert qbo_state.get("TimeActivity", first)["BillableStatus"] == "Billable"  # billable again


async def test_billing_run_of_an_account_is_refused(qbo_state, firm) -> None:
    with pytest.raises(Exception, match="2500|not a project"):
        qbo_state.billing_run(firm["account"])


# ------------------------------------------------------------------------------------------------
# CDC across the new entities; resources, tasks, expenses
# ------------------------------------------------------------------------------------------------

ENTITIES = ("account", "project", "resource", "task", "time_entry", "expense", "invoice", "payment")


async def test_cdc_brings_each_entity_its_own_changes(qbo_state, qbo, firm) -> None:
    activity = qbo_state.user_log_time(firm["employee"], firm["project"], 3.0)
    invoice = qbo_state.user_create_invoice(firm["account"], [("Advisory", 1, 500.0)], project_id=firm["project"])
    cursors = {entity: (await load(qbo, entity))[1] for entity in ENTITIES}
    qbo_state.clock.advance(60)

    qbo_state.user_update("Employee", firm["employee"], {"BillRate": 165})
    qbo_state.user_update("Item", firm["item"], {"Sku": "CONS"})
    qbo_state.user_delete("TimeActivity", activity)
    expense = qbo_state.user_create("Purchase", {
        "PaymentType": "Cash", "AccountRef": {"value": "2"}, "EntityRef": {"value": firm["employee"], "type": "Employee"},
        "Line": [{"DetailType": "AccountBasedExpenseLineDetail", "Amount": 88.5, "AccountBasedExpenseLineDetail": {
            "AccountRef": {"value": "3"}, "CustomerRef": {"value": firm["project"]}, "BillableStatus": "Billable"}}]})
    payment = qbo_state.user_record_payment(invoice)
    calls = qbo_state.requests.count("cdc")

    seen: dict[str, list[tuple[str, bool]]] = {}
    for entity in ENTITIES:
        records, _ = await load(qbo, entity, cursors[entity])
        seen[entity] = [(r.id, r.deleted) for r in records]
    assert qbo_state.requests.count("cdc") == calls + len(ENTITIES)
    assert seen == {"account": [], "project": [], "resource": [(firm["employee"], False)],
                    "task": [(firm["item"], False)], "time_entry": [(activity, True)],
                    "expense": [(expense, False)], "invoice": [(invoice, False)], "payment": [(payment, False)]}
    [spent], _ = await load(qbo, "expense")
    assert spent.fields == {"project": firm["project"], "resource": firm["employee"], "spent_date": spent.fields[
        "spent_date"], "amount": "88.50", "currency": "USD", "category": None, "billable": True, "locked": False}


async def test_resource_and_task_updates_and_deactivation(qbo_state, qbo, firm) -> None:
    rate = await write1(qbo, "resource", op("r-1", {"bill_rate": "180", "email": "kim@firm.example"},
                                            target=firm["employee"]))  # version unknown: read first
    assert rate.ok and rate.fields == {"bill_rate": "180.00", "email": "kim@firm.example"}
    wire = qbo_state.get("Employee", firm["employee"])
    assert (wire["BillRate"], wire["GivenName"], wire["SyncToken"]) == (180, "Kim", "1")
    gone = await write1(qbo, "resource", op("r-1", {}, target=firm["employee"], kind="delete", version=rate.version))
    assert gone.ok and gone.fields == {"active": False} and qbo_state.get("Employee", firm["employee"])["Active"] is False
    resources, _ = await load(qbo, "resource")
    assert [(r.id, r.fields["active"]) for r in resources] == [(firm["employee"], False)]

    qbo_state.user_create("Item", {"Name": "Northwind ERP rollout - Consulting", "Type": "Service",
                               "IncomeAccountRef": {"value": "1"}})
    duplicate = await write1(qbo, "task", op("tk-1", {"name": "Consulting", "project": firm["project"]}))
    assert isinstance(duplicate.error, Permanent) and duplicate.error.code == "6240"
    retired = await write1(qbo, "task", op("tk-2", {}, target=firm["item"], kind="delete"))
    assert retired.ok and retired.fields == {} and qbo_state.get("Item", firm["item"])["Active"] is False


async def test_expense_update_keeps_its_line_and_marker(qbo_state, qbo, firm) -> None:
    created = await write1(qbo, "expense", op("e-1", {"project": firm["project"], "amount": "120",
                                                      "category": "Meals", "billable": True,
                                                      "spent_date": "2026-05-06"}))
    assert created.ok
    moved = await write1(qbo, "expense", op("e-1", {"amount": "135.40"}, target=created.target_id,
                                            version=created.version))
    assert moved.ok and moved.fields == {"amount": "135.40"}
    wire = qbo_state.get("Purchase", created.target_id)
    [line] = wire["Line"]
    assert line["AccountBasedExpenseLineDetail"]["CustomerRef"] == {"value": firm["project"]}
    assert (wire["TotalAmt"], wire["PrivateNote"], wire["AccountRef"]) == (135.4, "Meals\naccord:e-1", {"value": "2"})


async def test_expense_currency_reads_back_as_written(qbo_state, qbo, firm) -> None:
    """An expense on a EUR client's project is booked in EUR, not in the home currency QBO assumes when no
    CurrencyRef is sent: what Accord writes reads back the same (else the ERP's poller sees the PSA-owned
    currency "changed" to USD: a false governance violation, reverted in vain)."""
    fields = {"project": firm["project"], "amount": "120.00", "currency": "EUR", "category": "Travel",
              "billable": True, "spent_date": "2026-05-06"}
    created = await write1(qbo, "expense", op("e-eur", fields))
    assert created.ok and created.fields["currency"] == "EUR"
    assert qbo_state.get("Purchase", created.target_id)["CurrencyRef"]["value"] == "EUR"
    [read] = [r for r in (await load(qbo, "expense"))[0] if r.id == created.target_id]
    assert {k: read.fields[k] for k in fields} == fields
    kept = await write1(qbo, "expense", op("e-eur", {"amount": "99.50", "currency": None},
                                           target=created.target_id, version=created.version))
    assert kept.ok and kept.fields == {"amount": "99.50", "currency": "EUR"}  # a Purchase always has one
    home = await write1(qbo, "expense", op("e-usd", {**fields, "currency": None}))
    assert home.ok and home.fields["currency"] == "USD"  # none given: QBO's home currency, read back as such
    bad = await write1(qbo, "expense", op("e-bad", {**fields, "currency": "euro"}))
    assert isinstance(bad.error, MappingError) and bad.error.field == "currency"


# ------------------------------------------------------------------------------------------------
# sandbox: one batch may mix entities (the connector sends one entity per batch)
# ------------------------------------------------------------------------------------------------

async def test_sandbox_batch_mixes_entities(qbo_state, firm) -> None:
    token = qbo_state.issue_token()["access_token"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(qbo_state)),
                                 base_url="http://qbo.test") as client:
        response = await client.post(f"/v3/company/{qbo_state.realm_id}/batch", params={"minorversion": "75"},
                                     headers={"Authorization": f"Bearer {token}"}, json={"BatchItemRequest": [
                                         {"bId": "1", "operation": "create", "Employee": {"DisplayName": "Lee Wu"}},
                                         {"bId": "2", "operation": "create", "TimeActivity": {
                                             "NameOf": "Employee", "EmployeeRef": {"value": firm["employee"]},
                                             "Hours": 1, "BillableStatus": "Billable"}},
                                         {"bId": "3", "Query": "SELECT * FROM Item WHERE Type = 'Service'"}]})
    answers = {a["bId"]: a for a in response.json()["BatchItemResponse"]}
    assert answers["1"]["Employee"]["DisplayName"] == "Lee Wu"
    assert answers["2"]["Fault"]["Error"][0]["element"] == "CustomerRef"  # billable time needs a customer
    assert [i["Name"] for i in answers["3"]["QueryResponse"]["Item"]] == ["Services", "Consulting"]


def test_seed_practice_makes_people_services_and_projects(qbo_state) -> None:
    customers = seed_customers(qbo_state, 6, random.Random(4))
    made = seed_practice(qbo_state, random.Random(4), customers, employees=3, projects=2)
    assert len(made["Employee"]) == 3 and len(made["Item"]) == 5 and len(made["Customer"]) == 2
    for project in made["Customer"]:
        wire = qbo_state.get("Customer", project)
        assert wire["IsProject"] and wire["ParentRef"]["value"] in customers
    activity = qbo_state.user_log_time(made["Employee"][0], made["Customer"][0], 4.0, item_id=made["Item"][2])
    invoice = qbo_state.billing_run(made["Customer"][0])
    assert invoice is not None and qbo_state.get("TimeActivity", activity)["BillableStatus"] == "HasBeenBilled"
