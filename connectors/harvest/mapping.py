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
=========== ========================= ======================================================= ====================

Harvest tasks are account-wide; the canonical ``task`` is a task *assignment* (a task on a project),
identified by ``"<project_id>:<task_id>"`` (stable, and what a time entry needs to post). Read-only in
Harvest (never written): currency, approval, locked, invoice, billable and bill_rate of time entries.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from accord.connectors.base import SourceRecord
from accord.connectors.errors import Permanent

SYSTEM = "harvest"
_MARKER = re.compile(r"^\[?accord:(\S+?)\]?\s*$", re.MULTILINE)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class MappingError(Permanent):
    """A value with no counterpart on the other side; names entity, field, value and the fix."""

    def __init__(self, entity: str, field: str, value: Any, fix: str) -> None:
        super().__init__(SYSTEM, f"{entity}.{field}: cannot map {value!r}; {fix}", code="mapping")
        self.field = field
        self.value = value


# -- small converters ------------------------------------------------------------------------------

def parse_time_ms(value: Any) -> int:
    """Epoch ms of a Harvest timestamp (``2017-06-27T16:47:14Z``); 0 when missing."""
    if not isinstance(value, str) or not value:
        return 0
    stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (stamp.astimezone(dt.UTC) - _EPOCH) // dt.timedelta(milliseconds=1)


def format_time(seconds: float) -> str:
    """The wire form of a timestamp: ISO 8601 UTC to the second, ``Z`` suffix."""
    return dt.datetime.fromtimestamp(int(seconds), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ref(value: Any) -> str | None:
    """The Harvest id of a nested ``{"id": ...}`` object, as a string (None when absent)."""
    if isinstance(value, Mapping) and value.get("id") is not None:
        return str(value["id"])
    return None


def unref(entity: str, name: str, value: Any) -> str:
    """The Harvest id of a reference; anything else is a ``MappingError``."""
    if isinstance(value, str | int) and str(value):
        return str(value)
    raise MappingError(entity, name, value, "expected the Harvest id of the referenced record; "
                                            "sync the referenced record first")


def _int_id(entity: str, name: str, value: str) -> int:
    if not value.isdigit():
        raise MappingError(entity, name, value, "a Harvest id is a number")
    return int(value)


def dec(value: Any) -> str | None:
    """A wire number as a canonical decimal string (``2.11`` → ``"2.11"``)."""
    if value is None or value == "":
        return None
    return str(Decimal(str(value)))


def number(entity: str, name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise MappingError(entity, name, value, "expected a decimal number such as \"2.5\"") from None


def date(entity: str, name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise MappingError(entity, name, value, "expected a date YYYY-MM-DD") from None


def _text(value: Any) -> Any:
    return None if value == "" else value


def find_marker(text: Any) -> str | None:
    """The Accord gid in a free-text field carrying a line ``accord:<gid>``."""
    match = _MARKER.search(text) if isinstance(text, str) else None
    return match.group(1) if match else None


def strip_marker(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    kept = "\n".join(line for line in text.replace("\r\n", "\n").split("\n") if not _MARKER.match(line))
    return kept.strip() or None


def with_marker(text: Any, gid: str) -> str:
    base = strip_marker(text)
    return f"{base}\naccord:{gid}" if base else f"accord:{gid}"


# -- entity specs ------------------------------------------------------------------------------------

Reader = Callable[[Mapping[str, Any]], Any]
Writer = Callable[[Any, dict[str, Any]], None]  # (canonical value, wire body being built)


@dataclass(frozen=True)
class EntitySpec:
    """How one canonical entity lives in Harvest.

    ``path`` is the list path under ``/v2``; ``key`` the collection key of a list answer. ``gid_field`` is
    ``"external_reference"`` or the free-text field that holds an ``accord:<gid>`` line (None: the entity
    has no such field and creates look up ``natural_key`` instead). ``archive`` entities are deleted by
    ``PATCH {"is_active": false}``. ``required`` wire fields must be present on create.
    """

    entity: str
    path: str
    key: str
    readers: dict[str, Reader]
    writers: dict[str, Writer]
    gid_field: str | None
    archive: bool = False
    required: tuple[str, ...] = ()
    create_defaults: dict[str, Any] = field(default_factory=dict)

    def record_id(self, wire: Mapping[str, Any]) -> str:
        if self.entity == "task":
            return f"{(wire.get('project') or {}).get('id')}:{(wire.get('task') or {}).get('id')}"
        return str(wire["id"])


def _set(name: str, convert: Callable[[Any], Any] = lambda v: v) -> Writer:
    def write(value: Any, out: dict[str, Any]) -> None:
        out[name] = convert(value)
    return write


def _ref_writer(entity: str, canonical: str, wire: str) -> Writer:
    def write(value: Any, out: dict[str, Any]) -> None:
        out[wire] = None if value is None else _int_id(entity, canonical, unref(entity, canonical, value))
    return write


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
    models = {"fixed_fee": (True, True), "time_and_materials": (True, False), "non_billable": (False, False)}
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
    out["project_id"] = _int_id("time_entry", "task", project)
    out["task_id"] = _int_id("time_entry", "task", task)


def _currency(w: Mapping[str, Any]) -> Any:
    return (w.get("client") or {}).get("currency")


def _name(w: Mapping[str, Any]) -> str | None:
    return " ".join(p for p in (w.get("first_name"), w.get("last_name")) if p) or None


_CLIENT_STATUS = _status("account")
_PROJECT_STATUS = _status("project")

ACCOUNT = EntitySpec(
    "account", "clients", "clients",
    readers={"name": lambda w: _text(w.get("name")), "billing_address": _address_read,
             "currency": lambda w: _text(w.get("currency")), "status": _CLIENT_STATUS[0]},
    writers={"name": _set("name"), "billing_address": _address_write, "currency": _set("currency"),
             "status": _CLIENT_STATUS[1]},
    gid_field="address", archive=True, required=("name",))

CONTACT = EntitySpec(
    "contact", "contacts", "contacts",
    readers={"account": lambda w: ref(w.get("client")), "first_name": lambda w: _text(w.get("first_name")),
             "last_name": lambda w: _text(w.get("last_name")), "email": lambda w: _text(w.get("email")),
             "phone": lambda w: _text(w.get("phone_office")), "title": lambda w: _text(w.get("title"))},
    writers={"account": _ref_writer("contact", "account", "client_id"), "first_name": _set("first_name"),
             "last_name": _set("last_name"), "email": _set("email"), "phone": _set("phone_office"),
             "title": _set("title")},
    gid_field="fax", required=("client_id", "first_name"))

PROJECT = EntitySpec(
    "project", "projects", "projects",
    readers={"account": lambda w: ref(w.get("client")), "name": lambda w: _text(w.get("name")),
             "code": lambda w: _text(w.get("code")), "status": _PROJECT_STATUS[0],
             "start_date": lambda w: date("project", "start_date", w.get("starts_on")),
             "end_date": lambda w: date("project", "end_date", w.get("ends_on")),
             "billing_model": _billing_model, "contract_value": lambda w: dec(w.get("fee")),
             "currency": _currency},
    writers={"account": _ref_writer("project", "account", "client_id"), "name": _set("name"),
             "code": _set("code"), "status": _PROJECT_STATUS[1],
             "start_date": _set("starts_on", lambda v: date("project", "start_date", v)),
             "end_date": _set("ends_on", lambda v: date("project", "end_date", v)),
             "billing_model": _billing_model_write,
             "contract_value": _set("fee", lambda v: number("project", "contract_value", v))},
    gid_field="notes", archive=True, required=("client_id", "name"),
    create_defaults={"is_billable": True, "bill_by": "Project", "budget_by": "project"})

TASK = EntitySpec(
    "task", "task_assignments", "task_assignments",
    readers={"project": lambda w: ref(w.get("project")), "name": lambda w: (w.get("task") or {}).get("name"),
             "billable": lambda w: w.get("billable"), "budget_hours": lambda w: dec(w.get("budget"))},
    writers={"billable": _set("billable"),
             "budget_hours": _set("budget", lambda v: number("task", "budget_hours", v))},
    gid_field=None, archive=True)

RESOURCE = EntitySpec(
    "resource", "users", "users",
    readers={"name": _name, "email": lambda w: _text(w.get("email")),
             "role": lambda w: (w.get("roles") or [None])[0], "cost_rate": lambda w: dec(w.get("cost_rate")),
             "bill_rate": lambda w: dec(w.get("default_hourly_rate")), "active": lambda w: w.get("is_active")},
    writers={"name": _name_write, "email": _set("email"), "role": _set("roles", lambda v: [v] if v else []),
             "cost_rate": _set("cost_rate", lambda v: number("resource", "cost_rate", v)),
             "bill_rate": _set("default_hourly_rate", lambda v: number("resource", "bill_rate", v)),
             "active": _set("is_active", bool)},
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
             "notes": lambda w: _text(w.get("notes")), "approval": _approval,
             "locked": lambda w: bool(w.get("is_locked")), "invoice": lambda w: ref(w.get("invoice"))},
    writers={"project": _ref_writer("time_entry", "project", "project_id"), "task": _task_write,
             "resource": _ref_writer("time_entry", "resource", "user_id"),
             "work_date": _set("spent_date", lambda v: date("time_entry", "work_date", v)),
             "hours": _set("hours", lambda v: number("time_entry", "hours", v)), "notes": _set("notes")},
    gid_field="external_reference", required=("project_id", "task_id", "spent_date"))

EXPENSE = EntitySpec(
    "expense", "expenses", "expenses",
    readers={"project": lambda w: ref(w.get("project")), "resource": lambda w: ref(w.get("user")),
             "spent_date": lambda w: date("expense", "spent_date", w.get("spent_date")),
             "amount": lambda w: dec(w.get("total_cost")), "currency": _currency,
             "category": lambda w: (w.get("expense_category") or {}).get("name"),
             "billable": lambda w: w.get("billable"), "approval": _approval,
             "locked": lambda w: bool(w.get("is_locked")), "invoice": lambda w: ref(w.get("invoice"))},
    writers={"project": _ref_writer("expense", "project", "project_id"),
             "resource": _ref_writer("expense", "resource", "user_id"),
             "spent_date": _set("spent_date", lambda v: date("expense", "spent_date", v)),
             "amount": _set("total_cost", lambda v: number("expense", "amount", v)),
             "category": _set("expense_category"),  # a name: the connector resolves it to expense_category_id
             "billable": _set("billable", bool)},
    gid_field="notes", required=("project_id", "expense_category_id", "spent_date"))

ENTITIES: dict[str, EntitySpec] = {s.entity: s for s in
                                   (ACCOUNT, CONTACT, PROJECT, TASK, RESOURCE, TIME_ENTRY, EXPENSE)}


def spec_for(entity: str) -> EntitySpec:
    try:
        return ENTITIES[entity]
    except KeyError:
        raise Permanent(SYSTEM, f"entity {entity!r} is not mapped for Harvest; mapped entities are "
                                f"{sorted(ENTITIES)}", code="unmapped_entity") from None


# -- conversions ---------------------------------------------------------------------------------------

def gid_of(spec: EntitySpec, wire: Mapping[str, Any]) -> str | None:
    if spec.gid_field == "external_reference":
        ext = wire.get("external_reference") or {}
        return str(ext["id"]) if ext.get("group_id") == "accord" and ext.get("id") else None
    return find_marker(wire.get(spec.gid_field)) if spec.gid_field else None


def to_canonical(spec: EntitySpec, wire: Mapping[str, Any]) -> SourceRecord:
    """One Harvest object as a ``SourceRecord``. A field that cannot be mapped is left out of ``fields``
    and named in ``error`` (the poller files the record as an exception; the rest of the page flows)."""
    version = parse_time_ms(wire.get("updated_at"))
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for name, read in spec.readers.items():
        try:
            fields[name] = read(wire)
        except MappingError as exc:
            problems.append(exc.message)
    rid = spec.record_id(wire)
    return SourceRecord(id=rid, version=version, fields=fields, gid=gid_of(spec, wire), modified_ms=version, raw=dict(wire),
                        error=f"{spec.key} {rid}: {'; '.join(problems)}" if problems else None)


def to_wire(spec: EntitySpec, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The body that writes exactly ``fields`` (a sparse PATCH); fields Harvest keeps read-only are
    ignored. Raises ``MappingError`` for a value Harvest cannot hold."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        writer = spec.writers.get(name)
        if writer is not None:
            writer(value, out)
    return out


def gid_body(spec: EntitySpec, gid: str, current_text: Any = None) -> dict[str, Any]:
    """The body part that stamps ``gid`` on a record Accord creates (or re-links)."""
    if spec.gid_field == "external_reference":
        return {"external_reference": {"id": gid, "group_id": "accord", "permalink": f"accord://gid/{gid}"}}
    if spec.gid_field:
        return {spec.gid_field: with_marker(current_text, gid)}
    return {}


def projection(spec: EntitySpec, wire: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
    """The canonical values of ``names`` as ``wire`` now holds them (what a write left in Harvest)."""
    record = to_canonical(spec, wire)
    return {k: v for k, v in record.fields.items() if k in names}
