"""The Harvest sandbox's API fidelity, over raw HTTP in-process."""

from __future__ import annotations

import random
from typing import Any

import pytest

from accord.sandboxes.harvest.sandbox import HarvestError, HarvestState
from accord.sandboxes.harvest.seed import seed_firm
from accord.sandboxes.harvest.store import LOCKED_APPROVED, LOCKED_INVOICED


@pytest.fixture
def firm(harvest_sandbox: HarvestState) -> dict[str, list[int]]:
    return seed_firm(harvest_sandbox, random.Random(5), clients=3, consultants=5, weeks=2)


def entry_body(harvest_sandbox: HarvestState, **extra: Any) -> dict[str, Any]:
    ta = harvest_sandbox.records("task_assignments")[0]
    user = harvest_sandbox.records("users")[0]
    return {"user_id": user["id"], "project_id": ta["project"]["id"], "task_id": ta["task"]["id"],
            "spent_date": "2026-05-27", "hours": 1.5, "notes": "raw", **extra}


async def test_missing_headers_get_the_real_errors(harvest_sandbox, harvest_api) -> None:
    no_agent = await harvest_api.get("/v2/clients", headers={"User-Agent": ""})
    assert no_agent.status_code == 400
    no_account = await harvest_api.get("/v2/clients", headers={"Harvest-Account-Id": ""})
    assert no_account.status_code == 401 and no_account.json()["error"] == "invalid_token"
    bad_token = await harvest_api.get("/v2/clients", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    assert "expired, revoked, malformed" in bad_token.json()["error_description"]
    query_auth = await harvest_api.get("/v2/clients", headers={"Authorization": "", "Harvest-Account-Id": ""},
                               params={"access_token": "sandbox-pat", "account_id": "1234567"})
    assert query_auth.status_code == 200
    assert [e.status for e in harvest_sandbox.requests.entries("clients")] == [400, 401, 401, 200]


async def test_list_shape_cursor_links_and_per_page_limit(harvest_sandbox, harvest_api, firm) -> None:
    first = (await harvest_api.get("/v2/time_entries", params={"per_page": 10})).json()
    total = len(firm["time_entries"])
    assert set(first) == {"time_entries", "per_page", "total_pages", "total_entries", "next_page", "previous_page",
                          "page", "links"}
    assert (first["page"], first["next_page"], first["total_entries"]) == (1, 2, total)
    assert first["links"]["next"].startswith("http://harvest.test/v2/time_entries?cursor=")
    seen, body = [], first
    while True:
        seen += [e["id"] for e in body["time_entries"]]
        if not body["links"]["next"]:
            break
        body = (await harvest_api.get(body["links"]["next"])).json()
    assert len(seen) == len(set(seen)) == total
    dates = [e["spent_date"] for e in first["time_entries"]]
    assert dates == sorted(dates, reverse=True)  # sorted by spent_date, newest first
    too_big = await harvest_api.get("/v2/clients", params={"per_page": 2001})
    assert too_big.status_code == 422 and "per_page" in too_big.json()["message"]


async def test_updated_since_filters_and_user_edits_bump_updated_at(harvest_sandbox, harvest_api, firm) -> None:
    harvest_sandbox.clock.advance(3600)
    cid = firm["clients"][0]
    harvest_sandbox.user_update("clients", cid, {"address": "1 New Street"})
    since = (await harvest_api.get(f"/v2/clients/{cid}")).json()["updated_at"]
    changed = (await harvest_api.get("/v2/clients", params={"updated_since": since})).json()["clients"]
    assert [c["id"] for c in changed] == [cid]
    assert since != harvest_sandbox.get("clients", firm["clients"][1])["updated_at"]  # type: ignore[index]


async def test_duplicate_post_really_duplicates(harvest_sandbox, harvest_api, firm) -> None:
    body = entry_body(harvest_sandbox, external_reference={"id": "dup-1", "group_id": "accord", "permalink": "x"})
    one = await harvest_api.post("/v2/time_entries", json=body)
    two = await harvest_api.post("/v2/time_entries", json=body)
    assert one.status_code == two.status_code == 201 and one.json()["id"] != two.json()["id"]
    found = (await harvest_api.get("/v2/time_entries", params={"external_reference_id": "dup-1"})).json()
    assert found["total_entries"] == 2
    assert one.json()["external_reference"] == {"id": "dup-1", "group_id": "accord", "account_id": None,
                                                "permalink": "x", "service": None, "service_icon_url": None}


async def test_validation_not_found_and_locked_edits(harvest_sandbox, harvest_api, firm) -> None:
    missing = await harvest_api.post("/v2/time_entries", json={"hours": 1})
    assert missing.status_code == 422 and "can't be blank" in missing.json()["message"]
    unassigned = await harvest_api.post("/v2/time_entries", json=entry_body(harvest_sandbox, task_id=firm["tasks"][0] + 10_000_000))
    assert unassigned.status_code == 422
    assert (await harvest_api.patch("/v2/clients/1", json={"name": "x"})).status_code == 404
    harvest_sandbox.approve_time([firm["time_entries"][0]])
    locked = await harvest_api.patch(f"/v2/time_entries/{firm['time_entries'][0]}", json={"hours": 9})
    assert locked.status_code == 422 and "locked" in locked.json()["message"]
    assert (await harvest_api.delete(f"/v2/time_entries/{firm['time_entries'][0]}")).status_code == 422
    has_projects = await harvest_api.delete(f"/v2/clients/{firm['clients'][0]}")
    assert has_projects.status_code == 422


async def test_approval_lock_and_billing_helpers(harvest_sandbox, harvest_api, firm) -> None:
    entry = (await harvest_api.post("/v2/time_entries", json=entry_body(harvest_sandbox))).json()
    assert (entry["is_closed"], entry["is_locked"], entry["is_billed"], entry["invoice"]) == (False, False, False, None)
    harvest_sandbox.clock.advance(10)
    harvest_sandbox.approve_time([entry["id"]])
    approved = harvest_sandbox.get("time_entries", entry["id"])
    assert approved is not None and approved["updated_at"] > entry["updated_at"]
    assert (approved["is_closed"], approved["locked_reason"]) == (True, LOCKED_APPROVED)
    invoice = harvest_sandbox.bill([entry["id"]])
    billed = harvest_sandbox.get("time_entries", entry["id"])
    assert billed is not None and billed["invoice"]["id"] == invoice and billed["locked_reason"] == LOCKED_INVOICED
    with pytest.raises(HarvestError):
        harvest_sandbox.unapprove_time([entry["id"]])
    assert harvest_sandbox.lock_period("2026-12-31")  # every other entry gets locked


async def test_nested_task_assignments_and_rate_limit(harvest_sandbox, harvest_api, firm) -> None:
    pid = firm["projects"][0]
    listed = (await harvest_api.get(f"/v2/projects/{pid}/task_assignments")).json()["task_assignments"]
    assert listed and all(a["project"]["id"] == pid for a in listed)
    again = await harvest_api.post(f"/v2/projects/{pid}/task_assignments", json={"task_id": listed[0]["task"]["id"]})
    assert again.status_code == 422
    harvest_sandbox.rate_limit = 2
    harvest_sandbox.clock.advance(60)
    statuses = [(await harvest_api.get("/v2/users")).status_code for _ in range(3)]
    limited = await harvest_api.get("/v2/users")
    assert statuses == [200, 200, 429] and int(limited.headers["retry-after"]) == 15
    harvest_sandbox.faults.add("users", "500")
    harvest_sandbox.clock.advance(15)
    assert (await harvest_api.get("/v2/users")).status_code == 500
    log = (await harvest_api.get("/__sandbox__/requests")).json()
    assert [e["status"] for e in log if e["endpoint"] == "users"][-2:] == [429, 500]


async def test_company_answers_the_account_settings_and_module_flags(harvest_sandbox, harvest_api) -> None:
    company = (await harvest_api.get("/v2/company")).json()
    assert company["name"] == "Accord Demo Consulting" and company["is_active"] is True
    assert {company[f] for f in ("expense_feature", "invoice_feature", "approval_feature")} == {True}
    assert company["full_domain"].endswith(".harvestapp.com") and company["base_uri"] == f"https://{company['full_domain']}"
    assert company["time_format"] in ("decimal", "hours_minutes") and company["clock"] in ("12h", "24h")
    harvest_sandbox.expense_feature = harvest_sandbox.approval_feature = False
    company = (await harvest_api.get("/v2/company")).json()
    assert company["expense_feature"] is False and company["approval_feature"] is False
    refused = await harvest_api.get("/v2/company", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
    assert [e.status for e in harvest_sandbox.requests.entries("company")] == [200, 200, 401]


class _Watched(dict[int, dict[str, Any]]):
    """A table that counts how often it is scanned (``values()``)."""

    scans = 0

    def values(self) -> Any:
        type(self).scans += 1
        return super().values()


def test_uniqueness_is_checked_only_where_harvest_has_a_rule(harvest_sandbox, firm) -> None:
    """Logging and approving time scans no table of time entries (a month of 20,000 entries took 22 s
    to log when every write compared itself with every row); the rules Harvest has still refuse."""
    store = harvest_sandbox.store
    store.tables["time_entries"] = _Watched(store.tables["time_entries"])
    ta = harvest_sandbox.records("task_assignments")[0]
    user = harvest_sandbox.records("users")[0]["id"]
    ids = [harvest_sandbox.log_time(user, ta["project"]["id"], ta["task"]["id"], "2026-05-27", 1.0, f"n{i}")
           for i in range(20)]
    harvest_sandbox.approve_time(ids)
    assert _Watched.scans == 0
    client = harvest_sandbox.records("clients")[0]
    duplicates = [("clients", {"name": client["name"].upper()}, "Name has already been taken"),
                  ("tasks", {"name": harvest_sandbox.records("tasks")[0]["name"]}, "Name has already been taken"),
                  ("users", {"first_name": "A", "last_name": "B",
                             "email": harvest_sandbox.records("users")[0]["email"]}, "Email has already been taken"),
                  ("task_assignments", {"project_id": ta["project"]["id"], "task_id": ta["task"]["id"]},
                   "Task has already been assigned to this project")]
    for resource, body, message in duplicates:
        with pytest.raises(HarvestError) as refused:
            harvest_sandbox.user_create(resource, body)
        assert refused.value.status == 422 and refused.value.body["message"] == message, resource
    renamed = harvest_sandbox.user_create("clients", {"name": "Brand New Client Co", "currency": "USD"})
    store.update("clients", renamed, {"name": "Brand New Client Co"})  # its own name is not a duplicate
