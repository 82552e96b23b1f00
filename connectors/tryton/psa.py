"""Tryton's PSA records ↔ Accord canonical fields: employees, works (projects and tasks), timesheet lines.

=========== ================ ============================================================ =====================
canonical   Tryton model     fields                                                        Accord gid lives in
=========== ================ ============================================================ =====================
resource    company.employee name ← party.name; email ← party.email (the first email        party identifier
                             mechanism); active ← start_date ≤ today ≤ end_date (written   ``accord-resource:``
                             as end_date: yesterday / none); cost_rate ← cost_price (read)  ``<gid>``
project     project.work     account ← party; name; code ← number (read: a sequence);      a line
            (type project)   status ← status (Open → ``active``, Done → ``inactive``);     ``accord:<gid>`` in
                             budget_hours ← effort_duration                                ``comment``
task        project.work     project ← the nearest ancestor of type project; parent ← the  as project
            (type task)      parent work when it is a task; name; code ← number (read);
                             budget_hours ← effort_duration
time_entry  timesheet.line   resource ← employee; task / project ← the project.work the    a suffix
                             line's timesheet.work comes from (its ``origin``): a task, or ``[accord:<gid>]``
                             the project itself; work_date ← date; hours ← duration;       in ``description``
                             notes ← description; locked ← invoice_line set (read)
=========== ================ ============================================================ =====================

References are the referenced record's Tryton id as a string (the daemon's xref turns them into gids):
a time entry's ``task``/``project`` are ``project.work`` ids, never ``timesheet.work`` ids (pitfall: a
line points at the timesheet work that ``timesheet_available`` made for the project work). Hours travel
as decimal strings and are written as a ``timedelta`` rounded to the second; dates as ISO strings.
The rows read here are *expanded* by ``works``/``entities`` (keys ``accord_*``: the employee's party,
the work's project, the status name).

Stateless: nothing to survive a crash.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from accord.connectors.errors import Permanent
from accord.connectors.tryton.codec import epoch_us
from accord.connectors.tryton.mapping import RESOURCE_MARKER

SYSTEM = "tryton"
EMPLOYEE = "company.employee"
WORK = "project.work"
TIMESHEET_WORK = "timesheet.work"
LINE = "timesheet.line"
EMPLOYEE_FIELDS = ("party", "start_date", "end_date", "cost_price", "party.write_date", "write_date", "create_date")
EMPLOYEE_PARTY_FIELDS = ("name", "email", "identifiers", "write_date", "create_date")
WORK_FIELDS = ("name", "type", "parent", "path", "party", "number", "status", "effort_duration", "comment",
               "timesheet_works", "write_date", "create_date")
LINE_FIELDS = ("employee", "work", "date", "duration", "description", "invoice_line", "write_date", "create_date")
STATUSES = {"Open": "active", "Done": "inactive"}
_COMMENT_MARKER = re.compile(r"^accord:(\S+)\s*$", re.MULTILINE)
_SUFFIX_MARKER = re.compile(r"\s*\[accord:(\S+?)\]\s*$")


class MappingError(Permanent):
    """A canonical value with no Tryton counterpart; names entity, field, value and the fix."""

    def __init__(self, entity: str, name: str, value: Any, fix: str) -> None:
        super().__init__(SYSTEM, f"{entity}.{name}: cannot map {value!r} to Tryton; {fix}", code="mapping")


# -- values ---------------------------------------------------------------------------------------------

def stamp_of(row: Mapping[str, Any], field: str) -> dt.datetime | None:
    """``row[field]``, where a dotted ``a.b`` is read from the ``"a."`` object Tryton answers with."""
    head, _, tail = field.partition(".")
    value = (row.get(f"{head}.") or {}).get(tail) if tail else row.get(field)
    return value if isinstance(value, dt.datetime) else None


def version_of(*rows: Mapping[str, Any] | None) -> int:
    """The latest ``coalesce(write_date, create_date)`` of ``rows`` in epoch microseconds."""
    stamps = [s for r in rows if r for s in (r.get("write_date") or r.get("create_date"),) if isinstance(s, dt.datetime)]
    return max((epoch_us(s) for s in stamps), default=0)


def hours_of(value: Any) -> str | None:
    """A ``timedelta`` as canonical decimal hours (``2:15:00`` → ``"2.25"``; 6 places at most)."""
    if not isinstance(value, dt.timedelta):
        return None
    hours = (Decimal(int(value.total_seconds() * 1_000_000)) / Decimal(3_600_000_000)).quantize(Decimal("0.000001"))
    return format(hours.normalize(), "f")


def duration_of(entity: str, name: str, value: Any) -> dt.timedelta | None:
    """Canonical decimal hours as a ``timedelta`` rounded to the second."""
    if value is None:
        return None
    try:
        hours = Decimal(str(value))
    except InvalidOperation:
        raise MappingError(entity, name, value, "expected decimal hours such as \"2.25\"") from None
    if not hours.is_finite() or hours < 0:
        raise MappingError(entity, name, value, "expected a non-negative number of hours")
    return dt.timedelta(seconds=int((hours * 3600).to_integral_value()))


def iso_date(entity: str, name: str, value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise MappingError(entity, name, value, "expected a date YYYY-MM-DD") from None


def ref(value: Any) -> str | None:
    return str(value) if isinstance(value, int) and value > 0 else None


def unref(entity: str, name: str, value: Any) -> int:
    """The Tryton id of a reference (the daemon has resolved the gid); anything else is a ``MappingError``."""
    if isinstance(value, int | str) and str(value).isdigit():
        return int(value)
    raise MappingError(entity, name, value, "expected the Tryton id of the referenced record; sync the "
                                            "referenced record first")


def comment_gid(value: Any) -> str | None:
    match = _COMMENT_MARKER.search(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def with_comment_gid(value: Any, gid: str) -> str:
    kept = "\n".join(line for line in str(value or "").split("\n") if not _COMMENT_MARKER.match(line)).strip()
    return f"{kept}\naccord:{gid}" if kept else f"accord:{gid}"


def description_gid(value: Any) -> str | None:
    match = _SUFFIX_MARKER.search(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def notes_of(value: Any) -> str | None:
    return _SUFFIX_MARKER.sub("", value).strip() or None if isinstance(value, str) else None


def with_description_gid(notes: Any, gid: str | None) -> str:
    base = notes_of(notes) or ""
    return f"{base} [accord:{gid}]".strip() if gid else base


# -- resource ← company.employee ---------------------------------------------------------------------------

def employee_fields(row: Mapping[str, Any], today: dt.date) -> dict[str, Any]:
    """Canonical resource fields of an employee row expanded with its party (``accord_party``)."""
    party = row.get("accord_party") or {}
    start, end = row.get("start_date") or dt.date.min, row.get("end_date") or dt.date.max
    cost = row.get("cost_price")
    return {"name": party.get("name"), "email": party.get("email") or None, "active": start <= today <= end,
            "cost_rate": format(cost.normalize(), "f") if isinstance(cost, Decimal) else None}


def employee_gid(party: Mapping[str, Any]) -> str | None:
    for ident in party.get("accord_identifiers") or []:
        code = str(ident.get("code") or "")
        if code.startswith(RESOURCE_MARKER):
            return code[len(RESOURCE_MARKER):]
    return None


def end_date_for(active: Any, current_end: Any, today: dt.date) -> tuple[bool, dt.date | None]:
    """``(change, end_date)`` making an employee active (no end) or not (ended yesterday)."""
    if active is None or active is True:
        return current_end is not None and current_end < today, None
    if active is False:
        ended = isinstance(current_end, dt.date) and current_end < today
        return not ended, current_end if ended else today - dt.timedelta(days=1)
    raise MappingError("resource", "active", active, "expected true or false")


# -- project / task ← project.work ------------------------------------------------------------------------

def work_fields(entity: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical project or task fields of a work row expanded with ``accord_project``/``accord_status``."""
    out: dict[str, Any] = {"name": row.get("name"), "code": row.get("number") or None,
                           "budget_hours": hours_of(row.get("effort_duration"))}
    if entity == "project":
        out["account"] = ref(row.get("party"))
        out["status"] = STATUSES.get(str(row.get("accord_status")), row.get("accord_status"))
    else:
        out["project"] = ref(row.get("accord_project"))
        out["parent"] = ref(row.get("accord_parent_task"))
    return out


def work_values(entity: str, fields: Mapping[str, Any], statuses: Mapping[str, int]) -> dict[str, Any]:
    """``project.work`` values for canonical ``fields`` (``statuses``: canonical status → status id)."""
    vals: dict[str, Any] = {}
    if "name" in fields:
        vals["name"] = fields["name"]
    if "budget_hours" in fields:
        vals["effort_duration"] = duration_of(entity, "budget_hours", fields["budget_hours"])
    if entity == "project":
        if "account" in fields:
            vals["party"] = None if fields["account"] is None else unref(entity, "account", fields["account"])
        if fields.get("status") is not None:
            if fields["status"] not in statuses:
                raise MappingError(entity, "status", fields["status"], f"expected one of {sorted(statuses)}")
            vals["status"] = statuses[fields["status"]]
    else:
        parent = fields.get("parent") or fields.get("project")
        if "parent" in fields or "project" in fields:
            if parent is None:
                raise MappingError(entity, "project", None, "a Tryton task needs a project or a parent task")
            vals["parent"] = unref(entity, "parent" if fields.get("parent") else "project", parent)
    return vals


# -- time_entry ← timesheet.line --------------------------------------------------------------------------

def line_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical time entry fields of a line row expanded with ``accord_project``/``accord_task``."""
    day = row.get("date")
    return {"resource": ref(row.get("employee")), "project": ref(row.get("accord_project")),
            "task": ref(row.get("accord_task")), "work_date": day.isoformat() if isinstance(day, dt.date) else None,
            "hours": hours_of(row.get("duration")), "notes": notes_of(row.get("description")),
            "locked": bool(row.get("invoice_line"))}


def line_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``timesheet.line`` values of the canonical fields that are the line's own (not its work)."""
    vals: dict[str, Any] = {}
    if "resource" in fields:
        vals["employee"] = unref("time_entry", "resource", fields["resource"])
    if "work_date" in fields:
        vals["date"] = iso_date("time_entry", "work_date", fields["work_date"])
    if "hours" in fields:
        vals["duration"] = duration_of("time_entry", "hours", fields["hours"])
    return vals


def work_of_entry(fields: Mapping[str, Any]) -> int | None:
    """The ``project.work`` a time entry is logged on: its task, else its project (``None``: unchanged)."""
    if fields.get("task") is not None:
        return unref("time_entry", "task", fields["task"])
    if fields.get("project") is not None:
        return unref("time_entry", "project", fields["project"])
    return None
