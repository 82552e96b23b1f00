"""The Tryton connector against a real trytond server: customer invoices (made in Tryton from project
timesheet effort, posted, paid) → invoices; opportunities ↔ opportunities."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from accord.connectors.base import SourceRecord, WriteOp
from accord.connectors.errors import Permanent
from accord.connectors.tryton.client import TrytonConnector
from accord.connectors.tryton.settings import TrytonSettings
from accord.sandboxes.tryton.bootstrap import Rpc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # the first test may build the template
DAY = dt.date.today()  # the template's fiscal year covers this year only


async def drain(connector: TrytonConnector, entity: str, cursor: str | None) -> tuple[list[SourceRecord], str]:
    records: list[SourceRecord] = []
    while True:
        page = await connector.fetch(entity, cursor)
        records += page.records
        cursor = page.cursor
        if not page.more:
            return records, cursor


def make(rpc: Rpc, model: str, **vals: Any) -> int:
    made: int = rpc.call(f"model.{model}.create", [vals])[0]
    return made


def pay(rpc: Rpc, invoice: int, amount: Decimal) -> None:
    """Pay ``invoice`` in full by the pay wizard, as a user in Tryton would (a cash payment method)."""
    cash = rpc.one("account.account", [["code", "=", "1.1.1"]])
    method = make(rpc, "account.invoice.payment.method", name="Cash", company=rpc.context["company"],
                  journal=rpc.one("account.journal", [["type", "=", "cash"]]), debit_account=cash,
                  credit_account=cash)
    ctx = {**rpc.context, "active_model": "account.invoice", "active_id": invoice, "active_ids": [invoice]}
    sid, _, _ = rpc.post("wizard.account.invoice.pay.create", [ctx])
    defaults = rpc.post("wizard.account.invoice.pay.execute", [sid, {}, "start", ctx])["view"]["defaults"]
    start = {k: v for k, v in defaults.items() if not k.endswith(".")}  # "company." etc. are display values
    start.update(amount=amount, payment_method=method, date=DAY, description="paid")
    rpc.post("wizard.account.invoice.pay.execute", [sid, {"start": start}, "choice", ctx])
    rpc.post("wizard.account.invoice.pay.delete", [sid, ctx])


async def test_an_invoice_made_from_timesheet_effort_is_read_posted_and_paid(
        connector: TrytonConnector, rpc: Rpc, tryton_template: tuple[Path, dict[str, Any]]) -> None:
    product = tryton_template[1]["product"]
    customer = make(rpc, "party.party", name="ACME Corp",
                    addresses=[["create", [{"street": "1 Main St", "city": "Springfield"}]]])
    project = make(rpc, "project.work", name="ACME Website", type="project", party=customer,
                   timesheet_available=True, project_invoice_method="timesheet", product=product,
                   list_price=Decimal("120"))
    emp_party = make(rpc, "party.party", name="Jane Consultant")
    emp = make(rpc, "company.employee", party=emp_party, company=rpc.context["company"])
    twork = rpc.call("model.project.work.read", [project], ["timesheet_works"])[0]["timesheet_works"][0]
    line = make(rpc, "timesheet.line", employee=emp, work=twork, date=DAY, duration=dt.timedelta(hours=2.5),
                description="Wireframes")
    _, cursor = await drain(connector, "invoice", None)
    rpc.call("model.project.work.invoice", [project])

    drafts, cursor = await drain(connector, "invoice", cursor)
    draft, = drafts
    assert draft.gid is None and draft.fields == {
        "account": str(customer), "project": str(project), "number": None, "issue_date": None, "due_date": None,
        "period_start": DAY.isoformat(), "period_end": DAY.isoformat(), "currency": "EUR",
        "lines": [{"description": "ACME Website", "quantity": "2.5", "unit_price": "120", "amount": "300",
                   "time_entry": str(line), "service_date": DAY.isoformat()}],
        "subtotal": "300", "tax": "0", "total": "300", "balance": "300", "status": "draft"}

    rpc.call("model.account.invoice.post", [int(draft.id)])
    posted, cursor = await drain(connector, "invoice", cursor)
    assert [r.id for r in posted] == [draft.id]
    fields = posted[0].fields
    assert fields["number"].startswith(f"INV{DAY.year}-") and fields["status"] == "open"
    assert (fields["issue_date"], fields["due_date"], fields["balance"]) == (DAY.isoformat(), DAY.isoformat(), "300")

    pay(rpc, int(draft.id), Decimal("300"))
    paid, cursor = await drain(connector, "invoice", cursor)
    assert [(r.id, r.fields["status"], r.fields["balance"]) for r in paid] == [(draft.id, "paid", "0")]
    assert (await drain(connector, "invoice", cursor))[0] == []

    refused, = await connector.write("invoice", [WriteOp(gid="g-i", kind="upsert", key="k", target_id=draft.id,
                                                         fields={"number": "X"})])
    assert not refused.ok and isinstance(refused.error, Permanent) and refused.error.code == "read_only"
    assert rpc.call("model.account.invoice.read", [int(draft.id)], ["number"])[0]["number"] == fields["number"]


async def test_opportunities_are_read_written_and_their_state_changes_followed(connector: TrytonConnector,
                                                                               rpc: Rpc) -> None:
    customer = make(rpc, "party.party", name="Globex")
    emp_party = make(rpc, "party.party", name="Sam Seller")
    seller = make(rpc, "company.employee", party=emp_party, company=rpc.context["company"])
    lead = make(rpc, "sale.opportunity", party=customer, description="Website phase 2", amount=Decimal("15000"),
                conversion_probability=0.4, employee=seller, end_date=dt.date(2026, 6, 30))
    deals, cursor = await drain(connector, "opportunity", None)
    assert {r.id: r.fields for r in deals}[str(lead)] == {
        "account": str(customer), "name": "Website phase 2", "stage": "lead", "is_won": False, "amount": "15000",
        "currency": "EUR", "close_date": "2026-06-30"}

    made, = await connector.write("opportunity", [WriteOp(gid="g-o", kind="upsert", key="g-o", fields={
        "account": str(customer), "name": "Support retainer", "amount": "4800.50", "currency": "EUR",
        "close_date": "2026-09-01", "stage": "lead", "service_line": "ignored"})])
    assert made.ok and made.created, made.error
    assert made.fields == {"account": str(customer), "name": "Support retainer", "amount": "4800.5",
                           "currency": "EUR", "close_date": "2026-09-01", "stage": "lead"}
    row, = rpc.call("model.sale.opportunity.read", [int(made.target_id)], ["description", "amount", "state",
                                                                          "comment"])
    assert (row["description"], row["amount"], row["state"], row["comment"]) == (
        "Support retainer", Decimal("4800.50"), "lead", "accord:g-o")
    again, = await connector.write("opportunity", [WriteOp(gid="g-o", kind="upsert", key="k2",
                                                           fields={"stage": "cancelled"})])
    assert again.ok and again.target_id == made.target_id and again.fields == {"stage": "cancelled"}, again.error

    rpc.call("model.sale.opportunity.opportunity", [lead])  # a state change made in Tryton
    changed, cursor = await drain(connector, "opportunity", cursor)
    by_id = {r.id: r.fields for r in changed}
    assert by_id[str(lead)]["stage"] == "opportunity" and set(by_id) == {str(lead), made.target_id}
    rpc.call("model.sale.opportunity.write", [lead], {"lost_reason": "Price"})
    rpc.call("model.sale.opportunity.lost", [lead])
    lost, cursor = await drain(connector, "opportunity", cursor)
    assert [(r.id, r.fields["stage"], r.fields["is_won"]) for r in lost] == [(str(lead), "lost", False)]
    assert (await drain(connector, "opportunity", cursor))[0] == []

    bad, = await connector.write("opportunity", [WriteOp(gid="g-o", kind="upsert", key="k3",
                                                         target_id=made.target_id, fields={"stage": "won"})])
    assert not bad.ok and isinstance(bad.error, Permanent) and "won" in str(bad.error)


async def test_an_opportunity_is_converted_through_tryton_s_offered_buttons(settings: TrytonSettings,
                                                                            rpc: Rpc) -> None:
    """Tryton 8.2 offers ``convert`` only on an opportunity (not a lead) and an opportunity needs an
    employee: Accord moves lead → opportunity → converted, the employee defaulting to its user's."""
    customer = make(rpc, "party.party", name="Initech")
    emp_party = make(rpc, "party.party", name="Accord Sync")
    employee = make(rpc, "company.employee", party=emp_party, company=rpc.context["company"])
    user = rpc.call("model.res.user.search", [["login", "=", settings.login]])[0]
    rpc.call("model.res.user.write", [user], {"employees": [["add", [employee]]], "employee": employee})
    connector = TrytonConnector(settings, name="erp")
    try:
        made, = await connector.write("opportunity", [WriteOp(gid="g-conv", kind="upsert", key="k1", fields={
            "account": str(customer), "name": "Data platform", "amount": "20000", "currency": "EUR",
            "stage": "converted"})])
        assert made.ok, made.error
        row, = rpc.call("model.sale.opportunity.read", [int(made.target_id)], ["state", "employee"])
        assert (row["state"], row["employee"]) == ("converted", employee)
        deals, _ = await drain(connector, "opportunity", None)
        assert {r.id: r.fields["is_won"] for r in deals}[made.target_id] is True
    finally:
        rpc.call("model.res.user.write", [user], {"employee": None})
        await connector.aclose()
