"""What the Harvest connector and sandbox tests share (their fixtures are in ``conftest``)."""

from __future__ import annotations

from accord.sandboxes.harvest.sandbox import HarvestState

START = 1_780_000_000.0  # 2026-05-28
HEADERS = {"Authorization": "Bearer sandbox-pat", "Harvest-Account-Id": "1234567", "User-Agent": "Test (t@x.io)"}


def book(state: HarvestState, name: str = "Acme Corp") -> dict[str, int]:
    """A client with one billable project: approved, unapproved, non-billable and out-of-range time in
    May 2026, an approved expense, and the same kinds of work on another client's project."""
    ids = {"client": state.user_create("clients", {"name": name, "currency": "USD"})}
    ids["project"] = state.user_create("projects", {
        "client_id": ids["client"], "name": f"{name} Rollout", "code": f"{name[:3].upper()}-1", "is_billable": True,
        "bill_by": "Tasks", "budget_by": "project"})
    ids["task"] = _task(state, "Consulting", True)
    ids["meeting"] = _task(state, "Internal Meeting", False)
    state.user_create("task_assignments", {"project_id": ids["project"], "task_id": ids["task"], "billable": True,
                                           "hourly_rate": 150.0})
    state.user_create("task_assignments", {"project_id": ids["project"], "task_id": ids["meeting"], "billable": False})
    ids["user"] = _user(state)
    ids["category"] = _category(state)
    log = {"approved": (ids["task"], "2026-05-04", 2.0), "unapproved": (ids["task"], "2026-05-05", 3.0),
           "non_billable": (ids["meeting"], "2026-05-06", 1.0), "outside": (ids["task"], "2026-04-30", 4.0)}
    for key, (task, day, hours) in log.items():
        ids[key] = state.log_time(ids["user"], ids["project"], task, day, hours, f"{key} work")
    state.approve_time([ids["approved"], ids["non_billable"], ids["outside"]])
    ids["expense"] = state.user_create("expenses", {
        "project_id": ids["project"], "user_id": ids["user"], "expense_category_id": ids["category"],
        "spent_date": "2026-05-12", "total_cost": 120.0, "notes": "Train"})
    state.approve_time([ids["expense"]], "expenses")
    return ids


def _task(state: HarvestState, name: str, billable: bool) -> int:
    found = [t["id"] for t in state.records("tasks") if t["name"] == name]
    return found[0] if found else state.user_create("tasks", {"name": name, "billable_by_default": billable})


def _user(state: HarvestState) -> int:
    found = [u["id"] for u in state.records("users")]
    return found[0] if found else state.user_create("users", {"first_name": "Kim", "last_name": "Allen",
                                                              "email": "kim@firm.example"})


def _category(state: HarvestState) -> int:
    found = [c["id"] for c in state.records("expense_categories")]
    return found[0] if found else state.user_create("expense_categories", {"name": "Travel"})
