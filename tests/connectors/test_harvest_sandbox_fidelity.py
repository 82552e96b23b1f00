"""The Harvest sandbox takes whole objects as Harvest does: every resource's GET body (read-only and
nested properties included) sent back as a create (with the ``*_id`` parameters a client adds) and as a
PATCH; and the account endpoints clients call to verify a connection."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from accord.sandboxes.harvest.sandbox import HarvestState

NESTED = ("client", "project", "task", "user", "expense_category")
MOVING = ("updated_at",)


def world(state: HarvestState) -> dict[str, tuple[str, int]]:
    """One record of every resource (path to read it, id), with a second task and user to assign."""
    client = state.user_create("clients", {"name": "ABC Corp", "currency": "EUR", "address": "1 Main St"})
    contact = state.user_create("contacts", {"client_id": client, "first_name": "Kim", "email": "kim@abc.example"})
    project = state.user_create("projects", {"client_id": client, "name": "Rollout", "code": "R1",
                                             "is_billable": True, "bill_by": "Project", "budget_by": "project",
                                             "hourly_rate": 150.0})
    tasks = [state.user_create("tasks", {"name": name, "default_hourly_rate": 150.0}) for name in ("Design", "Build")]
    users = [state.user_create("users", {"first_name": first, "last_name": "Allen", "email": f"{first}@x.example"})
             for first in ("Kim", "Lee")]
    category = state.user_create("expense_categories", {"name": "Travel"})
    ta = state.user_create("task_assignments", {"project_id": project, "task_id": tasks[0], "hourly_rate": 150.0})
    ua = state.user_create("user_assignments", {"project_id": project, "user_id": users[0]})
    entry = state.log_time(users[0], project, tasks[0], "2026-05-20", 2.5, notes="Workshop")
    expense = state.user_create("expenses", {"project_id": project, "expense_category_id": category,
                                             "user_id": users[0], "spent_date": "2026-05-20", "total_cost": 40.0})
    state.approve_time([entry])
    state.approve_time([expense], "expenses")
    invoice = state.invoice(client, [project])  # bills (and locks) the entry and the expense
    open_entry = state.log_time(users[0], project, tasks[0], "2026-05-21", 1.0, notes="Review")
    open_expense = state.user_create("expenses", {"project_id": project, "expense_category_id": category,
                                                  "user_id": users[0], "spent_date": "2026-05-21", "units": 1})
    payment = state.record_payment(invoice, 10.0, notes="ACH-1")
    return {"clients": ("/v2/clients", client), "contacts": ("/v2/contacts", contact),
            "projects": ("/v2/projects", project), "tasks": ("/v2/tasks", tasks[0]),
            "users": ("/v2/users", users[0]), "expense_categories": ("/v2/expense_categories", category),
            "task_assignments": (f"/v2/projects/{project}/task_assignments", ta),
            "user_assignments": (f"/v2/projects/{project}/user_assignments", ua),
            "time_entries": ("/v2/time_entries", open_entry), "expenses": ("/v2/expenses", open_expense),
            "_locked": ("/v2/time_entries", entry),
            "invoices": ("/v2/invoices", invoice), "invoice_payments": (f"/v2/invoices/{invoice}/payments", payment),
            "_other": ("", tasks[1]), "_other_user": ("", users[1])}


async def whole(api: httpx.AsyncClient, state: HarvestState, resource: str, path: str, rid: int) -> dict[str, Any]:
    if resource == "invoice_payments":  # Harvest has no GET of one payment: read it from the list
        body = (await api.get(path)).json()["invoice_payments"]
        return dict(next(p for p in body if p["id"] == rid))
    response = await api.get(f"{path}/{rid}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def as_create(record: dict[str, Any]) -> dict[str, Any]:
    """The whole object plus the ``*_id`` parameters a client sends alongside its nested objects."""
    body = copy.deepcopy(record)
    body.update({f"{key}_id": record[key]["id"] for key in NESTED if isinstance(record.get(key), dict)})
    return body


UNIQUE = {"clients": "name", "tasks": "name", "expense_categories": "name", "users": "email", "invoices": "number"}
RESOURCES = ["clients", "contacts", "projects", "tasks", "users", "expense_categories", "task_assignments",
             "user_assignments", "time_entries", "expenses", "invoices", "invoice_payments"]


@pytest.mark.parametrize("resource", RESOURCES)
async def test_a_whole_object_is_a_valid_create(harvest_sandbox, harvest_api, resource) -> None:
    made = world(harvest_sandbox)
    path, rid = made[resource]
    body = as_create(await whole(harvest_api, harvest_sandbox, resource, path, rid))
    if resource in UNIQUE:
        body[UNIQUE[resource]] = f"copy-{body[UNIQUE[resource]]}"
    if resource == "task_assignments":  # a task is assigned to a project once
        body["task_id"] = made["_other"][1]
    if resource == "user_assignments":
        body["user_id"] = made["_other_user"][1]
    if resource == "invoices":  # the copy's lines are free-form: its entries are billed already
        body["line_items"] = [{k: v for k, v in li.items() if k != "id"} for li in body["line_items"]]
    response = await harvest_api.post(path, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"] != rid and created["created_at"] == created["updated_at"]
    for key in NESTED:
        if isinstance(body.get(key), dict):
            assert created[key]["id"] == body[f"{key}_id"]


@pytest.mark.parametrize("resource", [r for r in RESOURCES if r != "invoice_payments"])
async def test_a_whole_object_is_a_valid_patch(harvest_sandbox, harvest_api, resource) -> None:
    made = world(harvest_sandbox)
    path, rid = made[resource]
    before = await whole(harvest_api, harvest_sandbox, resource, path, rid)
    harvest_sandbox.clock.advance(5)
    response = await harvest_api.patch(f"{path}/{rid}", json=as_create(before))
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["updated_at"] > before["updated_at"]
    assert {k: v for k, v in after.items() if k not in MOVING} == {
        k: v for k, v in before.items() if k not in MOVING}


async def test_read_only_and_unknown_parameters_are_ignored(harvest_sandbox, harvest_api) -> None:
    made = world(harvest_sandbox)
    client = made["clients"][1]
    body = {"client_id": client, "name": "Phase 2", "is_billable": True, "bill_by": "Project",
            "budget_by": "project", "id": 1, "created_at": "2001-01-01T00:00:00Z", "planet": "Earth",
            "client": {"id": 999, "name": "Someone else"}}
    created = (await harvest_api.post("/v2/projects", json=body)).json()
    assert created["client"]["id"] == client and created["id"] != 1 and "planet" not in created
    assert created["created_at"] != "2001-01-01T00:00:00Z"


async def test_a_locked_entry_refuses_its_whole_object(harvest_sandbox, harvest_api) -> None:
    made = world(harvest_sandbox)
    path, rid = made["_locked"]
    before = await whole(harvest_api, harvest_sandbox, "time_entries", path, rid)
    assert before["is_locked"]  # invoiced
    response = await harvest_api.patch(f"{path}/{rid}", json=as_create(before))
    assert response.status_code == 422 and "locked" in response.json()["message"]


async def test_users_me_and_company(harvest_sandbox, harvest_api) -> None:
    me = (await harvest_api.get("/v2/users/me")).json()
    assert {"id", "first_name", "last_name", "email", "timezone", "weekly_capacity", "is_active", "roles",
            "access_roles", "avatar_url", "created_at", "updated_at"} <= set(me)
    assert me["access_roles"] == ["administrator"] and me["is_active"] is True
    company = (await harvest_api.get("/v2/company")).json()
    assert company["name"] == harvest_sandbox.company_name
    refused = await harvest_api.get("/v2/users/me", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
