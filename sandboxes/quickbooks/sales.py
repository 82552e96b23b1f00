"""Sandbox rules shared by QBO's sales forms (Invoice and Estimate), and the Estimate's own rule.

* Both name a live customer (``CustomerRef``, required: 2020; a missing record is refused earlier with
  2500 by ``tables.refs``) and optionally a project of that customer (``ProjectRef``, else 2500), and
  take the customer's currency (``CurrencyRef`` is copied from it on every write).
* Each SalesItemLineDetail line needs an Amount (2020) that equals Qty × UnitPrice when both are given
  (6070); a line without ItemRef books to the "Services" item. Lines are numbered from 1, and the
  stored Line list ends with a SubTotalLineDetail line holding their sum.
* Estimate: at least one sales line; TotalAmt is the sum of the lines; TxnStatus is Pending (the
  default), Accepted, Closed or Rejected (2010 otherwise); TxnDate, ExpirationDate and AcceptedDate are
  ``YYYY-MM-DD`` (2010); CustomerMemo is ``{"value": text}`` of at most 1000 characters (2010); TxnDate
  defaults to today and DocNumber, when absent, is kept from the previous version or is the next
  estimate number (1001, 1002, ...: apart from the invoices' numbers; a refused create uses none). An
  estimate is a transaction: it is deleted with ``operation=delete``, and nothing else changes when it
  is (the sandbox does not convert estimates into invoices, so none is ever linked to one).

The functions run inside ``store.Realm`` writes (the caller holds ``state.lock``).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from accord.connectors.quickbooks.faults import QboFault
from accord.sandboxes.quickbooks.rulebase import (
    CENT,
    SALES_LINE,
    amount,
    as_number,
    bad_ref,
    invalid,
    live,
    ref_id,
    required,
    today,
)
from accord.sandboxes.quickbooks.tables import HOME_CURRENCY

if TYPE_CHECKING:
    from accord.sandboxes.quickbooks.store import Realm

ESTIMATE_STATUSES = ("Pending", "Accepted", "Closed", "Rejected")
MEMO_MAX = 1000  # characters of CustomerMemo QBO prints on the form


def customer_of(realm: Realm, wire: Mapping[str, Any], entity: str, why: str) -> dict[str, Any]:
    """The live Customer the form names, after checking its ProjectRef belongs to that customer."""
    customer = live(realm, "Customer", ref_id(wire, "CustomerRef"))
    if customer is None:
        raise required("CustomerRef", entity, why)
    project = ref_id(wire, "ProjectRef")
    if project is not None:
        found = live(realm, "Customer", project)
        if found is None or not found.get("Job") or ref_id(found, "ParentRef") != customer["Id"]:
            raise bad_ref("ProjectRef", project, f"project of customer {customer['Id']}")
    return customer


def currency_of(customer: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(customer.get("CurrencyRef") or HOME_CURRENCY)


def _services_item(realm: Realm) -> str | None:
    return next((r.wire["Id"] for r in realm.tables["Item"].values()
                 if not r.deleted and r.wire.get("Name") == "Services"), None)


def sales_line(realm: Realm, line: dict[str, Any], number: int, entity: str) -> Decimal:
    """Check and complete one SalesItemLineDetail line (ItemRef, Amount, Id, LineNum); its amount."""
    detail = line.setdefault(SALES_LINE, {})
    if ref_id(detail, "ItemRef") is None:
        services = _services_item(realm)
        if services is None:
            raise required("Line.SalesItemLineDetail.ItemRef", entity)
        detail["ItemRef"] = {"value": services, "name": "Services"}
    elif live(realm, "Item", ref_id(detail, "ItemRef")) is None:
        raise bad_ref("Line.SalesItemLineDetail.ItemRef", ref_id(detail, "ItemRef"), "Item")
    if line.get("Amount") is None:
        raise required("Line.Amount", entity)
    line_amount = amount(line["Amount"], "Line.Amount")
    if detail.get("Qty") is not None and detail.get("UnitPrice") is not None:
        expected = (Decimal(str(detail["Qty"])) * Decimal(str(detail["UnitPrice"]))).quantize(CENT)
        if expected != line_amount:
            raise QboFault(400, "6070", "Amount is not equal to UnitPrice * Qty",
                           f"Amount is not equal to UnitPrice * Qty. Supplied value:{line_amount} on line {number}",
                           element="Line.Amount")
    line.update(Id=str(number), LineNum=number, Amount=as_number(line_amount))
    return line_amount


def sales_lines(wire: Mapping[str, Any], entity: str, why: str) -> list[dict[str, Any]]:
    """The form's SalesItemLineDetail lines (other detail types are dropped); at least one."""
    lines = wire.get("Line")
    if lines is not None and not isinstance(lines, list):
        raise invalid("Line", lines, "Line is a list of lines")
    sales = [x for x in lines or [] if isinstance(x, dict) and x.get("DetailType") == SALES_LINE]
    if not sales:
        raise required("Line", entity, why)
    return sales


def with_subtotal(sales: list[dict[str, Any]], total: Decimal) -> list[dict[str, Any]]:
    return [*sales, {"Amount": as_number(total), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}]


# ------------------------------------------------------------------------------------------------
# Estimate
# ------------------------------------------------------------------------------------------------

def _check_date(wire: Mapping[str, Any], name: str) -> None:
    value = wire.get(name)
    if value is None:
        return
    try:
        dt.date.fromisoformat(str(value))
    except ValueError:
        raise invalid(name, value, "send a date as YYYY-MM-DD") from None


def _check_memo(wire: Mapping[str, Any]) -> None:
    memo = wire.get("CustomerMemo")
    if memo is None:
        return
    if not isinstance(memo, Mapping) or not isinstance(memo.get("value"), str):
        raise invalid("CustomerMemo", memo, "send {\"value\": \"<text printed on the estimate>\"}")
    if len(memo["value"]) > MEMO_MAX:
        raise invalid("CustomerMemo", memo["value"][:40] + "...", f"a memo is at most {MEMO_MAX} characters")


def estimate(realm: Realm, wire: dict[str, Any], old: Mapping[str, Any] | None, now: float) -> None:
    """Validate and complete an Estimate (a create when ``old`` is None)."""
    customer = customer_of(realm, wire, "Estimate", "an estimate is made out to a customer")
    status = wire.get("TxnStatus")
    if status not in ESTIMATE_STATUSES:
        raise invalid("TxnStatus", status, f"use one of {', '.join(ESTIMATE_STATUSES)}")
    for name in ("TxnDate", "ExpirationDate", "AcceptedDate"):
        _check_date(wire, name)
    _check_memo(wire)
    sales = sales_lines(wire, "Estimate", "an estimate has at least one SalesItemLineDetail line")
    total = sum((sales_line(realm, line, n, "Estimate") for n, line in enumerate(sales, 1)), Decimal(0))
    wire.update(Line=with_subtotal(sales, total), TotalAmt=as_number(total), CurrencyRef=currency_of(customer))
    wire.setdefault("TxnDate", today(now))
    if not wire.get("DocNumber"):
        wire["DocNumber"] = (old or {}).get("DocNumber") or str(1001 + len(realm.tables["Estimate"]))
