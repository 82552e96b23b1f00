"""The sandbox's billing run: one invoice for a project's unbilled billable time and expenses, as a
bookkeeper makes it in QuickBooks ("add billable time and expenses to the invoice").

Each Billable TimeActivity of the project (``CustomerRef`` or ``ProjectRef`` is the project) becomes one
sales line: Qty = hours (to the cent of an hour), UnitPrice = its HourlyRate (else the employee's
BillRate, else the item's UnitPrice), Amount = Qty × UnitPrice, ItemRef = its item (with the item's
Name, which QBO shows in the product/service column), ServiceDate = its date, Description = the
employee, the date and the activity's notes, and a LinkedTxn to the activity.

Each Purchase expense line with BillableStatus "Billable" and ``CustomerRef`` = the project becomes one
sales line too: Qty 1, UnitPrice = Amount = the expense line's amount, ServiceDate = the purchase's
TxnDate, Description = its PrivateNote without the ``accord:`` marker (else the line's Description, else
the expense account's name) and ``LinkedTxn {"TxnId": <purchase Id>, "TxnType": "Purchase",
"TxnLineId": <line Id>}``. The reference (api-wire-formats §4) does not document how QBO links a
billable expense to an invoice line, so the sandbox uses TxnType "Purchase" (see ``billed``).

Time lines come first, ordered by (date, Id), then expense lines, ordered by (date, purchase Id, line
Id). The invoice bills the project's parent customer with ``ProjectRef`` = the project; creating it
marks the activities and the expense lines HasBeenBilled (``billed.mark``), so a second run finds
nothing to bill.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from accord.sandboxes.quickbooks.rulebase import (
    BILLABLE,
    CENT,
    EXPENSE_LINE,
    SALES_LINE,
    amount,
    as_number,
    bad_ref,
    live,
    ref_id,
)

if TYPE_CHECKING:
    from accord.sandboxes.quickbooks.store import Realm

_MARKER = re.compile(r"^accord:\S+\s*$")


def _without_marker(text: Any) -> str:
    return "\n".join(x for x in str(text or "").splitlines() if not _MARKER.match(x)).strip()


def _hours(wire: dict[str, Any]) -> Decimal:
    minutes = Decimal(str(wire.get("Hours") or 0)) * 60 + Decimal(str(wire.get("Minutes") or 0))
    return (minutes / 60).quantize(CENT)


def _rate(realm: Realm, wire: dict[str, Any]) -> Decimal:
    employee = live(realm, "Employee", ref_id(wire, "EmployeeRef")) or {}
    item = live(realm, "Item", ref_id(wire, "ItemRef")) or {}
    for value in (wire.get("HourlyRate"), employee.get("BillRate"), item.get("UnitPrice")):
        if value:
            return Decimal(str(value)).quantize(CENT)
    return Decimal(0)


def _time_line(realm: Realm, wire: dict[str, Any]) -> dict[str, Any]:
    hours, rate = _hours(wire), _rate(realm, wire)
    employee = live(realm, "Employee", ref_id(wire, "EmployeeRef")) or {}
    label = ", ".join(p for p in (employee.get("DisplayName"), wire.get("TxnDate"),
                                  _without_marker(wire.get("Description"))) if p)
    detail: dict[str, Any] = {"Qty": float(hours), "UnitPrice": float(rate), "ServiceDate": wire.get("TxnDate")}
    item = live(realm, "Item", ref_id(wire, "ItemRef"))
    if item is not None:
        detail["ItemRef"] = {"value": item["Id"], "name": item.get("Name")}
    return {"DetailType": SALES_LINE, "Amount": as_number(hours * rate), "Description": label, SALES_LINE: detail,
            "LinkedTxn": [{"TxnId": wire["Id"], "TxnType": "TimeActivity"}]}


def _expense_line(realm: Realm, purchase: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
    cost = amount(line.get("Amount"), "Line.Amount")
    account = live(realm, "Account", ref_id(line.get(EXPENSE_LINE) or {}, "AccountRef")) or {}
    label = (_without_marker(purchase.get("PrivateNote")) or str(line.get("Description") or "").strip()
             or str(account.get("Name") or "Expense"))
    detail = {"Qty": 1, "UnitPrice": as_number(cost), "ServiceDate": purchase.get("TxnDate")}
    return {"DetailType": SALES_LINE, "Amount": as_number(cost), "Description": label, SALES_LINE: detail,
            "LinkedTxn": [{"TxnId": purchase["Id"], "TxnType": "Purchase", "TxnLineId": str(line.get("Id"))}]}


def _unbilled_time(realm: Realm, project_id: str) -> list[dict[str, Any]]:
    return sorted(
        (row.wire for row in realm.tables["TimeActivity"].values()
         if not row.deleted and row.wire.get("BillableStatus") == BILLABLE
         and project_id in (ref_id(row.wire, "CustomerRef"), ref_id(row.wire, "ProjectRef"))),
        key=lambda w: (str(w.get("TxnDate")), int(w["Id"])))


def _unbilled_expenses(realm: Realm, project_id: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(purchase, expense line) of every Billable expense line charged to the project."""
    found = [(row.wire, line) for row in realm.tables["Purchase"].values() if not row.deleted
             for line in row.wire.get("Line") or [] if line.get("DetailType") == EXPENSE_LINE
             and (line.get(EXPENSE_LINE) or {}).get("BillableStatus") == BILLABLE
             and ref_id(line.get(EXPENSE_LINE) or {}, "CustomerRef") == project_id]
    return sorted(found, key=lambda pl: (str(pl[0].get("TxnDate")), int(pl[0]["Id"]), int(pl[1].get("Id") or 0)))


def unbilled_invoice(realm: Realm, project_id: str) -> dict[str, Any] | None:
    """The Invoice body billing every Billable activity and expense line of ``project_id`` (``None``:
    nothing to bill)."""
    project = live(realm, "Customer", project_id)
    if project is None or ref_id(project, "ParentRef") is None:
        raise bad_ref("ProjectRef", project_id, "project (a sub-customer)")
    lines = [_time_line(realm, wire) for wire in _unbilled_time(realm, project_id)]
    lines += [_expense_line(realm, purchase, line) for purchase, line in _unbilled_expenses(realm, project_id)]
    if not lines:
        return None
    return {"CustomerRef": {"value": ref_id(project, "ParentRef")}, "ProjectRef": {"value": project_id},
            "Line": lines}
