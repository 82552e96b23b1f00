"""The Harvest connector's invoices and payments, driven against its sandbox in-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accord.connectors.base import SourceRecord, WriteOp, WriteResult
from accord.connectors.errors import Permanent, RateLimited, Retryable
from accord.connectors.harvest.client import HarvestConnector
from accord.sandboxes.harvest.sandbox import HarvestState
from tests.connectors.harvest_rig import START, book

NOT_EDITABLE = "Harvest payments cannot be edited: delete and re-record it in Harvest, then retry"


@pytest.fixture
def ids(harvest_state: HarvestState) -> dict[str, int]:
    return book(harvest_state)


def invoice_op(ids: dict[str, int], gid: str = "inv-1", target: str | None = None, **fields: Any) -> WriteOp:
    base = {"account": str(ids["client"]), "project": str(ids["project"]), "number": "INV-100",
            "issue_date": "2026-06-01", "due_date": "2026-07-01", "period_start": "2026-05-01",
            "period_end": "2026-05-31", "currency": "USD"}
    return WriteOp(gid=gid, kind="upsert", fields={**base, **fields}, key=f"k-{gid}", target_id=target)


def payment_op(invoice_id: str, gid: str = "pay-1", target: str | None = None, **fields: Any) -> WriteOp:
    base = {"invoice": invoice_id, "amount": "120.5", "paid_date": "2026-06-10", "notes": "Wire 88"}
    return WriteOp(gid=gid, kind="upsert", fields={**base, **fields}, key=f"k-{gid}", target_id=target)


async def one(connector: HarvestConnector, entity: str, op: WriteOp) -> WriteResult:
    return (await connector.write(entity, [op]))[0]


async def fetch_all(connector: HarvestConnector, entity: str, cursor: str | None = None,
                    ) -> tuple[list[SourceRecord], str]:
    page = await connector.fetch(entity, cursor)
    records = list(page.records)
    while page.more:
        page = await connector.fetch(entity, page.cursor)
        records += page.records
    return records, page.cursor


def posts(harvest_state: HarvestState, endpoint: str) -> int:
    return sum(1 for e in harvest_state.requests.entries(endpoint) if e.method == "POST" and e.status < 300)


async def test_entities_include_invoices_and_payments(make_harvest) -> None:
    assert {"invoice", "payment"} <= set(make_harvest().entities())


async def test_invoice_create_imports_the_period_sends_it_and_reads_back(harvest_state, make_harvest, ids) -> None:
    connector = make_harvest()
    op = invoice_op(ids, status="open", total="999", balance="999", subtotal="1", lines=[{"description": "x"}])
    result = await one(connector, "invoice", op)
    assert result.ok and result.created, result.error
    expected = {"account": str(ids["client"]), "project": str(ids["project"]), "number": "INV-100",
                "issue_date": "2026-06-01", "due_date": "2026-07-01", "period_start": "2026-05-01",
                "period_end": "2026-05-31", "currency": "USD", "status": "open", "total": "420", "balance": "420"}
    assert result.fields == expected  # Harvest's own sums; lines and subtotal are not held
    wire = harvest_state.get("invoices", int(result.target_id or 0))
    assert wire is not None and (wire["state"], wire["notes"], wire["subject"]) == ("open", "accord:inv-1",
                                                                                     "Invoice INV-100")
    assert result.version == int(harvest_state.clock.now()) * 1000
    records, _ = await fetch_all(connector, "invoice")
    record = next(r for r in records if r.id == result.target_id)
    assert record.gid == "inv-1" and record.fields == {**expected, "tax": None}  # no tax rate: no tax
    entries, _ = await fetch_all(connector, "time_entry")
    billed = {r.id: r.fields["invoice"] for r in entries}
    assert billed[str(ids["approved"])] == result.target_id and billed[str(ids["unapproved"])] is None
    draft = await one(connector, "invoice", invoice_op(ids, "inv-2", number="INV-101", status="draft", total=None))
    assert draft.ok and (draft.fields["status"], draft.fields["total"]) == ("draft", "0")  # all billed already


async def test_retried_create_after_lost_answers_finds_the_first_invoice(harvest_state, make_harvest, ids) -> None:
    connector = make_harvest()
    harvest_state.faults.add("invoices", "drop", after=1)  # the look-up passes; the POST runs, its answer is lost
    first = await one(connector, "invoice", invoice_op(ids))
    assert not first.ok and isinstance(first.error, Retryable)
    assert [i["state"] for i in harvest_state.records("invoices")] == ["draft"]  # created, never sent
    found = await connector.find_created("invoice", ["inv-1", "inv-x"], int(START * 1000))
    assert set(found) == {"inv-1"}
    harvest_state.faults.add("invoice_messages", "drop")  # the retry's send runs, its answer is lost too
    second = await one(connector, "invoice", invoice_op(ids))
    assert not second.ok and isinstance(second.error, Retryable)
    third = await one(connector, "invoice", invoice_op(ids))
    assert third.ok and not third.created and third.target_id == found["inv-1"].id
    assert [(i["id"], i["state"]) for i in harvest_state.records("invoices")] == [(int(found["inv-1"].id), "open")]
    assert posts(harvest_state, "invoices") == 0 and posts(harvest_state, "invoice_messages") == 0  # both answers were dropped
    assert sum(1 for e in harvest_state.requests.entries("invoices") if e.method == "POST") == 1


async def test_create_links_an_invoice_with_the_same_number(harvest_state, make_harvest, ids) -> None:
    connector = make_harvest()
    manual = harvest_state.invoice(ids["client"], [ids["project"]], number="INV-100")  # finance made it in Harvest
    linked = await one(connector, "invoice", invoice_op(ids))
    assert linked.ok and not linked.created and linked.target_id == str(manual)
    assert harvest_state.get("invoices", manual)["notes"] == "accord:inv-1"  # type: ignore[index]
    taken = await one(connector, "invoice", invoice_op(ids, "inv-other"))
    assert isinstance(taken.error, Permanent) and "INV-100" in taken.error.message
    assert "inv-1" in taken.error.message and len(harvest_state.records("invoices")) == 1


async def test_update_patches_fields_and_moves_states_through_messages(harvest_state, make_harvest, ids) -> None:
    connector = make_harvest()
    target = (await one(connector, "invoice", invoice_op(ids))).target_id
    harvest_state.clock.advance(5)
    void = await one(connector, "invoice", invoice_op(ids, target=target, number="INV-100A", due_date="2026-07-15",
                                                      status="void", total="1"))
    assert void.ok and void.fields["status"] == "void" and void.fields["total"] == "420"
    row = harvest_state.get("invoices", int(target or 0))
    assert row is not None and (row["number"], row["due_date"], row["state"]) == ("INV-100A", "2026-07-15", "closed")
    for status, harvest in (("open", "open"), ("draft", "draft"), ("open", "open")):
        result = await one(connector, "invoice", invoice_op(ids, target=target, number="INV-100A", status=status))
        assert result.ok and harvest_state.get("invoices", int(target or 0))["state"] == harvest  # type: ignore[index]
    messages = [e.method for e in harvest_state.requests.entries("invoice_messages")]
    assert len(messages) == 5  # send, close, re-open, draft, send: one event per change
    closed = await connector.write("invoice", [WriteOp(gid="inv-1", kind="delete", fields={}, key="d",
                                                       target_id=target)])
    assert closed[0].ok and harvest_state.get("invoices", int(target or 0))["state"] == "closed"  # type: ignore[index]
    draft = (await one(connector, "invoice", invoice_op(ids, "inv-2", number="D-1", status="draft"))).target_id
    await one(connector, "invoice", invoice_op(ids, "inv-3", number="D-2", status="draft",
                                               period_start=None, period_end=None))
    gone = await connector.write("invoice", [WriteOp(gid="inv-2", kind="delete", fields={}, key="d",
                                                     target_id=draft)])
    assert gone[0].ok and harvest_state.get("invoices", int(draft or 0)) is None
    assert str(draft) not in await connector.scan_ids("invoice")


async def test_payment_create_read_and_idempotent_retry(harvest_state, make_harvest, ids) -> None:
    connector = make_harvest()
    invoice = (await one(connector, "invoice", invoice_op(ids))).target_id or ""
    op = payment_op(invoice, reference="CHK-1", method="check", account="ignored", currency="EUR")
    harvest_state.faults.add("invoice_payments", "drop", after=1)  # the look-up passes; the POST runs, its answer is lost
    lost = await one(connector, "payment", op)
    assert not lost.ok and isinstance(lost.error, Retryable)
    result = await one(connector, "payment", op)
    assert result.ok and not result.created
    again = await one(connector, "payment", op)
    assert again.ok and again.target_id == result.target_id
    payments = harvest_state.payments(int(invoice))
    assert len(payments) == 1 and result.target_id == f"{invoice}:{payments[0]['id']}"
    assert payments[0]["notes"] == "Wire 88\naccord:pay-1"
    expected = {"invoice": invoice, "account": str(ids["client"]), "amount": "120.5", "paid_date": "2026-06-10",
                "currency": "USD", "reference": None, "notes": "Wire 88"}
    assert result.fields == expected  # what Harvest holds: the invoice's client and currency
    records, cursor = await fetch_all(connector, "payment")
    assert [(r.id, r.gid, r.fields) for r in records] == [(result.target_id, "pay-1", expected)]
    assert (await connector.fetch("payment", cursor)).records == []  # unchanged invoice: nothing new
    harvest_state.clock.advance(60)
    other = harvest_state.record_payment(int(invoice), 100.0, "2026-06-11", "cheque")
    newer, _ = await fetch_all(connector, "payment", cursor)
    assert f"{invoice}:{other}" in {r.id for r in newer} and all(r.fields["notes"] != "accord:pay-1" for r in newer)
    found = await connector.find_created("payment", ["pay-1"], int(START * 1000))
    assert found["pay-1"].id == result.target_id
    assert await connector.scan_ids("payment") == {result.target_id, f"{invoice}:{other}"}
    deleted = await connector.write("payment", [WriteOp(gid="pay-1", kind="delete", fields={}, key="d",
                                                        target_id=result.target_id)])
    assert deleted[0].ok and await connector.scan_ids("payment") == {f"{invoice}:{other}"}
    assert harvest_state.get("invoices", int(invoice))["due_amount"] == 320.0  # type: ignore[index]


async def test_paying_in_full_reads_as_paid_and_payment_edits_are_permanent(harvest_state, make_harvest, ids) -> None:
    connector = make_harvest()
    invoice = (await one(connector, "invoice", invoice_op(ids))).target_id or ""
    paid = await one(connector, "payment", payment_op(invoice, amount="420.00"))
    assert paid.ok
    records, _ = await fetch_all(connector, "invoice")
    assert {k: records[0].fields[k] for k in ("status", "balance", "total")} == {
        "status": "paid", "balance": "0", "total": "420"}
    same = await one(connector, "payment", payment_op(invoice, target=paid.target_id, amount="420"))
    assert same.ok and not same.created  # nothing changed: nothing to edit
    edit = await one(connector, "payment", payment_op(invoice, target=paid.target_id, amount="400",
                                                      paid_date="2026-06-12"))
    assert isinstance(edit.error, Permanent) and not edit.ok
    assert "amount '420' → '400'" in edit.error.message and "paid_date" in edit.error.message
    assert edit.error.message.endswith(NOT_EDITABLE) and "notes" not in edit.error.message.split(";")[0]
    assert len(harvest_state.payments(int(invoice))) == 1  # never deleted and re-recorded
    void = await one(connector, "invoice", invoice_op(ids, target=invoice, status="void"))
    assert isinstance(void.error, Permanent) and "paid" in void.error.message


async def test_429_storm_during_invoice_create_ends_with_exactly_one_invoice(harvest_state, make_harvest, ids) -> None:
    connector = make_harvest()
    harvest_state.rate_limit = 3  # the account's real limit, tightened: the fourth request in 15 s gets a 429
    harvest_state.faults.add("invoices", "429", retry_after=3)
    harvest_state.faults.add("invoice_messages", "429", count=2, retry_after=3)
    outcomes: list[type[Exception] | None] = []
    for _ in range(12):
        result = await one(connector, "invoice", invoice_op(ids))
        outcomes.append(type(result.error) if result.error else None)
        if result.ok:
            break
        assert isinstance(result.error, RateLimited)
        harvest_state.clock.advance(result.error.retry_after)  # what the writer's backoff would wait
    assert outcomes[-1] is None and outcomes.count(RateLimited) >= 3
    invoices = harvest_state.records("invoices")
    assert len(invoices) == 1 and invoices[0]["state"] == "open" and invoices[0]["notes"] == "accord:inv-1"
    assert harvest_state.requests.count("invoices", status=429) >= 2  # injected and the real limit's
    assert sum(1 for e in harvest_state.requests.entries("invoices") if e.method == "POST") == 1
    entry = harvest_state.get("time_entries", ids["approved"])
    assert entry is not None and entry["invoice"]["id"] == invoices[0]["id"]


async def test_an_import_that_would_not_bill_exactly_the_erp_invoice_is_refused(
        harvest_state: HarvestState, make_harvest: Callable[..., HarvestConnector], ids: dict[str, int]) -> None:
    connector = make_harvest()
    partial = [{"time_entry": str(ids["approved"]), "amount": "300"}]  # the ERP did not bill the expense
    refused = await one(connector, "invoice", invoice_op(ids, lines=partial))
    assert not refused.ok and isinstance(refused.error, Permanent)
    assert f"would also bill expense {ids['expense']}" in str(refused.error)
    assert posts(harvest_state, "invoices") == 0, "nothing is imported when the period does not match"

    exact = [*partial, {"expense": str(ids["expense"]), "amount": "120"}]
    done = await one(connector, "invoice", invoice_op(ids, lines=exact))
    assert done.ok and done.created
    billed = {t["id"] for t in harvest_state.records("time_entries") if t["is_billed"]}
    assert billed == {ids["approved"]}
    assert [e["is_billed"] for e in harvest_state.records("expenses") if e["id"] == ids["expense"]] == [True]
