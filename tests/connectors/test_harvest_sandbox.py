"""The Harvest sandbox's API fidelity, over raw HTTP in-process."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from accord.connectors.harvest.sandbox import HarvestError, HarvestState, build_app
from accord.connectors.harvest.seed import seed_firm
from accord.connectors.harvest.store import LOCKED_APPROVED, LOCKED_INVOICED
from accord.connectors.sandbox import Clock

START = 1_780_000_000.0
HEADERS = {"Authorization": "Bearer sandbox-pat", "Harvest-Account-Id": "1234567", "User-Agent": "Test (t@x.io)"}


@pytest.fixture
def state() -> HarvestState:
    return HarvestState(clock=Clock(start=START))


@pytest.fixture
async def api(state: HarvestState) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(state)), base_url="http://harvest.test",
                                 headers=HEADERS) as client:
        yield client


@pytest.fixture
def firm(state: HarvestState) -> dict[str, list[int]]:
    return seed_firm(state, random.Random(5), clients=3, consultants=5, weeks=2)


def entry_body(state: HarvestState, **extra: Any) -> dict[str, Any]:
    ta = state.records("task_assignments")[0]
    user = state.records("users")[0]
    return {"user_id": user["id"], "project_id": ta["project"]["id"], "task_id": ta["task"]["id"],
            "spent_date": "2026-05-27", "hours": 1.5, "notes": "raw", **extra}


async def test_missing_headers_get_the_real_errors(state, api) -> None:
    no_agent = await api.get("/v2/clients", headers={"User-Agent": ""})
    assert no_agent.status_code == 400
    no_account = await api.get("/v2/clients", headers={"Harvest-Account-Id": ""})
    assert no_account.status_code == 401 and no_account.json()["error"] == "invalid_token"
    bad_token = await api.get("/v2/clients", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    assert "expired, revoked, malformed" in bad_token.json()["error_description"]
    query_auth = await api.get("/v2/clients", headers={"Authorization": "", "Harvest-Account-Id": ""},
                               params={"access_token": "sandbox-pat", "account_id": "1234567"})
    assert query_auth.status_code == 200
    assert [e.status for e in state.requests.entries("clients")] == [400, 401, 401, 200]


async def test_list_shape_cursor_links_and_per_page_limit(state, api, firm) -> None:
    first = (await api.get("/v2/time_entries", params={"per_page": 10})).json()
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
        body = (await api.get(body["links"]["next"])).json()
    assert len(seen) == len(set(seen)) == total
    dates = [e["spent_date"] for e in first["time_entries"]]
    assert dates == sorted(dates, reverse=True)  # sorted by spent_date, newest first
    too_big = await api.get("/v2/clients", params={"per_page": 2001})
    assert too_big.status_code == 422 and "per_page" in too_big.json()["message"]


async def test_updated_since_filters_and_user_edits_bump_updated_at(state, api, firm) -> None:
    state.clock.advance(3600)
    cid = firm["clients"][0]
    state.user_update("clients", cid, {"address": "1 New Street"})
    since = (await api.get(f"/v2/clients/{cid}")).json()["updated_at"]
    changed = (await api.get("/v2/clients", params={"updated_since": since})).json()["clients"]
    assert [c["id"] for c in changed] == [cid]
    assert since != state.get("clients", firm["clients"][1])["updated_at"]  # type: ignore[index]


async def test_duplicate_post_really_duplicates(state, api, firm) -> None:
    body = entry_body(state, external_reference={"id": "dup-1", "group_id": "accord", "permalink": "x"})
    one = await api.post("/v2/time_entries", json=body)
    two = await api.post("/v2/time_entries", json=body)
    assert one.status_code == two.status_code == 201 and one.json()["id"] != two.json()["id"]
    found = (await api.get("/v2/time_entries", params={"external_reference_id": "dup-1"})).json()
    assert found["total_entries"] == 2
    assert one.json()["external_reference"] == {"id": "dup-1", "group_id": "accord", "account_id": None,
                                                "permalink": "x", "service": None, "service_icon_url": None}


async def test_validation_not_found_and_locked_edits(state, api, firm) -> None:
    missing = await api.post("/v2/time_entries", json={"hours": 1})
    assert missing.status_code == 422 and "can't be blank" in missing.json()["message"]
    unassigned = await api.post("/v2/time_entries", json=entry_body(state, task_id=firm["tasks"][0] + 10_000_000))
    assert unassigned.status_code == 422
    assert (await api.patch("/v2/clients/1", json={"name": "x"})).status_code == 404
    state.approve_time([firm["time_entries"][0]])
    locked = await api.patch(f"/v2/time_entries/{firm['time_entries'][0]}", json={"hours": 9})
    assert locked.status_code == 422 and "locked" in locked.json()["message"]
    assert (await api.delete(f"/v2/time_entries/{firm['time_entries'][0]}")).status_code == 422
    has_projects = await api.delete(f"/v2/clients/{firm['clients'][0]}")
    assert has_projects.status_code == 422


async def test_approval_lock_and_billing_helpers(state, api, firm) -> None:
    entry = (await api.post("/v2/time_entries", json=entry_body(state))).json()
    assert (entry["is_closed"], entry["is_locked"], entry["is_billed"], entry["invoice"]) == (False, False, False, None)
    state.clock.advance(10)
    state.approve_time([entry["id"]])
    approved = state.get("time_entries", entry["id"])
    assert approved is not None and approved["updated_at"] > entry["updated_at"]
    assert (approved["is_closed"], approved["locked_reason"]) == (True, LOCKED_APPROVED)
    invoice = state.bill([entry["id"]])
    billed = state.get("time_entries", entry["id"])
    assert billed is not None and billed["invoice"]["id"] == invoice and billed["locked_reason"] == LOCKED_INVOICED
    with pytest.raises(HarvestError):
        state.unapprove_time([entry["id"]])
    assert state.lock_period("2026-12-31")  # every other entry gets locked


async def test_nested_task_assignments_and_rate_limit(state, api, firm) -> None:
    pid = firm["projects"][0]
    listed = (await api.get(f"/v2/projects/{pid}/task_assignments")).json()["task_assignments"]
    assert listed and all(a["project"]["id"] == pid for a in listed)
    again = await api.post(f"/v2/projects/{pid}/task_assignments", json={"task_id": listed[0]["task"]["id"]})
    assert again.status_code == 422
    state.rate_limit = 2
    state.clock.advance(60)
    statuses = [(await api.get("/v2/users")).status_code for _ in range(3)]
    limited = await api.get("/v2/users")
    assert statuses == [200, 200, 429] and int(limited.headers["retry-after"]) == 15
    state.faults.add("users", "500")
    state.clock.advance(15)
    assert (await api.get("/v2/users")).status_code == 500
    log = (await api.get("/__sandbox__/requests")).json()
    assert [e["status"] for e in log if e["endpoint"] == "users"][-2:] == [429, 500]
