"""The sandbox's billing run: one invoice for a project's unbilled billable time, as a bookkeeper makes
it in QuickBooks ("add billable time to the invoice").

Each Billable TimeActivity of the project (``CustomerRef`` or ``ProjectRef`` is the project) becomes one
sales line: Qty = hours (to the cent of an hour), UnitPrice = its HourlyRate (else the employee's
BillRate, else the item's UnitPrice), Amount = Qty × UnitPrice, ItemRef = its item, ServiceDate = its
date, and a LinkedTxn to the activity. The invoice bills the project's parent customer with
``ProjectRef`` = the project; creating it marks the activities HasBeenBilled (``rules``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from accord.connectors.quickbooks.rules import CENT, SALES_LINE, as_number, bad_ref, live, ref_id

if TYPE_CHECKING:
    from accord.connectors.quickbooks.store import Realm

_MARKER = re.compile(r"^accord:\S+\s*$")


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


def _line(realm: Realm, wire: dict[str, Any]) -> dict[str, Any]:
    hours, rate = _hours(wire), _rate(realm, wire)
    employee = live(realm, "Employee", ref_id(wire, "EmployeeRef")) or {}
    notes = "\n".join(x for x in str(wire.get("Description") or "").splitlines() if not _MARKER.match(x)).strip()
    label = ", ".join(p for p in (employee.get("DisplayName"), wire.get("TxnDate"), notes) if p)
    detail: dict[str, Any] = {"Qty": float(hours), "UnitPrice": float(rate), "ServiceDate": wire.get("TxnDate")}
    if ref_id(wire, "ItemRef") is not None:
        detail["ItemRef"] = {"value": ref_id(wire, "ItemRef")}
    return {"DetailType": SALES_LINE, "Amount": as_number(hours * rate), "Description": label, SALES_LINE: detail,
            "LinkedTxn": [{"TxnId": wire["Id"], "TxnType": "TimeActivity"}]}


def unbilled_invoice(realm: Realm, project_id: str) -> dict[str, Any] | None:
    """The Invoice body billing every Billable activity of ``project_id`` (``None``: nothing to bill)."""
    project = live(realm, "Customer", project_id)
    if project is None or ref_id(project, "ParentRef") is None:
        raise bad_ref("ProjectRef", project_id, "project (a sub-customer)")
    activities = sorted(
        (row.wire for row in realm.tables["TimeActivity"].values()
         if not row.deleted and row.wire.get("BillableStatus") == "Billable"
         and project_id in (ref_id(row.wire, "CustomerRef"), ref_id(row.wire, "ProjectRef"))),
        key=lambda w: (str(w.get("TxnDate")), int(w["Id"])))
    if not activities:
        return None
    return {"CustomerRef": {"value": ref_id(project, "ParentRef")}, "ProjectRef": {"value": project_id},
            "Line": [_line(realm, wire) for wire in activities]}
