"""Finance-side entities in QuickBooks: invoices and payments.

===========  ==========  =================================================================================
canonical    QuickBooks  fields (← read, → write; references are native QBO ids)
===========  ==========  =================================================================================
invoice      Invoice     account ↔ CustomerRef (the account's Customer); project ↔ ProjectRef (the project
                         sub-customer, minor version ≥ 69); number ↔ DocNumber (QBO numbers it when absent);
                         issue_date ↔ TxnDate; due_date ↔ DueDate; currency ↔ CurrencyRef; lines ↔ the
                         SalesItemLineDetail lines (description ↔ Description, quantity ↔ Qty, unit_price ↔
                         UnitPrice, amount ↔ Amount (→ Qty × UnitPrice when absent), service_date ↔
                         ServiceDate, time_entry ↔ the line's LinkedTxn of TxnType "TimeActivity", expense ↔
                         its LinkedTxn of TxnType "Purchase" (how the sandbox's billing run links a billable
                         expense; the reference does not document QBO's own link); ``source``, deprecated, is
                         no longer read and is written as an alias of time_entry. Written lines carry no
                         ItemRef, so QBO books them to its default "Services" item, and replace every line).
                         Read-only: period_start / period_end (the first and last ServiceDate of the lines,
                         derived: ignored on write), subtotal (sum of the lines), tax ←
                         TxnTaxDetail.TotalTax, total ← TotalAmt, balance ← Balance, status ("void" when QBO
                         voided it: PrivateNote starts with "Voided" and TotalAmt is 0; "paid" when Balance
                         is 0 and TotalAmt > 0; else "open"). gid: line in PrivateNote.
payment      Payment     account ↔ CustomerRef; invoice ↔ Line[0].LinkedTxn (TxnType "Invoice"; writing it
                         applies the whole amount to that invoice, and QBO lowers the invoice's Balance);
                         paid_date ↔ TxnDate; amount ↔ TotalAmt; reference ↔ PaymentRefNum; currency ←
                         CurrencyRef. gid: line in PrivateNote. Not held: method (PaymentMethodRef needs a
                         per-company lookup). Payments applied to several invoices are read with the first
                         one and refused on write (split them in QuickBooks).
===========  ==========  =================================================================================

Both are transactions: a canonical delete is a real ``operation=delete`` (QBO puts the time billed by a
deleted invoice back to Billable, and a deleted payment's amount back on its invoice's Balance).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from accord.connectors.quickbooks.mapping_base import (
    CENT,
    SALES,
    EntitySpec,
    MappingError,
    Reader,
    Writer,
    currency_code,
    money,
    number,
    plain_decimal,
    ref,
    ref_value,
    sales_lines,
    set_date,
    set_plain,
    set_ref,
    text,
    wire_date,
    without_gid,
)
from accord.connectors.quickbooks.mapping_base import date as read_date

TIME_LINK, EXPENSE_LINK = "TimeActivity", "Purchase"  # LinkedTxn.TxnType of billed time and expenses


# ------------------------------------------------------------------------------------------------
# invoice ↔ Invoice
# ------------------------------------------------------------------------------------------------

def _linked(line: Mapping[str, Any], kind: str) -> str | None:
    for link in line.get("LinkedTxn") or []:
        if isinstance(link, Mapping) and link.get("TxnType") == kind:
            return text(link.get("TxnId"))
    return None


def _read_line(line: Mapping[str, Any]) -> dict[str, Any]:
    detail = line.get(SALES) or {}
    qty = detail.get("Qty")
    out = {"description": without_gid(line.get("Description")),
           "quantity": plain_decimal(Decimal(str(qty))) if qty is not None else None,
           "unit_price": money("lines.unit_price", detail.get("UnitPrice")),
           "amount": money("lines.amount", line.get("Amount")),
           "time_entry": _linked(line, TIME_LINK), "expense": _linked(line, EXPENSE_LINK),
           "service_date": read_date("lines.service_date", detail.get("ServiceDate"))}
    return {k: v for k, v in out.items() if v is not None}


def _read_lines(wire: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    return [_read_line(x) for x in sales_lines(wire)] or None


def _service_dates(wire: Mapping[str, Any]) -> list[str]:
    dates = (read_date("lines.service_date", (x.get(SALES) or {}).get("ServiceDate")) for x in sales_lines(wire))
    return sorted(d for d in dates if d is not None)


def _read_period_start(wire: Mapping[str, Any]) -> str | None:
    return next(iter(_service_dates(wire)), None)


def _read_period_end(wire: Mapping[str, Any]) -> str | None:
    return next(reversed(_service_dates(wire)), None)


def _read_subtotal(wire: Mapping[str, Any]) -> str | None:
    lines = sales_lines(wire)
    if not lines:
        return None
    return str(sum((Decimal(str(x.get("Amount") or 0)) for x in lines), Decimal(0)).quantize(CENT))


def _is_void(wire: Mapping[str, Any]) -> bool:
    note = without_gid(wire.get("PrivateNote")) or ""
    return note.startswith("Voided") and Decimal(str(wire.get("TotalAmt") or 0)) == 0


def _read_status(wire: Mapping[str, Any]) -> str:
    if _is_void(wire):
        return "void"
    total = Decimal(str(wire.get("TotalAmt") or 0))
    balance = Decimal(str(wire.get("Balance") or 0))
    return "paid" if balance == 0 and total > 0 else "open"


def _write_line(index: int, line: Any) -> dict[str, Any]:
    if not isinstance(line, Mapping):
        raise MappingError(f"lines[{index}]", line, "send a dict with description/quantity/unit_price/amount")
    qty = number(f"lines[{index}].quantity", line.get("quantity"))
    price = number(f"lines[{index}].unit_price", line.get("unit_price"))
    amount = number(f"lines[{index}].amount", line.get("amount"))
    if amount is None and qty is not None and price is not None:
        amount = float((Decimal(str(qty)) * Decimal(str(price))).quantize(CENT))
    if amount is None:
        raise MappingError(f"lines[{index}].amount", None, "send the line amount (or quantity and unit_price)")
    served = wire_date(f"lines[{index}].service_date", line.get("service_date"))
    detail = {k: v for k, v in (("Qty", qty), ("UnitPrice", price), ("ServiceDate", served)) if v is not None}
    out: dict[str, Any] = {"DetailType": SALES, "Amount": amount, SALES: detail}
    if text(line.get("description")):
        out["Description"] = text(line.get("description"))
    links = [{"TxnId": target["value"], "TxnType": kind} for kind, target in (
        (TIME_LINK, _time_entry_ref(index, line)), (EXPENSE_LINK, ref(f"lines[{index}].expense", line.get("expense"))))
        if target is not None]
    if links:
        out["LinkedTxn"] = links
    return out


def _time_entry_ref(index: int, line: Mapping[str, Any]) -> dict[str, str] | None:
    """The line's time entry; the deprecated ``source`` is accepted as its alias."""
    time_entry = ref(f"lines[{index}].time_entry", line.get("time_entry"))
    source = ref(f"lines[{index}].source", line.get("source"))
    if time_entry is not None and source is not None and time_entry != source:
        raise MappingError(f"lines[{index}].source", line.get("source"),
                           f"source is a deprecated alias of time_entry and names another record than "
                           f"time_entry {line.get('time_entry')!r}: send time_entry only")
    return time_entry or source


def _write_lines(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    if not isinstance(value, list) or not value:
        raise MappingError("lines", value, "an invoice needs at least one line")
    out["Line"] = [_write_line(i, line) for i, line in enumerate(value)]


def _write_currency(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    code = currency_code(value)
    out["CurrencyRef"] = {"value": code} if code else None


INVOICE_READERS: dict[str, Reader] = {
    "account": lambda w: ref_value(w, "CustomerRef"), "project": lambda w: ref_value(w, "ProjectRef"),
    "number": lambda w: text(w.get("DocNumber")), "issue_date": lambda w: read_date("issue_date", w.get("TxnDate")),
    "due_date": lambda w: read_date("due_date", w.get("DueDate")), "currency": lambda w: ref_value(w, "CurrencyRef"),
    "lines": _read_lines, "period_start": _read_period_start, "period_end": _read_period_end,
    "subtotal": _read_subtotal,
    "tax": lambda w: money("tax", (w.get("TxnTaxDetail") or {}).get("TotalTax")),
    "total": lambda w: money("total", w.get("TotalAmt")), "balance": lambda w: money("balance", w.get("Balance")),
    "status": _read_status,
}

INVOICE = EntitySpec(
    canonical="invoice", qbo="Invoice", path="invoice", cdc="Invoice", name_list=False, gid_field="PrivateNote",
    readers=INVOICE_READERS,
    writers={"account": set_ref("CustomerRef", "account"), "project": set_ref("ProjectRef", "project"),
             "number": set_plain("DocNumber"), "issue_date": set_date("TxnDate", "issue_date"),
             "due_date": set_date("DueDate", "due_date"), "currency": _write_currency, "lines": _write_lines})


# ------------------------------------------------------------------------------------------------
# payment ↔ Payment
# ------------------------------------------------------------------------------------------------

def _read_invoice(wire: Mapping[str, Any]) -> str | None:
    for line in wire.get("Line") or []:
        if isinstance(line, Mapping) and (found := _linked(line, "Invoice")):
            return found
    return None


def _payment_line(out: dict[str, Any], current: Mapping[str, Any], field: str, value: Any) -> list[dict[str, Any]]:
    if "Line" not in out:
        existing = [dict(x) for x in current.get("Line") or []]
        if len(existing) > 1:
            raise MappingError(field, value, f"the Payment is applied to {len(existing)} invoices; Accord maps "
                                             "payments of one invoice only: edit it in QuickBooks")
        out["Line"] = existing
    lines: list[dict[str, Any]] = out["Line"]
    return lines


def _write_applied(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    lines = _payment_line(out, current, "invoice", value)
    invoice = ref("invoice", value)
    if invoice is None:
        lines.clear()  # an unapplied payment (a credit on the customer)
        return
    amount = out.get("TotalAmt", current.get("TotalAmt"))
    lines[:] = [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["value"], "TxnType": "Invoice"}]}]


def _write_payment_amount(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    amount = number("amount", value)
    if amount is None or amount <= 0:
        raise MappingError("amount", value, "send the amount received as a positive decimal")
    out["TotalAmt"] = amount
    for line in _payment_line(out, current, "amount", value):
        line["Amount"] = amount


PAYMENT_WRITERS: dict[str, Writer] = {
    "account": set_ref("CustomerRef", "account"), "invoice": _write_applied, "amount": _write_payment_amount,
    "paid_date": set_date("TxnDate", "paid_date"), "reference": set_plain("PaymentRefNum"),
}

PAYMENT = EntitySpec(
    canonical="payment", qbo="Payment", path="payment", cdc="Payment", name_list=False, gid_field="PrivateNote",
    readers={"account": lambda w: ref_value(w, "CustomerRef"), "invoice": _read_invoice,
             "paid_date": lambda w: read_date("paid_date", w.get("TxnDate")),
             "amount": lambda w: money("amount", w.get("TotalAmt")), "currency": lambda w: ref_value(w, "CurrencyRef"),
             "reference": lambda w: text(w.get("PaymentRefNum"))},
    writers=PAYMENT_WRITERS, needs_current=frozenset({"invoice", "amount"}))

BILLING_SPECS = (INVOICE, PAYMENT)
