"""Business rules of the sandbox's QBO objects, beyond what ``tables`` declares.

* Customer: ``ParentRef`` makes a sub-customer (``Job: true``, ``Level``, ``Parent:Child``
  FullyQualifiedName, the parent's currency); ``Job: true`` without ParentRef is refused (2020).
* Item: Type is Service | NonInventory | Inventory | Category; a Service needs IncomeAccountRef; Name
  is at most 100 characters and has no ':' (QBO's sub-item separator).
* TimeActivity: NameOf "Employee" needs EmployeeRef; Hours/Minutes (or StartTime/EndTime) are
  required; a Billable activity needs CustomerRef.
* Purchase: PaymentType and AccountRef are required; every AccountBasedExpenseLineDetail line names an
  expense account; TotalAmt is the sum of the lines.
* Invoice: CustomerRef is required; ProjectRef must be a project of that customer; each sales line's
  Amount must equal Qty × UnitPrice (6070); lines without ItemRef use the "Services" item; DocNumber is
  assigned when absent; TotalAmt is the sum of the lines; Balance is TotalAmt minus the payments applied
  and ``LinkedTxn`` lists those payments. A line linked to a TimeActivity or to a Purchase's expense
  line marks it HasBeenBilled (and deleting or voiding the invoice makes it Billable again; see
  ``billed``). An invoice with payments cannot be deleted or voided.
* Payment: each line links one invoice of the same customer and may not exceed its open balance;
  lines may not exceed TotalAmt; UnappliedAmt is the rest. Creating, changing or deleting a payment
  recomputes the Balance and LinkedTxn of every invoice it touches (which bumps their SyncToken).
* Estimate, and the customer, project and line rules it shares with Invoice: see ``sales``.

The functions run inside ``store.Realm`` writes (the caller holds ``state.lock``).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from accord.sandboxes.quickbooks import billed, sales
from accord.sandboxes.quickbooks.rulebase import (
    BILLABLE,
    BILLED,
    EXPENSE_LINE,
    SALES_LINE,
    amount,
    as_number,
    bad_ref,
    business,
    invalid,
    linked,
    live,
    ref_id,
    required,
    today,
)
from accord.sandboxes.quickbooks.tables import HOME_CURRENCY, EntityType

if TYPE_CHECKING:
    from accord.sandboxes.quickbooks.store import Realm

# ------------------------------------------------------------------------------------------------
# name lists
# ------------------------------------------------------------------------------------------------

def _customer(realm: Realm, wire: dict[str, Any], old: Mapping[str, Any] | None, now: float) -> None:
    parent_id = ref_id(wire, "ParentRef")
    if parent_id is None:
        if wire.get("Job"):
            raise required("ParentRef", "Customer", "a sub-customer (Job=true) names its parent customer")
        wire.pop("Level", None)
        return
    parent = live(realm, "Customer", parent_id)
    if parent is None or parent_id == wire.get("Id"):
        raise bad_ref("ParentRef", parent_id, "parent Customer")
    wire.update(Job=True, Level=int(parent.get("Level", 0)) + 1, CurrencyRef=copy.deepcopy(parent["CurrencyRef"]),
                ParentRef={"value": parent_id, "name": parent["DisplayName"]},
                FullyQualifiedName=f"{parent.get('FullyQualifiedName') or parent['DisplayName']}:{wire['DisplayName']}")


ITEM_NAME_MAX = 100


def _item(realm: Realm, wire: dict[str, Any], old: Mapping[str, Any] | None, now: float) -> None:
    name = str(wire.get("Name") or "")
    if ":" in name:
        raise invalid("Name", name, "':' separates a sub-item from its parent and may not appear in a name")
    if len(name) > ITEM_NAME_MAX:
        raise invalid("Name", name, f"an item name is at most {ITEM_NAME_MAX} characters")
    kind = wire.get("Type")
    if kind not in ("Service", "NonInventory", "Inventory", "Category"):
        raise invalid("Type", kind, "use Service, NonInventory, Inventory or Category")
    if kind in ("Service", "NonInventory") and ref_id(wire, "IncomeAccountRef") is None:
        raise required("IncomeAccountRef", "Item", f"a {kind} item books its sales to an income account")


# ------------------------------------------------------------------------------------------------
# time and expenses
# ------------------------------------------------------------------------------------------------

def _billable_status(value: Any, customer: str | None, where: str) -> None:
    if value not in ("Billable", "NotBillable", BILLED):
        raise invalid(where, value, "use Billable, NotBillable or HasBeenBilled")
    if value == BILLABLE and customer is None:
        raise required("CustomerRef", where, "billable time and expenses are billed to a customer")


def _time_activity(realm: Realm, wire: dict[str, Any], old: Mapping[str, Any] | None, now: float) -> None:
    name_of = wire.get("NameOf")
    if name_of not in ("Employee", "Vendor"):
        raise required("NameOf", "TimeActivity", "NameOf is Employee or Vendor")
    if name_of == "Employee" and ref_id(wire, "EmployeeRef") is None:
        raise required("EmployeeRef", "TimeActivity", "time of an employee names the employee")
    if wire.get("Hours") is None and wire.get("Minutes") is None and not (wire.get("StartTime")
                                                                           and wire.get("EndTime")):
        raise required("Hours", "TimeActivity", "send Hours/Minutes or StartTime and EndTime")
    _billable_status(wire.get("BillableStatus"), ref_id(wire, "CustomerRef"), "BillableStatus")
    wire.setdefault("TxnDate", today(now))


def _purchase(realm: Realm, wire: dict[str, Any], old: Mapping[str, Any] | None, now: float) -> None:
    if wire.get("PaymentType") not in ("Cash", "Check", "CreditCard"):
        raise required("PaymentType", "Purchase", "PaymentType is Cash, Check or CreditCard")
    if ref_id(wire, "AccountRef") is None:
        raise required("AccountRef", "Purchase", "the bank or credit card account the purchase was paid from")
    entity = wire.get("EntityRef")
    if entity is not None:
        kind = entity.get("type", "Employee")
        if kind not in ("Employee", "Customer") or live(realm, kind, ref_id(wire, "EntityRef")) is None:
            raise bad_ref("EntityRef", entity.get("value"), kind)
    lines = wire.get("Line")
    if not isinstance(lines, list) or not lines:
        raise required("Line", "Purchase", "a purchase has at least one expense line")
    total = Decimal(0)
    for number, line in enumerate(lines, 1):
        detail = line.get(EXPENSE_LINE) if line.get("DetailType") == EXPENSE_LINE else None
        if not isinstance(detail, dict):
            raise invalid("Line.DetailType", line.get("DetailType"), "use AccountBasedExpenseLineDetail")
        if live(realm, "Account", ref_id(detail, "AccountRef")) is None:
            raise bad_ref("Line.AccountBasedExpenseLineDetail.AccountRef", ref_id(detail, "AccountRef"), "Account")
        customer = ref_id(detail, "CustomerRef")
        if customer is not None and live(realm, "Customer", customer) is None:
            raise bad_ref("Line.AccountBasedExpenseLineDetail.CustomerRef", customer, "Customer")
        detail.setdefault("BillableStatus", "NotBillable")
        _billable_status(detail["BillableStatus"], customer, "Line.AccountBasedExpenseLineDetail.BillableStatus")
        line_amount = amount(line.get("Amount"), "Line.Amount")
        line.update(Id=str(number), Amount=as_number(line_amount))
        total += line_amount
    wire.update(TotalAmt=as_number(total))
    wire.setdefault("TxnDate", today(now))
    wire.setdefault("CurrencyRef", dict(HOME_CURRENCY))


# ------------------------------------------------------------------------------------------------
# invoices and payments
# ------------------------------------------------------------------------------------------------

def payments_of(realm: Realm, invoice_id: str, *, skip: str | None = None) -> list[tuple[str, Decimal]]:
    """(payment id, amount applied) of every live payment applied to ``invoice_id``."""
    found = []
    for row in realm.tables["Payment"].values():
        if row.deleted or row.wire["Id"] == skip:
            continue
        applied = sum((amount(line.get("Amount")) for line in row.wire.get("Line") or []
                       if invoice_id in linked(line, "Invoice")), Decimal(0))
        if applied:
            found.append((row.wire["Id"], applied))
    return found


def _sales_line(realm: Realm, line: dict[str, Any], number: int, invoice_id: str) -> Decimal:
    line_amount = sales.sales_line(realm, line, number, "Invoice")
    billed.check_line(realm, line, invoice_id)
    return line_amount


def _invoice(realm: Realm, wire: dict[str, Any], old: Mapping[str, Any] | None, now: float) -> None:
    customer = sales.customer_of(realm, wire, "Invoice", "an invoice bills a customer")
    lines = sales.sales_lines(wire, "Invoice", "an invoice has at least one SalesItemLineDetail line")
    total = sum((_sales_line(realm, line, n, wire["Id"]) for n, line in enumerate(lines, 1)), Decimal(0))
    wire["Line"] = sales.with_subtotal(lines, total)
    total += amount((wire.get("TxnTaxDetail") or {}).get("TotalTax") or 0)
    applied = payments_of(realm, wire["Id"])
    paid = sum((a for _, a in applied), Decimal(0))
    if paid > total:
        raise business(f"invoice total {total} is less than the {paid} already paid on it")
    wire.update(TotalAmt=as_number(total), Balance=as_number(total - paid), CurrencyRef=sales.currency_of(customer),
                LinkedTxn=[{"TxnId": pid, "TxnType": "Payment"} for pid, _ in applied])
    wire.setdefault("TxnDate", today(now))
    if not wire.get("DocNumber"):
        if old is not None and old.get("DocNumber"):
            wire["DocNumber"] = old["DocNumber"]
        else:
            wire["DocNumber"], realm.next_doc = str(realm.next_doc), realm.next_doc + 1
    if "DueDate" not in wire:
        term = live(realm, "Term", ref_id(wire, "SalesTermRef") or ref_id(customer, "SalesTermRef")) or {}
        due = dt.date.fromisoformat(wire["TxnDate"]) + dt.timedelta(days=int(term.get("DueDays") or 0))
        wire["DueDate"] = due.isoformat()


def _payment(realm: Realm, wire: dict[str, Any], old: Mapping[str, Any] | None, now: float) -> None:
    customer = live(realm, "Customer", ref_id(wire, "CustomerRef"))
    if customer is None:
        raise required("CustomerRef", "Payment", "a payment is received from a customer")
    if wire.get("TotalAmt") is None:
        raise required("TotalAmt", "Payment")
    received = amount(wire["TotalAmt"], "TotalAmt")
    applied = Decimal(0)
    for line in wire.get("Line") or []:
        targets: list[str | None] = [*linked(line, "Invoice")] or [None]
        for invoice_id in targets:
            invoice = live(realm, "Invoice", invoice_id)
            if invoice is None:
                raise bad_ref("Line.LinkedTxn.TxnId", invoice_id, "Invoice")
            if ref_id(invoice, "CustomerRef") != customer["Id"]:
                raise business(f"invoice {invoice_id} belongs to customer {ref_id(invoice, 'CustomerRef')}, "
                               f"not to customer {customer['Id']} of this payment")
            line_amount = amount(line.get("Amount"), "Line.Amount")
            others = sum((a for _, a in payments_of(realm, str(invoice_id), skip=wire["Id"])), Decimal(0))
            open_balance = amount(invoice.get("TotalAmt")) - others
            if line_amount > open_balance:
                raise business(f"the {line_amount} applied to invoice {invoice_id} exceeds its open balance "
                               f"{open_balance}")
            line["Amount"] = as_number(line_amount)
            applied += line_amount
    if applied > received:
        raise business(f"the lines apply {applied} but the payment received only {received}")
    wire.update(TotalAmt=as_number(received), UnappliedAmt=as_number(received - applied),
                CurrencyRef=copy.deepcopy(customer.get("CurrencyRef") or HOME_CURRENCY))
    wire.setdefault("TxnDate", today(now))


Rule = Callable[["Realm", dict[str, Any], Mapping[str, Any] | None, float], None]
_PREPARE: dict[str, Rule] = {"Customer": _customer, "Item": _item, "TimeActivity": _time_activity,
                             "Purchase": _purchase, "Invoice": _invoice, "Payment": _payment,
                             "Estimate": sales.estimate}


def prepare(realm: Realm, etype: EntityType, wire: dict[str, Any], old: Mapping[str, Any] | None,
            now: float) -> None:
    """Validate and complete ``wire`` (a create when ``old`` is None) before it is stored."""
    rule = _PREPARE.get(etype.name)
    if rule is not None:
        rule(realm, wire, old, now)


def refresh_invoice(realm: Realm, invoice_id: str, now: float) -> None:
    invoice = live(realm, "Invoice", invoice_id)
    if invoice is None:
        return
    applied = payments_of(realm, invoice_id)
    balance = amount(invoice.get("TotalAmt")) - sum((a for _, a in applied), Decimal(0))
    realm.touch("Invoice", invoice_id, {"Balance": as_number(balance), "LinkedTxn": [
        {"TxnId": pid, "TxnType": "Payment"} for pid, _ in applied]}, now)


def after_write(realm: Realm, etype: EntityType, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None,
                now: float) -> None:
    """Side effects of a stored create/update/void (``new``) or delete (``new`` is None)."""
    if etype.name == "Payment":
        invoices = {i for wire in (old, new) for line in (wire or {}).get("Line") or [] for i in linked(line, "Invoice")}
        for invoice_id in sorted(invoices):
            refresh_invoice(realm, invoice_id, now)
    elif etype.name == "Invoice":
        billed.mark(realm, old, new, now)


def before_delete(realm: Realm, etype: EntityType, wire: Mapping[str, Any], operation: str) -> None:
    if etype.name == "Invoice" and payments_of(realm, str(wire["Id"])):
        raise business(f"invoice {wire['Id']} has payments applied; delete or unapply them before the "
                       f"{operation}")


def voided(wire: Mapping[str, Any]) -> dict[str, Any]:
    """The invoice as QBO keeps it after a void: zero amounts, memo "Voided", no billed time."""
    out = copy.deepcopy(dict(wire))
    for line in out.get("Line") or []:
        line["Amount"] = 0.0
        line.pop("LinkedTxn", None)
        if line.get("DetailType") == SALES_LINE:
            line[SALES_LINE]["Qty"] = 0
    note = wire.get("PrivateNote")
    out.update(TotalAmt=0.0, Balance=0.0, PrivateNote=f"Voided\n{note}" if note else "Voided")
    return out
