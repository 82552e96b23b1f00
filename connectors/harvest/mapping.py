"""Harvest v2 wire shapes ↔ Accord canonical fields, one ``EntitySpec`` per canonical entity.

References to other records are the referenced record's plain Harvest id (the daemon turns native ids
into global ids on read and back on write through its xref; a task's id is ``"<project_id>:<task_id>"``). Decimals travel as strings, dates as
``YYYY-MM-DD``. The version of a record is ``updated_at`` in epoch milliseconds.

=========== ========================= ======================================================= ====================
canonical   Harvest                   fields                                                  Accord gid lives in
=========== ========================= ======================================================= ====================
account     client                    name; billing_address.street ← ``address`` (free text);  line ``accord:<gid>``
                                      currency; status ← is_active                             in ``address``
contact     contact                   account ← client.id; first_name; last_name; email;      ``fax`` (no notes
                                      phone ← phone_office; title                              field; fax is unused)
project     project                   account ← client.id; name; code; status ← is_active;    line in ``notes``
                                      start_date ← starts_on; end_date ← ends_on; billing_model
                                      ("fixed_fee" | "time_and_materials" | "non_billable");
                                      contract_value ← fee; currency ← client.currency (read)
task        task assignment + task    id ``<project_id>:<task_id>``; project; name ← task.name;  none: the natural key
                                      billable; budget_hours ← budget                          (project, task name)
resource    user                      name ← first_name + last_name; email; role ← roles[0];  none: the natural key
                                      cost_rate; bill_rate ← default_hourly_rate; active       is the email
time_entry  time entry                project; task ← ``<project_id>:<task_id>``;      ``external_reference``
                                      resource ← user.id; work_date ← spent_date; hours;       ``.id`` (group_id
                                      billable; bill_rate ← billable_rate; currency ←          "accord")
                                      client.currency; notes; approval ← is_closed ("approved"
                                      | "draft"); locked ← is_locked; invoice ← invoice.id
expense     expense                   project; resource ← user.id; spent_date; amount ←        line in ``notes``
                                      total_cost; currency; category ← expense_category.name;
                                      billable; approval; locked; invoice
invoice     invoice                   see ``billing``                                          line in ``notes``
payment     invoice payment           see ``billing`` (id ``<invoice_id>:<payment_id>``)       line in ``notes``
=========== ========================= ======================================================= ====================

Harvest tasks are account-wide; the canonical ``task`` is a task *assignment* (a task on a project),
identified by ``"<project_id>:<task_id>"`` (stable, and what a time entry needs to post). Read-only in
Harvest (never written): currency, approval, locked, invoice, billable and bill_rate of time entries.
The converters and ``EntitySpec`` live in ``convert`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accord.connectors.base import SourceRecord, mapped_entity
from accord.connectors.harvest.billing import INVOICE, PAYMENT
from accord.connectors.harvest.convert import (
    SYSTEM,
    EntitySpec,
    MappingError,
    Reader,
    Writer,
    date,
    dec,
    find_marker,
    format_time,
    gid_body,
    gid_of,
    int_id,
    number,
    parse_time_ms,
    projection,
    ref,
    ref_writer,
    setter,
    strip_marker,
    text,
    to_canonical,
    to_wire,
    unref,
    with_marker,
)

__all__ = [
    "ENTITIES", "INVOICE", "PAYMENT", "SYSTEM", "EntitySpec", "HarvestMapper", "MappingError", "date", "dec", "find_marker", "format_time", "gid_body",
    "gid_of", "number", "parse_time_ms", "projection", "ref", "spec_for", "strip_marker", "to_canonical",
    "to_wire", "unref", "with_marker",
]


# -- entity-specific readers and writers ---------------------------------------------------------------

def _status(entity: str) -> tuple[Reader, Writer]:
    def read(w: Mapping[str, Any]) -> str:
        return "active" if w.get("is_active", True) else "inactive"

    def write(value: Any, out: dict[str, Any]) -> None:
        if value not in ("active", "inactive"):
            raise MappingError(entity, "status", value, "expected \"active\" or \"inactive\"")
        out["is_active"] = value == "active"
    return read, write


def _address_write(value: Any, out: dict[str, Any]) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise MappingError("account", "billing_address", value, "expected a map with street, city, state, "
                                                                "postal_code")
    parts = [value.get(k) for k in ("street", "city", "state", "postal_code")] if value else []
    city_line = " ".join(str(p) for p in parts[1:] if p)
    out["address"] = "\n".join(str(p) for p in (parts[0] if parts else None, city_line) if p) or None


def _address_read(w: Mapping[str, Any]) -> dict[str, Any] | None:
    street = strip_marker(w.get("address"))
    return {"street": street} if street else None


def _approval(w: Mapping[str, Any]) -> str:
    return "approved" if w.get("is_closed") else "draft"


def _billing_model(w: Mapping[str, Any]) -> str:
    if not w.get("is_billable", True):
        return "non_billable"
    return "fixed_fee" if w.get("is_fixed_fee") else "time_and_materials"


def _billing_model_write(value: Any, out: dict[str, Any]) -> None:
    # Harvest projects are fixed fee, time and materials or non-billable; a retainer is a way of invoicing
    # (retainer funds on invoices), so its project bills time and materials (and reads back as such)
    models = {"fixed_fee": (True, True), "time_and_materials": (True, False), "non_billable": (False, False),
              "retainer": (True, False)}
    if value not in models:
        raise MappingError("project", "billing_model", value, f"expected one of {sorted(models)}")
    out["is_billable"], out["is_fixed_fee"] = models[value]


def _name_write(value: Any, out: dict[str, Any]) -> None:
    if not isinstance(value, str) or not value.strip():
        raise MappingError("resource", "name", value, "expected \"First Last\"")
    first, _, last = value.strip().rpartition(" ")
    out["first_name"], out["last_name"] = (first, last) if first else (last, last)


def _task_write(value: Any, out: dict[str, Any]) -> None:
    if value is None:
        raise MappingError("time_entry", "task", value, "a time entry needs a task")
    project, _, task = unref("time_entry", "task", value).partition(":")
    out["project_id"] = int_id("time_entry", "task", project)
    out["task_id"] = int_id("time_entry", "task", task)


def _currency(w: Mapping[str, Any]) -> Any:
    return (w.get("client") or {}).get("currency")


def _name(w: Mapping[str, Any]) -> str | None:
    return " ".join(p for p in (w.get("first_name"), w.get("last_name")) if p) or None


_CLIENT_STATUS = _status("account")
_PROJECT_STATUS = _status("project")

ACCOUNT = EntitySpec(
    "account", "clients", "clients",
    readers={"name": lambda w: text(w.get("name")), "billing_address": _address_read,
             "currency": lambda w: text(w.get("currency")), "status": _CLIENT_STATUS[0]},
    writers={"name": setter("name"), "billing_address": _address_write, "currency": setter("currency"),
             "status": _CLIENT_STATUS[1]},
    gid_field="address", archive=True, required=("name",))

CONTACT = EntitySpec(
    "contact", "contacts", "contacts",
    readers={"account": lambda w: ref(w.get("client")), "first_name": lambda w: text(w.get("first_name")),
             "last_name": lambda w: text(w.get("last_name")), "email": lambda w: text(w.get("email")),
             "phone": lambda w: text(w.get("phone_office")), "title": lambda w: text(w.get("title"))},
    writers={"account": ref_writer("contact", "account", "client_id"), "first_name": setter("first_name"),
             "last_name": setter("last_name"), "email": setter("email"), "phone": setter("phone_office"),
             "title": setter("title")},
    gid_field="fax", required=("client_id", "first_name"))

PROJECT = EntitySpec(
    "project", "projects", "projects",
    readers={"account": lambda w: ref(w.get("client")), "name": lambda w: text(w.get("name")),
             "code": lambda w: text(w.get("code")), "status": _PROJECT_STATUS[0],
             "start_date": lambda w: date("project", "start_date", w.get("starts_on")),
             "end_date": lambda w: date("project", "end_date", w.get("ends_on")),
             "billing_model": _billing_model, "contract_value": lambda w: dec(w.get("fee")),
             "currency": _currency, "budget_hours": lambda w: dec(w.get("budget"))},
    writers={"account": ref_writer("project", "account", "client_id"), "name": setter("name"),
             "code": setter("code"), "status": _PROJECT_STATUS[1],
             "start_date": setter("starts_on", lambda v: date("project", "start_date", v)),
             "end_date": setter("ends_on", lambda v: date("project", "end_date", v)),
             "billing_model": _billing_model_write,
             "contract_value": setter("fee", lambda v: number("project", "contract_value", v)),
             "budget_hours": setter("budget", lambda v: number("project", "budget_hours", v))},
    gid_field="notes", archive=True, required=("client_id", "name"),
    create_defaults={"is_billable": True, "bill_by": "Project", "budget_by": "project"})

TASK = EntitySpec(
    "task", "task_assignments", "task_assignments",
    readers={"project": lambda w: ref(w.get("project")), "name": lambda w: (w.get("task") or {}).get("name"),
             "billable": lambda w: w.get("billable"), "budget_hours": lambda w: dec(w.get("budget"))},
    writers={"billable": setter("billable"),
             "budget_hours": setter("budget", lambda v: number("task", "budget_hours", v))},
    gid_field=None, archive=True,
    id_of=lambda w: f"{(w.get('project') or {}).get('id')}:{(w.get('task') or {}).get('id')}")

RESOURCE = EntitySpec(
    "resource", "users", "users",
    readers={"name": _name, "email": lambda w: text(w.get("email")),
             "role": lambda w: (w.get("roles") or [None])[0], "cost_rate": lambda w: dec(w.get("cost_rate")),
             "bill_rate": lambda w: dec(w.get("default_hourly_rate")), "active": lambda w: w.get("is_active")},
    writers={"name": _name_write, "email": setter("email"), "role": setter("roles", lambda v: [v] if v else []),
             "cost_rate": setter("cost_rate", lambda v: number("resource", "cost_rate", v)),
             "bill_rate": setter("default_hourly_rate", lambda v: number("resource", "bill_rate", v)),
             "active": setter("is_active", bool)},
    gid_field=None, archive=True, required=("first_name", "last_name", "email"))

TIME_ENTRY = EntitySpec(
    "time_entry", "time_entries", "time_entries",
    readers={"project": lambda w: ref(w.get("project")),
             "task": lambda w: f"{w['project']['id']}:{w['task']['id']}"
             if w.get("project") and w.get("task") else None,
             "resource": lambda w: ref(w.get("user")),
             "work_date": lambda w: date("time_entry", "work_date", w.get("spent_date")),
             "hours": lambda w: dec(w.get("hours")), "billable": lambda w: w.get("billable"),
             "bill_rate": lambda w: dec(w.get("billable_rate")), "currency": _currency,
             "notes": lambda w: text(w.get("notes")), "approval": _approval,
             "locked": lambda w: bool(w.get("is_locked")), "invoice": lambda w: ref(w.get("invoice"))},
    writers={"project": ref_writer("time_entry", "project", "project_id"), "task": _task_write,
             "resource": ref_writer("time_entry", "resource", "user_id"),
             "work_date": setter("spent_date", lambda v: date("time_entry", "work_date", v)),
             "hours": setter("hours", lambda v: number("time_entry", "hours", v)), "notes": setter("notes")},
    gid_field="external_reference", required=("project_id", "task_id", "spent_date"))

EXPENSE = EntitySpec(
    "expense", "expenses", "expenses",
    readers={"project": lambda w: ref(w.get("project")), "resource": lambda w: ref(w.get("user")),
             "spent_date": lambda w: date("expense", "spent_date", w.get("spent_date")),
             "amount": lambda w: dec(w.get("total_cost")), "currency": _currency,
             "category": lambda w: (w.get("expense_category") or {}).get("name"),
             "billable": lambda w: w.get("billable"), "approval": _approval,
             "locked": lambda w: bool(w.get("is_locked")), "invoice": lambda w: ref(w.get("invoice"))},
    writers={"project": ref_writer("expense", "project", "project_id"),
             "resource": ref_writer("expense", "resource", "user_id"),
             "spent_date": setter("spent_date", lambda v: date("expense", "spent_date", v)),
             "amount": setter("total_cost", lambda v: number("expense", "amount", v)),
             "category": setter("expense_category"),  # a name: the connector resolves it to expense_category_id
             "billable": setter("billable", bool)},
    gid_field="notes", required=("project_id", "expense_category_id", "spent_date"))

ENTITIES: dict[str, EntitySpec] = {s.entity: s for s in
                                   (ACCOUNT, CONTACT, PROJECT, TASK, RESOURCE, TIME_ENTRY, EXPENSE, INVOICE,
                                    PAYMENT)}


def spec_for(entity: str) -> EntitySpec:
    return mapped_entity(ENTITIES, entity, system=SYSTEM, name="Harvest", code="unmapped_entity")


class HarvestMapper:
    """The ``Mapper`` of Harvest (the same for every account)."""

    def to_canonical(self, entity: str, wire: Mapping[str, Any]) -> SourceRecord:
        return to_canonical(spec_for(entity), wire)

    def to_wire(self, entity: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return to_wire(spec_for(entity), fields)
