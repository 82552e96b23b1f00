"""PSA-side entities in QuickBooks: projects, resources, tasks, time and expenses.

===========  =====================================  ============================================================
canonical    QuickBooks                             fields (← read, → write; references are native QBO ids)
===========  =====================================  ============================================================
project      Customer, ``Job: true`` (a sub-        account ↔ ParentRef (the account's Customer Id; writing it
             customer; QBO projects also carry      also sends ``Job: true``); name ↔ DisplayName; status ↔
             ``IsProject: true``)                   Active; currency ← CurrencyRef (QBO copies the parent's).
                                                    gid: line in Notes. Not held: code, dates, billing model,
                                                    contract value, manager, opportunity, legal entity.
resource     Employee                               name ↔ DisplayName (→ also GivenName/FamilyName, split at
                                                    the last space); email ↔ PrimaryEmailAddr.Address;
                                                    bill_rate ↔ BillRate; cost_rate ↔ CostRate; active ↔
                                                    Active. gid: EmployeeNumber (Employee has no notes field).
                                                    Not held: role, currency, legal entity.
task         Item, ``Type: "Service"``, named       name ↔ Name: "<project DisplayName> - <name>" (item
             after its project (``mapping_task``)   names are company-wide: 6240 on a duplicate; ≤ 100
                                                    chars, ':' replaced); read back without the prefix.
                                                    project ↔ marker line ``project:<Customer Id> <prefix>``
                                                    in PurchaseDesc (writing name/project reads the project
                                                    once per write call; no project → MappingError); code ↔
                                                    Sku. Created with the configured income account. gid:
                                                    line in PurchaseDesc (internal, never printed). Not
                                                    held: parent, billable (QBO items have no such flag),
                                                    budget_hours.
time_entry   TimeActivity, ``NameOf: "Employee"``   project ↔ CustomerRef; task ↔ ItemRef; resource ↔
                                                    EmployeeRef; work_date ↔ TxnDate; hours ↔ Hours + Minutes
                                                    (or EndTime - StartTime - BreakHours); bill_rate ↔
                                                    HourlyRate; billable ↔ BillableStatus ("Billable" and
                                                    "HasBeenBilled" are billable; writing true keeps
                                                    HasBeenBilled); locked ← BillableStatus ==
                                                    "HasBeenBilled"; notes ↔ Description. gid: a line in
                                                    Description (TimeActivity has no private note; the line
                                                    is left out of ``notes``). A transaction: deletes are real.
                                                    Not held: approval (only approved time is posted),
                                                    currency, invoice (the invoice line links the activity).
expense      Purchase, ``PaymentType: "Cash"``,     project ↔ Line[0].AccountBasedExpenseLineDetail.
             one AccountBasedExpenseLineDetail      CustomerRef; resource ↔ EntityRef (type "Employee");
             line on the configured expense         spent_date ↔ TxnDate; amount ← TotalAmt, → Line[0].Amount;
             account, paid from the configured      billable ↔ line BillableStatus; locked ← "HasBeenBilled";
             bank account                           category ↔ PrivateNote; currency ↔ CurrencyRef (the
                                                    Purchase is in the expense's currency; none sent: QBO
                                                    books it in the home currency). gid: line in
                                                    PrivateNote. Not held: approval, invoice.
===========  =====================================  ============================================================
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from accord.connectors.quickbooks.mapping_base import (
    EntitySpec,
    MappingError,
    Reader,
    Writer,
    is_project,
    money,
    number,
    plain_decimal,
    reads_active,
    ref,
    ref_value,
    set_bool,
    set_date,
    set_note_keeping_gid,
    set_number,
    set_ref,
    text,
    without_gid,
)
from accord.connectors.quickbooks.mapping_base import date as read_date
from accord.connectors.quickbooks.mapping_task import TASK

BILLED = "HasBeenBilled"


def _status_reader(wire: Mapping[str, Any]) -> str:
    return "active" if reads_active(wire) else "inactive"


def _write_status(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    if value not in ("active", "inactive"):
        raise MappingError("status", value, "use \"active\" or \"inactive\"")
    out["Active"] = value == "active"


def _required_name(qbo: str, field: str) -> Writer:
    def write(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
        name = text(value)
        if name is None:
            raise MappingError(field, value, f"QuickBooks requires {qbo}; send a non-empty {field}")
        out[qbo] = name
    return write


# ------------------------------------------------------------------------------------------------
# project ↔ Customer (Job)
# ------------------------------------------------------------------------------------------------

def _write_parent(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    parent = ref("account", value)
    if parent is None:
        raise MappingError("account", value, "a QuickBooks project is a sub-customer: send its account's Id")
    out.update(ParentRef=parent, Job=True)


PROJECT = EntitySpec(
    canonical="project", qbo="Customer", path="customer", cdc="Customer", name_list=True, gid_field="Notes",
    readers={"account": lambda w: ref_value(w, "ParentRef"), "name": lambda w: text(w.get("DisplayName")),
             "status": _status_reader, "currency": lambda w: ref_value(w, "CurrencyRef")},
    writers={"account": _write_parent, "name": _required_name("DisplayName", "name"), "status": _write_status},
    where="Job = true", accepts=is_project, on_create=lambda _: {"Job": True}, active_field="status")


# ------------------------------------------------------------------------------------------------
# resource ↔ Employee
# ------------------------------------------------------------------------------------------------

def _read_person(wire: Mapping[str, Any]) -> str | None:
    return text(wire.get("DisplayName")) or text(" ".join(
        p for p in (text(wire.get("GivenName")), text(wire.get("FamilyName"))) if p))


def _write_person(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    name = text(value)
    if name is None:
        raise MappingError("name", value, "QuickBooks requires an Employee name; send a non-empty name")
    given, _space, family = name.rpartition(" ")
    out.update(DisplayName=name, GivenName=given or None, FamilyName=family)


def _write_email(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    address = text(value)
    if address is not None and "@" not in address:
        raise MappingError("email", value, "send an email address such as \"kim@firm.example\"")
    out["PrimaryEmailAddr"] = {"Address": address} if address else None


RESOURCE = EntitySpec(
    canonical="resource", qbo="Employee", path="employee", cdc="Employee", name_list=True,
    gid_field="EmployeeNumber",
    readers={"name": _read_person, "email": lambda w: text((w.get("PrimaryEmailAddr") or {}).get("Address")),
             "bill_rate": lambda w: money("bill_rate", w.get("BillRate")),
             "cost_rate": lambda w: money("cost_rate", w.get("CostRate")), "active": reads_active},
    writers={"name": _write_person, "email": _write_email, "bill_rate": set_number("BillRate", "bill_rate"),
             "cost_rate": set_number("CostRate", "cost_rate"), "active": set_bool("Active", "active")},
    active_field="active")


# ------------------------------------------------------------------------------------------------
# time_entry ↔ TimeActivity
# ------------------------------------------------------------------------------------------------

def _minutes_between(wire: Mapping[str, Any]) -> Decimal | None:
    try:
        start = dt.datetime.fromisoformat(str(wire["StartTime"]))
        end = dt.datetime.fromisoformat(str(wire["EndTime"]))
    except (KeyError, ValueError):
        return None
    pause = Decimal(str(wire.get("BreakHours") or 0)) * 60 + Decimal(str(wire.get("BreakMinutes") or 0))
    return Decimal(int((end - start).total_seconds()) // 60) - pause


def _read_hours(wire: Mapping[str, Any]) -> str | None:
    if wire.get("Hours") is None and wire.get("Minutes") is None:
        minutes = _minutes_between(wire)
    else:
        try:
            minutes = Decimal(str(wire.get("Hours") or 0)) * 60 + Decimal(str(wire.get("Minutes") or 0))
        except ArithmeticError:
            raise MappingError("hours", (wire.get("Hours"), wire.get("Minutes")),
                               "Hours and Minutes must be whole numbers") from None
    if minutes is None:
        return None
    return plain_decimal((minutes / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _write_hours(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    hours = number("hours", value)
    if hours is None or hours < 0 or hours > 24:
        raise MappingError("hours", value, "send the hours worked on one day, between 0 and 24")
    minutes = int((Decimal(str(hours)) * 60).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    out.update(Hours=minutes // 60, Minutes=minutes % 60)


def _read_billable(wire: Mapping[str, Any]) -> bool:
    return wire.get("BillableStatus") in ("Billable", BILLED)


def _write_billable(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    if not isinstance(value, bool):
        raise MappingError("billable", value, "send true or false")
    if value and current.get("BillableStatus") == BILLED:
        return  # already invoiced: it stays billed
    out["BillableStatus"] = "Billable" if value else "NotBillable"


def _write_employee(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    out.update(EmployeeRef=ref("resource", value), NameOf="Employee")


TIME_ENTRY = EntitySpec(
    canonical="time_entry", qbo="TimeActivity", path="timeactivity", cdc="TimeActivity", name_list=False,
    gid_field="Description",
    readers={"project": lambda w: ref_value(w, "CustomerRef"), "task": lambda w: ref_value(w, "ItemRef"),
             "resource": lambda w: ref_value(w, "EmployeeRef"),
             "work_date": lambda w: read_date("work_date", w.get("TxnDate")), "hours": _read_hours,
             "billable": _read_billable, "bill_rate": lambda w: money("bill_rate", w.get("HourlyRate")),
             "notes": lambda w: without_gid(w.get("Description")),
             "locked": lambda w: w.get("BillableStatus") == BILLED},
    writers={"project": set_ref("CustomerRef", "project"), "task": set_ref("ItemRef", "task"),
             "resource": _write_employee, "work_date": set_date("TxnDate", "work_date"), "hours": _write_hours,
             "billable": _write_billable, "bill_rate": set_number("HourlyRate", "bill_rate"),
             "notes": set_note_keeping_gid("Description")},
    needs_current=frozenset({"billable", "notes"}), on_create=lambda _: {"NameOf": "Employee"})


# ------------------------------------------------------------------------------------------------
# expense ↔ Purchase
# ------------------------------------------------------------------------------------------------

DETAIL = "AccountBasedExpenseLineDetail"


def _first_detail(wire: Mapping[str, Any]) -> Mapping[str, Any]:
    for line in wire.get("Line") or []:
        if isinstance(line, Mapping) and line.get("DetailType") == DETAIL:
            return line.get(DETAIL) or {}
    return {}


def _line(out: dict[str, Any], current: Mapping[str, Any], field: str, value: Any) -> dict[str, Any]:
    """The single expense line being written, started from the current one (QBO replaces ``Line``)."""
    if "Line" not in out:
        lines = [copy.deepcopy(dict(x)) for x in current.get("Line") or [] if x.get("DetailType") == DETAIL]
        if len(lines) != 1:
            raise MappingError(field, value, f"the Purchase has {len(lines)} expense lines; Accord maps "
                                             "single-line expenses only: split it in QuickBooks")
        out["Line"] = lines
    line: dict[str, Any] = out["Line"][0]
    line.setdefault(DETAIL, {})
    return line


def _write_expense_project(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    _line(out, current, "project", value)[DETAIL]["CustomerRef"] = ref("project", value)


def _write_amount(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    amount = number("amount", value)
    if amount is None or amount < 0:
        raise MappingError("amount", value, "send the expense amount as a positive decimal")
    _line(out, current, "amount", value)["Amount"] = amount


def _write_expense_billable(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    if not isinstance(value, bool):
        raise MappingError("billable", value, "send true or false")
    detail = _line(out, current, "billable", value)[DETAIL]
    if not (value and detail.get("BillableStatus") == BILLED):
        detail["BillableStatus"] = "Billable" if value else "NotBillable"


def _write_expense_currency(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    """The Purchase's ``CurrencyRef``: its amounts are in the expense's currency (the PSA client's), not in
    the home currency QBO books a Purchase in when none is sent. A transaction always has a currency:
    writing none keeps the one it has (the home currency, on a create)."""
    code = text(value)
    if code is None:
        return
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise MappingError("currency", value, "send an ISO 4217 code such as \"USD\"")
    out["CurrencyRef"] = {"value": code}


def _write_spender(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    employee = ref("resource", value)
    out["EntityRef"] = {**employee, "type": "Employee"} if employee else None


def _read_spender(wire: Mapping[str, Any]) -> str | None:
    entity = wire.get("EntityRef") or {}
    return text(entity.get("value")) if entity.get("type", "Employee") == "Employee" else None


EXPENSE_READERS: dict[str, Reader] = {
    "project": lambda w: text((_first_detail(w).get("CustomerRef") or {}).get("value")),
    "resource": _read_spender, "spent_date": lambda w: read_date("spent_date", w.get("TxnDate")),
    "amount": lambda w: money("amount", w.get("TotalAmt")), "currency": lambda w: ref_value(w, "CurrencyRef"),
    "category": lambda w: without_gid(w.get("PrivateNote")),
    "billable": lambda w: _first_detail(w).get("BillableStatus") in ("Billable", BILLED),
    "locked": lambda w: _first_detail(w).get("BillableStatus") == BILLED,
}

EXPENSE = EntitySpec(
    canonical="expense", qbo="Purchase", path="purchase", cdc="Purchase", name_list=False, gid_field="PrivateNote",
    readers=EXPENSE_READERS,
    writers={"project": _write_expense_project, "resource": _write_spender,
             "spent_date": set_date("TxnDate", "spent_date"), "amount": _write_amount,
             "category": set_note_keeping_gid("PrivateNote"), "billable": _write_expense_billable,
             "currency": _write_expense_currency},
    needs_current=frozenset({"project", "amount", "billable", "category"}),
    on_create=lambda accounts: {
        "PaymentType": "Cash", "AccountRef": {"value": accounts["payment_account"]},
        "Line": [{"DetailType": DETAIL, "Amount": 0,
                  DETAIL: {"AccountRef": {"value": accounts["expense_account"]}, "BillableStatus": "NotBillable"}}]})

WORK_SPECS = (PROJECT, RESOURCE, TASK, TIME_ENTRY, EXPENSE)  # TASK: see ``mapping_task``
