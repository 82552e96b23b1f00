"""Seed data for the Harvest sandbox: a professional-services firm's PSA.

``seed_firm(state, rng, clients=8, consultants=10, weeks=3)`` creates, as the firm's staff would have
entered them (no Accord ids): clients with addresses and currencies, a contact per client, the task
catalogue and expense categories, consultants and project managers with cost and bill rates, one or two
projects per client with task and user assignments, and ``weeks`` of weekday time entries (older weeks
approved and locked, one invoiced) plus a few expenses. Returns the ids it created, by resource.
"""

from __future__ import annotations

import datetime as dt
import random

from accord.sandboxes.harvest.sandbox import HarvestState

_CLIENTS = (("Northwind Logistics Inc.", "USD", "410 Madison Avenue\nNew York, NY 10017"),
            ("Harbor Health Ltd", "GBP", "22 Bishopsgate\nLondon EC2N 4BQ"),
            ("Kestrel Energy GmbH", "EUR", "Friedrichstraße 88\n10117 Berlin"),
            ("Meridian Capital Corp.", "USD", "150 W Wacker Drive\nChicago, IL 60606"),
            ("Lumen Retail SAS", "EUR", "40 boulevard Haussmann\n75009 Paris"),
            ("Granite Manufacturing Inc.", "CAD", "200 King Street West\nToronto, ON M5H 3T4"),
            ("Quayside Media Pty Ltd", "AUD", "1 George Street\nSydney NSW 2000"),
            ("Oakridge Pharma B.V.", "EUR", "Herengracht 500\n1017 CB Amsterdam"),
            ("Silverline Insurance LLC", "USD", "700 Boylston Street\nBoston, MA 02116"),
            ("Brightwater Utilities plc", "GBP", "5 Park Row\nLeeds LS1 5HD"))
_TASKS = (("Consulting", True, 175.0), ("Development", True, 150.0), ("Project Management", True, 160.0),
          ("Design", True, 140.0), ("Internal Meeting", False, 0.0), ("Travel", False, 0.0))
_CATEGORIES = (("Travel", None, None), ("Lodging", None, None), ("Meals", None, None),
               ("Mileage", "mile", 0.67))
_PEOPLE = (("Kim", "Allen"), ("Ravi", "Shah"), ("Elena", "Marquez"), ("Tom", "Becker"), ("Aiko", "Tanaka"),
           ("Sam", "O'Neill"), ("Lea", "Dubois"), ("Noah", "Fischer"), ("Maya", "Cohen"), ("Owen", "Price"),
           ("Priya", "Nair"), ("Jonas", "Berg"))
_ROLES = (("Senior Consultant", 95.0, 200.0), ("Consultant", 70.0, 160.0), ("Developer", 65.0, 150.0),
          ("Designer", 60.0, 140.0), ("Project Manager", 85.0, 180.0))
_PHASES = ("Discovery", "Implementation", "Data Migration", "Support Retainer", "Roadmap")
_NOTES = ("Workshop with stakeholders", "Requirements review", "Sprint work", "Status call", "Testing",
          "Documentation", "Deployment prep", "Bug fixes", "Design review", "Data mapping")


def seed_firm(state: HarvestState, rng: random.Random, *, clients: int = 8, consultants: int = 10,
              weeks: int = 3) -> dict[str, list[int]]:
    """Fill ``state`` with a firm; returns ``{"clients": [...], "projects": [...], ...}``."""
    made: dict[str, list[int]] = {k: [] for k in ("clients", "contacts", "tasks", "expense_categories", "users",
                                                  "projects", "time_entries", "expenses")}
    for name, billable, rate in _TASKS:
        made["tasks"].append(state.user_create("tasks", {"name": name, "billable_by_default": billable,
                                                         "default_hourly_rate": rate}))
    for name, unit, price in _CATEGORIES:
        made["expense_categories"].append(state.user_create("expense_categories", {
            "name": name, "unit_name": unit, "unit_price": price}))
    for first, last in _PEOPLE[:consultants]:
        role, cost, bill = rng.choice(_ROLES)
        made["users"].append(state.user_create("users", {
            "first_name": first, "last_name": last, "email": f"{first}.{last}@firm.example".lower().replace("'", ""),
            "roles": [role], "cost_rate": cost, "default_hourly_rate": bill, "is_contractor": rng.random() < 0.2}))
    for name, currency, address in _CLIENTS[:clients]:
        cid = state.user_create("clients", {"name": name, "currency": currency, "address": address})
        made["clients"].append(cid)
        first, last = rng.choice(_PEOPLE)
        made["contacts"].append(state.user_create("contacts", {
            "client_id": cid, "first_name": first, "last_name": last, "title": "Head of Operations",
            "email": f"{first[0]}{last}@{name.split()[0].lower()}.example".lower().replace("'", ""),
            "phone_office": f"+1 555 01{rng.randint(10, 99)}"}))
        for _ in range(rng.choice((1, 1, 2))):
            made["projects"].append(new_project(state, rng, cid, name, made))
    _log_weeks(state, rng, made, weeks)
    return made


def new_project(state: HarvestState, rng: random.Random, client_id: int, client: str, made: dict[str, list[int]],
                *, name: str | None = None) -> int:
    """A project for a client, with the firm's standard tasks and a team of up to four (one PM)."""
    fixed = rng.random() < 0.25
    start = dt.date.fromtimestamp(state.clock.now()) - dt.timedelta(days=rng.randint(30, 120))
    pid = state.user_create("projects", {
        "client_id": client_id, "name": name or f"{client.split()[0]} {rng.choice(_PHASES)}",
        "code": f"{client[:3].upper()}-{rng.randint(100, 999)}", "is_billable": True, "is_fixed_fee": fixed,
        "fee": float(rng.choice((40_000, 75_000, 120_000))) if fixed else None, "bill_by": "Tasks",
        "budget_by": "project", "budget": float(rng.choice((200, 400, 800))), "starts_on": start.isoformat()})
    for task_id, (_, billable, rate) in zip(made["tasks"], _TASKS, strict=True):
        state.user_create("task_assignments", {"project_id": pid, "task_id": task_id, "billable": billable,
                                               "hourly_rate": rate or None})
    team = rng.sample(made["users"], k=min(4, len(made["users"])))
    for index, user_id in enumerate(team):
        state.user_create("user_assignments", {"project_id": pid, "user_id": user_id,
                                               "is_project_manager": index == 0})
    return pid


def _log_weeks(state: HarvestState, rng: random.Random, made: dict[str, list[int]], weeks: int) -> None:
    today = dt.date.fromtimestamp(state.clock.now())
    monday = today - dt.timedelta(days=today.weekday())
    assignments = [(a["project"]["id"], a["user"]["id"]) for a in state.records("user_assignments")]
    work_tasks = made["tasks"][:4]
    for week in range(weeks, 0, -1):
        start = monday - dt.timedelta(weeks=week - 1)
        week_ids: list[int] = []
        for day in range(5):
            spent = (start + dt.timedelta(days=day)).isoformat()
            if spent > today.isoformat():
                break
            for project_id, user_id in assignments:
                if rng.random() < 0.5:
                    week_ids.append(state.log_time(user_id, project_id, rng.choice(work_tasks), spent,
                                                   rng.choice((1.0, 1.5, 2.0, 3.0, 4.0, 6.0)), rng.choice(_NOTES)))
        made["time_entries"].extend(week_ids)
        if week > 1 and week_ids:
            state.approve_time(week_ids)
        if week == weeks and week > 1 and week_ids:
            state.bill(week_ids[: len(week_ids) // 2])
    for project_id, user_id in rng.sample(assignments, k=min(5, len(assignments))):
        made["expenses"].append(state.user_create("expenses", {
            "project_id": project_id, "user_id": user_id, "expense_category_id": rng.choice(made["expense_categories"][:3]),
            "spent_date": (monday - dt.timedelta(days=rng.randint(0, 7 * weeks - 1))).isoformat(),
            "total_cost": float(rng.choice((45, 120, 380, 640))), "notes": "Client visit"}))
