"""The Harvest sandbox's invoices, invoice messages and invoice payments, over raw HTTP in-process."""

from __future__ import annotations

from typing import Any

import pytest

from accord.sandboxes.harvest.sandbox import HarvestError
from accord.sandboxes.harvest.store import LOCKED_APPROVED, LOCKED_INVOICED
from tests.connectors.harvest_rig import book

MAY = {"summary_type": "detailed", "from": "2026-05-01", "to": "2026-05-31"}


def import_body(ids: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {"client_id": ids["client"], "line_items_import": {"project_ids": [ids["project"]], "time": MAY,
                                                              "expenses": MAY}, **extra}


def free_form(ids: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {"client_id": ids["client"], "tax": 10.0, "line_items": [
        {"kind": "Service", "description": "Fixed fee", "quantity": 10, "unit_price": 100.0, "taxed": True},
        {"kind": "Product", "description": "Licence", "unit_price": 50.0}], **extra}


async def test_import_bills_only_approved_billable_unbilled_entries_in_range(harvest_sandbox, harvest_api) -> None:
    ids = book(harvest_sandbox)
    other = book(harvest_sandbox, "Zenith Ltd")
    made = await harvest_api.post("/v2/invoices", json=import_body(ids, number="INV-1"))
    assert made.status_code == 201
    invoice = made.json()
    assert (invoice["state"], invoice["number"], invoice["client"]) == ("draft", "INV-1",
                                                                        {"id": ids["client"], "name": "Acme Corp"})
    assert (invoice["period_start"], invoice["period_end"]) == ("2026-05-01", "2026-05-31")
    lines = [(li["kind"], li["quantity"], li["unit_price"], li["amount"], li["project"]["id"])
             for li in invoice["line_items"]]
    assert lines == [("Service", 2.0, 150.0, 300.0, ids["project"]), ("Expense", 1.0, 120.0, 120.0, ids["project"])]
    assert invoice["line_items"][0]["project"] == {"id": ids["project"], "name": "Acme Corp Rollout", "code": "ACM-1"}
    assert (invoice["amount"], invoice["due_amount"], invoice["tax_amount"]) == (420.0, 420.0, 0.0)
    assert invoice["currency"] == "USD" and invoice["issue_date"] == invoice["due_date"] == "2026-05-28"
    billed = harvest_sandbox.get("time_entries", ids["approved"])
    assert billed is not None and billed["is_billed"] and billed["locked_reason"] == LOCKED_INVOICED
    assert billed["invoice"] == {"id": invoice["id"], "number": "INV-1"}
    expense = harvest_sandbox.get("expenses", ids["expense"])
    assert expense is not None and expense["invoice"] == {"id": invoice["id"], "number": "INV-1"}
    for key in ("unapproved", "non_billable", "outside"):
        assert harvest_sandbox.get("time_entries", ids[key])["is_billed"] is False  # type: ignore[index]
    assert all(not e["is_billed"] for e in harvest_sandbox.records("time_entries") if e["client"]["id"] == other["client"])
    listed = (await harvest_api.get("/v2/time_entries", params={"is_billed": "true"})).json()["time_entries"]
    assert [e["id"] for e in listed] == [ids["approved"]]
    again = (await harvest_api.post("/v2/invoices", json=import_body(ids))).json()
    assert again["line_items"] == [] and again["amount"] == 0.0  # nothing left to bill
    harvest_sandbox.approval_feature = False  # the company turns approvals off: unapproved time is billable now
    third = (await harvest_api.post("/v2/invoices", json=import_body(ids))).json()
    assert [li["quantity"] for li in third["line_items"]] == [3.0]
    foreign = await harvest_api.post("/v2/invoices", json={**import_body(ids), "line_items_import": {
        "project_ids": [other["project"]], "time": MAY}})
    assert foreign.status_code == 422


async def test_numbers_are_unique_and_auto_assigned(harvest_sandbox, harvest_api) -> None:
    ids = book(harvest_sandbox)
    first = await harvest_api.post("/v2/invoices", json=free_form(ids, number="INV-9"))
    duplicate = await harvest_api.post("/v2/invoices", json=free_form(ids, number="INV-9"))
    assert first.status_code == 201
    assert duplicate.status_code == 422 and duplicate.json() == {"message": "Number has already been taken"}
    auto = (await harvest_api.post("/v2/invoices", json=free_form(ids))).json()
    assert auto["number"].isdigit()
    renumber = await harvest_api.patch(f"/v2/invoices/{auto['id']}", json={"number": "INV-9"})
    assert renumber.status_code == 422
    no_client = await harvest_api.post("/v2/invoices", json={"number": "X"})
    assert no_client.status_code == 422 and "Client" in no_client.json()["message"]
    assert len(harvest_sandbox.records("invoices")) == 2


async def test_payments_make_an_invoice_paid_and_deleting_one_reverts(harvest_sandbox, harvest_api) -> None:
    ids = book(harvest_sandbox)
    invoice = (await harvest_api.post("/v2/invoices", json=free_form(ids, number="INV-2"))).json()
    assert (invoice["amount"], invoice["tax_amount"], invoice["due_amount"]) == (1150.0, 100.0, 1150.0)
    pay = f"/v2/invoices/{invoice['id']}/payments"
    on_draft = await harvest_api.post(pay, json={"amount": 100})
    assert on_draft.status_code == 422
    assert (await harvest_api.post(f"/v2/invoices/{invoice['id']}/messages", json={"event_type": "send"})).status_code == 201
    harvest_sandbox.clock.advance(60)
    first = await harvest_api.post(pay, json={"amount": 650, "paid_date": "2026-06-01", "notes": "part"})
    assert first.status_code == 201
    assert set(first.json()) == {"id", "amount", "paid_at", "paid_date", "recorded_by", "recorded_by_email", "notes",
                                 "transaction_id", "payment_gateway", "created_at", "updated_at"}
    after_first = (await harvest_api.get(f"/v2/invoices/{invoice['id']}")).json()
    assert (after_first["state"], after_first["due_amount"]) == ("open", 500.0)
    assert after_first["updated_at"] > invoice["updated_at"]  # a payment bumps its invoice
    assert (await harvest_api.post(pay, json={"amount": 600})).status_code == 422  # more than is due
    assert (await harvest_api.post(pay, json={"paid_date": "2026-06-02"})).status_code == 422  # no amount
    second = (await harvest_api.post(pay, json={"amount": 500, "paid_date": "2026-06-02"})).json()
    paid = (await harvest_api.get(f"/v2/invoices/{invoice['id']}")).json()
    assert (paid["state"], paid["due_amount"], paid["paid_date"]) == ("paid", 0.0, "2026-06-02")
    listed = (await harvest_api.get(pay)).json()
    assert [p["id"] for p in listed["invoice_payments"]] == [second["id"], first.json()["id"]]
    assert listed["total_entries"] == 2
    one = f"{pay}/{second['id']}"
    assert (await harvest_api.patch(one, json={"amount": 1})).status_code in (404, 405)  # payments cannot be edited
    assert (await harvest_api.get(one)).status_code in (404, 405)
    harvest_sandbox.clock.advance(60)
    assert (await harvest_api.delete(one)).status_code == 200
    reverted = (await harvest_api.get(f"/v2/invoices/{invoice['id']}")).json()
    assert (reverted["state"], reverted["due_amount"], reverted["paid_at"], reverted["paid_date"]) == (
        "open", 500.0, None, None)
    assert reverted["updated_at"] > paid["updated_at"]
    assert (await harvest_api.delete(one)).status_code == 404


async def test_message_events_drive_the_states_and_only_drafts_delete(harvest_sandbox, harvest_api) -> None:
    ids = book(harvest_sandbox)
    invoice = (await harvest_api.post("/v2/invoices", json=import_body(ids, number="INV-3"))).json()
    path, messages = f"/v2/invoices/{invoice['id']}", f"/v2/invoices/{invoice['id']}/messages"

    async def event(kind: str) -> int:
        return (await harvest_api.post(messages, json={"event_type": kind})).status_code

    assert await event("close") == 422  # a draft cannot be closed
    assert await event("bogus") == 422
    assert await event("send") == 201 and (await harvest_api.get(path)).json()["sent_at"] is not None
    assert (await harvest_api.delete(path)).status_code == 422  # only drafts can be deleted
    assert await event("close") == 201 and (await harvest_api.get(path)).json()["state"] == "closed"
    assert (await harvest_api.post(f"{path}/payments", json={"amount": 1})).status_code == 422
    assert await event("re-open") == 201 and (await harvest_api.get(path)).json()["state"] == "open"
    assert await event("draft") == 201 and (await harvest_api.get(path)).json()["state"] == "draft"
    log = (await harvest_api.get(messages)).json()["invoice_messages"]
    assert [m["event_type"] for m in log] == ["draft", "re-open", "close", "send"]
    assert (await harvest_api.delete(path)).status_code == 200
    assert (await harvest_api.get(path)).status_code == 404
    unbilled = harvest_sandbox.get("time_entries", ids["approved"])
    assert unbilled is not None and (unbilled["is_billed"], unbilled["invoice"]) == (False, None)
    assert (unbilled["is_locked"], unbilled["locked_reason"]) == (True, LOCKED_APPROVED)  # still approved
    with pytest.raises(HarvestError):
        harvest_sandbox.invoice_event(invoice["id"], "send")


async def test_invoice_list_filters_and_cursor_paging(harvest_sandbox, harvest_api) -> None:
    ids = book(harvest_sandbox)
    other = book(harvest_sandbox, "Zenith Ltd")
    first = harvest_sandbox.invoice(ids["client"], [ids["project"]], "2026-05-01", "2026-05-31", number="A-1")
    harvest_sandbox.clock.advance(3600)
    second = harvest_sandbox.invoice(other["client"], [other["project"]], number="B-1", send=False)
    third = (await harvest_api.post("/v2/invoices", json=free_form(ids, number="A-2", issue_date="2026-04-15"))).json()["id"]
    by = {}
    for key, params in {"client": {"client_id": ids["client"]}, "project": {"project_id": ids["project"]},
                        "draft": {"state": "draft"}, "may": {"from": "2026-05-01", "to": "2026-05-31"}}.items():
        by[key] = {i["id"] for i in (await harvest_api.get("/v2/invoices", params=params)).json()["invoices"]}
    assert by == {"client": {first, third}, "project": {first}, "draft": {second, third}, "may": {first, second}}
    since = harvest_sandbox.get("invoices", second)["updated_at"]  # type: ignore[index]
    recent = (await harvest_api.get("/v2/invoices", params={"updated_since": since})).json()["invoices"]
    assert {i["id"] for i in recent} == {second, third}
    seen, body = [], (await harvest_api.get("/v2/invoices", params={"per_page": 1})).json()
    while True:
        seen += [(i["issue_date"], i["id"]) for i in body["invoices"]]
        if not body["links"]["next"]:
            break
        body = (await harvest_api.get(body["links"]["next"])).json()
    assert len(seen) == 3 and seen == sorted(seen, reverse=True)  # newest issue date first


async def test_bill_helper_makes_a_real_open_invoice(harvest_sandbox, harvest_api) -> None:
    ids = book(harvest_sandbox)
    invoice_id = harvest_sandbox.bill([ids["unapproved"]])
    invoice = harvest_sandbox.get("invoices", invoice_id)
    assert invoice is not None and invoice["state"] == "open" and invoice["amount"] == 450.0
    entry = harvest_sandbox.get("time_entries", ids["unapproved"])
    assert entry is not None and entry["invoice"] == {"id": invoice_id, "number": invoice["number"]}
    payment = harvest_sandbox.record_payment(invoice_id, 450.0, "2026-06-03")
    assert harvest_sandbox.get("invoices", invoice_id)["state"] == "paid"  # type: ignore[index]
    harvest_sandbox.delete_payment(payment)
    assert harvest_sandbox.get("invoices", invoice_id)["state"] == "open"  # type: ignore[index]
    assert harvest_sandbox.payments(invoice_id) == []
