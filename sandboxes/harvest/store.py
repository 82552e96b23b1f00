"""The Harvest sandbox's data: one table per resource, numeric ids, ``updated_at`` stamps, the
validation Harvest applies (422 ``{"message": ...}``) and the nested shapes it renders (reference 3.8).

Rows hold flat wire fields (``client_id`` etc.); ``render`` expands them into the API's nested objects.
``updated_at`` has Harvest's one-second resolution (two edits within one second share it, as in Harvest;
the connector's de-dup therefore also compares content). Not thread-safe by itself:
``HarvestState`` holds its lock around every call. Invoices and payments: ``invoices`` and ``ledger``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

from accord.connectors.harvest.mapping import format_time

LOCKED_APPROVED = "Item Approved and Locked for this Time Period"
LOCKED_INVOICED = "Item Invoiced and Approved and Locked for this Time Period"

# resource → (writable fields with defaults, required on create)
SCHEMAS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "clients": ({"name": None, "is_active": True, "address": None, "currency": "USD"}, ("name",)),
    "contacts": ({"client_id": None, "title": None, "first_name": None, "last_name": None, "email": None,
                  "phone_office": None, "phone_mobile": None, "fax": None, "invoice_recipient_status": "none"},
                 ("client_id", "first_name")),
    "projects": ({"client_id": None, "name": None, "code": None, "is_active": True, "is_billable": True,
                  "is_fixed_fee": False, "bill_by": "Project", "hourly_rate": None, "budget": None,
                  "budget_by": "project", "budget_is_monthly": False, "notify_when_over_budget": False,
                  "over_budget_notification_percentage": 80.0, "show_budget_to_all": False, "cost_budget": None,
                  "cost_budget_include_expenses": False, "fee": None, "notes": "", "starts_on": None,
                  "ends_on": None}, ("client_id", "name", "is_billable", "bill_by", "budget_by")),
    "tasks": ({"name": None, "billable_by_default": True, "default_hourly_rate": 0.0, "is_default": False,
               "is_active": True}, ("name",)),
    "task_assignments": ({"project_id": None, "task_id": None, "is_active": True, "billable": True,
                          "hourly_rate": None, "budget": None}, ("project_id", "task_id")),
    "users": ({"first_name": None, "last_name": None, "email": None, "telephone": "",
               "timezone": "Eastern Time (US & Canada)", "has_access_to_all_future_projects": False,
               "is_contractor": False, "is_active": True, "weekly_capacity": 126000, "default_hourly_rate": None,
               "cost_rate": None, "roles": [], "access_roles": ["member"]}, ("first_name", "last_name", "email")),
    "user_assignments": ({"project_id": None, "user_id": None, "is_active": True, "is_project_manager": False,
                          "use_default_rates": True, "hourly_rate": None, "budget": None}, ("project_id", "user_id")),
    "time_entries": ({"user_id": None, "project_id": None, "task_id": None, "spent_date": None, "hours": None,
                      "notes": None, "external_reference": None, "started_time": None, "ended_time": None},
                     ("project_id", "task_id", "spent_date")),
    "expenses": ({"user_id": None, "project_id": None, "expense_category_id": None, "spent_date": None,
                  "notes": None, "units": None, "total_cost": None, "billable": True},
                 ("project_id", "expense_category_id", "spent_date")),
    "expense_categories": ({"name": None, "unit_name": None, "unit_price": None, "is_active": True}, ("name",)),
}
SYSTEM_FLAGS = {"is_locked": False, "locked_reason": None, "is_closed": False, "is_billed": False,
                "invoice": None, "is_running": False, "timer_started_at": None}
_REFS = {"client_id": "clients", "project_id": "projects", "task_id": "tasks", "user_id": "users",
         "expense_category_id": "expense_categories"}
Row = dict[str, Any]


def _same_folded(field: str) -> Callable[[Row, Row], bool]:
    return lambda a, b: str(a[field]).casefold() == str(b[field]).casefold()


_UNIQUE: dict[str, tuple[Callable[[Row, Row], bool], str]] = {  # resource -> (same?, Harvest's 422 message)
    "clients": (_same_folded("name"), "Name has already been taken"),
    "tasks": (_same_folded("name"), "Name has already been taken"),
    "expense_categories": (_same_folded("name"), "Name has already been taken"),
    "users": (_same_folded("email"), "Email has already been taken"),
    "task_assignments": (lambda a, b: (a["project_id"], a["task_id"]) == (b["project_id"], b["task_id"]),
                         "Task has already been assigned to this project"),
}


def _singular(resource: str) -> str:
    """``time_entries`` → "time entry", ``expenses`` → "expense"."""
    name = resource.replace("_", " ")
    return name[:-3] + "y" if name.endswith("ies") else name[:-1]


class HarvestError(Exception):
    """An API error: ``status`` and the JSON body Harvest answers with."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def invalid(message: str) -> HarvestError:
    return HarvestError(422, {"message": message})


def not_found() -> HarvestError:
    return HarvestError(404, {"status": 404, "error": "Not Found"})  # [unverified body]


class HarvestStore:
    """Tables of one Harvest account, keyed by resource name then id."""

    def __init__(self, now: Callable[[], float], *, default_user_id: int | None = None) -> None:
        self.now = now
        self.tables: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in SCHEMAS}
        self.default_user_id = default_user_id
        self._next = 5_735_000

    # -- rows ---------------------------------------------------------------------------------------

    def get(self, resource: str, rid: int | str) -> dict[str, Any]:
        row = self.tables[resource].get(int(rid)) if str(rid).isdigit() else None
        if row is None:
            raise not_found()
        return row

    def _stamp(self, row: dict[str, Any] | None) -> int:
        now = int(self.now())
        return now if row is None else max(now, row["updated_at"])

    def _check(self, resource: str, row: dict[str, Any], rid: int | None) -> None:
        for key, target in _REFS.items():
            if key in row and row[key] is not None and int(row[key]) not in self.tables[target]:
                raise invalid(f"{key.replace('_id', '').capitalize()} can't be blank")
        self._check_unique(resource, row, rid)
        if resource == "time_entries":
            if not any(a["project_id"] == row["project_id"] and a["task_id"] == row["task_id"]
                       for a in self.tables["task_assignments"].values()):
                raise invalid("Task is not assigned to the project")
            if row["hours"] is not None and not 0 <= float(row["hours"]) < 24:
                raise invalid("Hours must be between 0 and 24")
        for key in ("spent_date", "starts_on", "ends_on"):
            if row.get(key) is not None:
                try:
                    dt.date.fromisoformat(str(row[key]))
                except ValueError:
                    raise invalid(f"{key.replace('_', ' ').capitalize()} is not a valid date") from None

    def _check_unique(self, resource: str, row: dict[str, Any], rid: int | None) -> None:
        """Harvest's uniqueness rules; a resource without one (time entries, projects, ...) scans nothing,
        so logging a month of time stays linear."""
        rule = _UNIQUE.get(resource)
        if rule is None:
            return
        same, message = rule
        if any(r["id"] != rid and same(r, row) for r in self.tables[resource].values()):
            raise invalid(message)

    def _clean(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HarvestError(400, {"message": "Invalid JSON Payload"})
        schema = SCHEMAS[resource][0]
        values = {k: v for k, v in body.items() if k in schema}
        ext = values.get("external_reference")
        if isinstance(ext, dict):
            values["external_reference"] = {key: None if ext.get(key) is None else str(ext[key]) for key in (
                "id", "group_id", "account_id", "permalink", "service", "service_icon_url")}
        return values

    def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        schema, required = SCHEMAS[resource]
        values = self._clean(resource, body)
        if resource == "time_entries":
            values.setdefault("user_id", self.default_user_id)
        missing = [k for k in required if values.get(k) is None]
        if missing:
            raise invalid(f"{missing[0].replace('_id', '').replace('_', ' ').capitalize()} can't be blank")
        row = {**schema, **values}
        if resource in ("time_entries", "expenses"):
            row.update(SYSTEM_FLAGS)
        if resource == "time_entries" and row["hours"] is None:
            row.update(is_running=True, hours=0.0, timer_started_at=format_time(self.now()))
        if resource == "clients":
            row["statement_key"] = secrets.token_hex(16)
        self._check(resource, row, None)
        self._next += 1
        stamp = self._stamp(None)
        row.update(id=self._next, created_at=stamp, updated_at=stamp)
        self.tables[resource][row["id"]] = row
        return row

    def update(self, resource: str, rid: int | str, body: dict[str, Any], *, system: bool = False) -> dict[str, Any]:
        """A PATCH (``system``: a change the UI makes, such as approval, that may touch locked rows)."""
        row = self.get(resource, rid)
        values = body if system else self._clean(resource, body)
        if row.get("is_locked") and not system:
            raise invalid(f"This {_singular(resource)} is locked: {row['locked_reason']}")
        merged = {**row, **values}
        self._check(resource, merged, row["id"])
        merged["updated_at"] = self._stamp(row)
        self.tables[resource][row["id"]] = merged
        return merged

    def delete(self, resource: str, rid: int | str) -> None:
        row = self.get(resource, rid)
        if row.get("is_locked"):
            raise invalid(f"This {_singular(resource)} is locked: {row['locked_reason']}")
        if resource == "clients" and any(p["client_id"] == row["id"] for p in self.tables["projects"].values()):
            raise invalid("This client has projects; archive it instead")
        if resource == "projects":
            for child in ("time_entries", "expenses", "task_assignments", "user_assignments"):
                for cid in [c["id"] for c in self.tables[child].values() if c["project_id"] == row["id"]]:
                    del self.tables[child][cid]
        del self.tables[resource][row["id"]]

    # -- rendering ----------------------------------------------------------------------------------

    def _brief(self, resource: str, rid: int | None, *fields: str) -> dict[str, Any] | None:
        row = self.tables[resource].get(rid) if rid is not None else None
        return None if row is None else {"id": row["id"], **{f: row.get(f) for f in fields}}

    def render(self, resource: str, row: dict[str, Any]) -> dict[str, Any]:
        """A row in the exact shape the API returns it."""
        out = {k: v for k, v in row.items() if not k.endswith("_id")}
        out["created_at"], out["updated_at"] = format_time(row["created_at"]), format_time(row["updated_at"])
        if "client_id" in row:
            out["client"] = self._brief("clients", row["client_id"], "name", "currency")
        if "project_id" in row:
            project = self.tables["projects"].get(row["project_id"]) or {}
            out["project"] = self._brief("projects", row["project_id"], "name", "code")
            if resource in ("time_entries", "expenses"):
                out["client"] = self._brief("clients", project.get("client_id"), "name", "currency")
        if "task_id" in row:
            out["task"] = self._brief("tasks", row["task_id"], "name")
        if "user_id" in row:
            user = self.tables["users"].get(row["user_id"]) or {}
            out["user"] = {"id": row["user_id"], "name": f"{user.get('first_name', '')} {user.get('last_name', '')}"}
        if "expense_category_id" in row:
            out["expense_category"] = self._brief("expense_categories", row["expense_category_id"], "name",
                                                  "unit_price", "unit_name")
        if resource in ("time_entries", "expenses"):
            self._render_entry(resource, row, out)
        if resource == "users":
            out["avatar_url"] = f"https://d3s3969qhosaug.cloudfront.net/v2/{row['id']}.png"
        return out

    def _render_entry(self, resource: str, row: dict[str, Any], out: dict[str, Any]) -> None:
        invoice = row.get("invoice")
        billed = self.tables.get("invoices", {}).get(invoice) if invoice else None
        out["invoice"] = {"id": invoice, "number": (billed or {}).get("number")} if invoice else None
        ua = next((a for a in self.tables["user_assignments"].values()
                   if a["project_id"] == row["project_id"] and a["user_id"] == row.get("user_id")), None)
        out["user_assignment"] = None if ua is None else self._assignment_brief(ua, "is_project_manager")
        if resource == "expenses":
            out["receipt"] = None
            return
        ta = next((a for a in self.tables["task_assignments"].values()
                   if a["project_id"] == row["project_id"] and a["task_id"] == row["task_id"]), None)
        out["task_assignment"] = None if ta is None else self._assignment_brief(ta, "billable")
        project = self.tables["projects"].get(row["project_id"]) or {}
        user = self.tables["users"].get(row.get("user_id") or 0) or {}
        hours = float(row["hours"] or 0)
        billable = bool(project.get("is_billable", True) and (ta or {}).get("billable", True))
        rate = (ta or {}).get("hourly_rate") or project.get("hourly_rate") or user.get("default_hourly_rate")
        out.update(hours_without_timer=hours, rounded_hours=-(-round(hours * 100) // 25) * 0.25,
                   billable=billable, budgeted=project.get("budget") is not None,
                   billable_rate=rate if billable else None, cost_rate=user.get("cost_rate"))

    @staticmethod
    def _assignment_brief(row: dict[str, Any], flag: str) -> dict[str, Any]:
        return {"id": row["id"], flag: row[flag], "is_active": row["is_active"], "budget": row["budget"],
                "created_at": format_time(row["created_at"]), "updated_at": format_time(row["updated_at"]),
                "hourly_rate": row["hourly_rate"]}
