"""The Harvest connector driven against its sandbox in-process (httpx.ASGITransport)."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from accord.connectors.base import Page, WriteOp
from accord.connectors.errors import AuthExpired, Gone, Permanent, RateLimited, Retryable
from accord.connectors.harvest.client import HarvestConnector
from accord.connectors.harvest.mapping import TIME_ENTRY, to_canonical
from accord.connectors.harvest.settings import HarvestSettings
from accord.sandboxes.harvest.sandbox import HarvestState, build_app
from accord.sandboxes.harvest.seed import seed_firm
from tests.connectors.harvest_rig import START


@pytest.fixture
def firm(harvest_state: HarvestState) -> dict[str, list[int]]:
    return seed_firm(harvest_state, random.Random(11), clients=4, consultants=6, weeks=2)


async def drain(connector: HarvestConnector, entity: str, cursor: str | None = None) -> tuple[list[Page], str]:
    pages = [await connector.fetch(entity, cursor)]
    while pages[-1].more:
        pages.append(await connector.fetch(entity, pages[-1].cursor))
    return pages, pages[-1].cursor


def entry_op(harvest_state: HarvestState, gid: str, **fields: Any) -> WriteOp:
    assignment = harvest_state.records("user_assignments")[0]
    task = next(a for a in harvest_state.records("task_assignments") if a["project"]["id"] == assignment["project"]["id"])
    base = {"project": f"{assignment['project']['id']}",
            "task": f"{assignment['project']['id']}:{task['task']['id']}",
            "resource": f"{assignment['user']['id']}", "work_date": "2026-05-27", "hours": "2.5",
            "notes": "Accord-written"}
    return WriteOp(gid=gid, kind="upsert", fields={**base, **fields}, key=f"k-{gid}", correlation_id="corr-1")


# ------------------------------------------------------------------------------------------------
# reads
# ------------------------------------------------------------------------------------------------

async def test_full_load_follows_links_next_and_returns_every_record_once(harvest_state, make_harvest, firm) -> None:
    connector = make_harvest(page_size=50)
    pages, _ = await drain(connector, "time_entry")
    ids = [r.id for p in pages for r in p.records]
    assert len(ids) == len(set(ids)) == len(firm["time_entries"])
    assert set(ids) == {str(i) for i in firm["time_entries"]}
    assert len(pages) == -(-len(ids) // 50) and [p.more for p in pages][-1] is False
    queries = [e.query for e in harvest_state.requests.entries("time_entries")]
    assert "updated_since" not in queries[0] and all("cursor=" in q for q in queries[1:])


async def test_incremental_uses_updated_since_with_overlap_and_dedups(harvest_state, make_harvest, firm) -> None:
    connector = make_harvest()
    _, cursor = await drain(connector, "account")
    harvest_state.clock.advance(1)  # inside the 2 s overlap: the old records come back and are de-duplicated
    again = await connector.fetch("account", cursor)
    assert again.records == []
    assert "updated_since=" in harvest_state.requests.entries("clients")[-1].query
    harvest_state.clock.advance(60)
    cid = firm["clients"][1]
    harvest_state.user_update("clients", cid, {"name": "Renamed Health Ltd"})
    page = await connector.fetch("account", again.cursor)
    assert [(r.id, r.fields["name"]) for r in page.records] == [(str(cid), "Renamed Health Ltd")]
    assert page.records[0].version == int(harvest_state.clock.now()) * 1000
    harvest_state.user_update("clients", cid, {"name": "Renamed Twice Ltd"})  # same second: same updated_at
    same_second = await connector.fetch("account", page.cursor)
    assert [r.fields["name"] for r in same_second.records] == ["Renamed Twice Ltd"]
    assert (await connector.fetch("account", same_second.cursor)).records == []


async def test_a_record_changed_on_an_early_page_during_a_listing_is_read_by_the_next_one(
        harvest_state, make_harvest, firm) -> None:
    """Listings are sorted by date, not by updated_at: the watermark must not pass the listing's start
    (a month-end approval run changes records on pages already read while later ones are fetched)."""
    ids = [e["id"] for e in harvest_state.records("time_entries") if not e["is_locked"]][:15]
    assert len(ids) == 15
    connector = make_harvest(page_size=5)
    _, cursor = await drain(connector, "time_entry")
    harvest_state.clock.advance(60)
    for entry in ids:  # fifteen entries change: three pages of five
        harvest_state.user_update("time_entries", entry, {"notes": "reviewed"})
    page = await connector.fetch("time_entry", cursor)
    read = {r.id for r in page.records}
    while page.more and not read:  # unchanged entries inside the overlap window come first (de-duplicated)
        page = await connector.fetch("time_entry", page.cursor)
        read |= {r.id for r in page.records}
    assert page.more and read
    early, late = sorted(read)[0], next(i for i in ids if str(i) not in read)  # late: on a page still to come
    harvest_state.clock.advance(10)  # a manager approves while the poller reads the next pages
    harvest_state.user_update("time_entries", int(early), {"notes": "approved early"})
    harvest_state.clock.advance(10)
    harvest_state.user_update("time_entries", late, {"notes": "approved late"})
    while page.more:
        page = await connector.fetch("time_entry", page.cursor)
    following = await connector.fetch("time_entry", page.cursor)
    assert early in {r.id: r for r in following.records}, "the early page's change is not lost"
    assert {r.id: r.fields["notes"] for r in following.records}[early] == "approved early"


async def test_time_entry_approval_locked_and_invoice_states_map(harvest_state, make_harvest, firm) -> None:
    connector = make_harvest()
    pages, _ = await drain(connector, "time_entry")
    by_id = {r.id: r for p in pages for r in p.records}
    rows = {str(r["id"]): r for r in harvest_state.records("time_entries")}
    billed = next(i for i, r in rows.items() if r["is_billed"])
    approved = next(i for i, r in rows.items() if r["is_closed"] and not r["is_billed"])
    draft = next(i for i, r in rows.items() if not r["is_closed"])
    assert by_id[billed].fields.items() >= {"approval": "approved", "locked": True,
                                            "invoice": f"{rows[billed]['invoice']['id']}"}.items()
    assert (by_id[approved].fields["approval"], by_id[approved].fields["locked"]) == ("approved", True)
    assert by_id[approved].fields["invoice"] is None
    assert by_id[draft].fields.items() >= {"approval": "draft", "locked": False, "invoice": None}.items()
    row = rows[draft]
    assert by_id[draft].fields["task"] == f"{row['project']['id']}:{row['task']['id']}"
    assert by_id[draft].fields["currency"] == row["client"]["currency"]
    assert by_id[draft].fields["hours"] == str(row["hours"])


async def test_unparseable_value_marks_only_that_record(harvest_state) -> None:
    wire = {"id": 1, "spent_date": "27/05/2026", "updated_at": "2026-05-28T10:00:00Z", "hours": 1.0,
            "project": {"id": 2}, "task": {"id": 3}, "user": {"id": 4}}
    record = to_canonical(TIME_ENTRY, wire)
    assert record.error is not None and "work_date" in record.error and "27/05/2026" in record.error
    assert "work_date" not in record.fields and record.fields["hours"] == "1.0"


async def test_scan_ids_finds_a_deleted_id_missing(harvest_state, make_harvest, firm) -> None:
    connector = make_harvest(page_size=100)
    before = await connector.scan_ids("time_entry")
    gone = firm["time_entries"][-1]
    harvest_state.user_delete("time_entries", gone)
    after = await connector.scan_ids("time_entry")
    assert before - after == {str(gone)} and len(after) == len(firm["time_entries"]) - 1
    tasks = await connector.scan_ids("task")
    assert all(":" in t for t in tasks) and len(tasks) == len(harvest_state.records("task_assignments"))


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------

async def test_429_is_rate_limited_with_retry_after(harvest_state, make_harvest) -> None:
    harvest_state.faults.add("clients", "429", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await make_harvest().fetch("account", None)
    assert caught.value.retry_after == 7.0


async def test_real_limit_100_per_15s_gives_retry_after(harvest_state, make_harvest) -> None:
    harvest_state.rate_limit = 3
    connector = make_harvest()
    for _ in range(3):
        await connector.fetch("account", None)
    with pytest.raises(RateLimited) as caught:
        await connector.fetch("account", None)
    assert caught.value.retry_after == 15.0 and connector.stats.rate_limited == 1
    harvest_state.clock.advance(15)
    await connector.fetch("account", None)
    assert harvest_state.requests.count("clients", status=429) == 1 and connector.stats.calls == 5


async def test_5xx_is_retryable_and_401_is_auth_expired(harvest_state, make_harvest) -> None:
    harvest_state.faults.add("projects", "503")
    with pytest.raises(Retryable):
        await make_harvest().fetch("project", None)
    with pytest.raises(AuthExpired):
        await make_harvest(access_token="revoked").fetch("project", None)


async def test_write_errors_are_classified_per_op(harvest_state, make_harvest, firm) -> None:
    connector = make_harvest()
    ops = [WriteOp(gid="g-gone", kind="upsert", fields={"name": "X"}, key="k1", target_id="999"),
           WriteOp(gid="g-bad", kind="upsert", fields={"name": harvest_state.records("clients")[0]["name"]}, key="k2",
                   target_id=str(firm["clients"][1])),
           WriteOp(gid="g-ok", kind="upsert", fields={"name": "Fine Co"}, key="k3", target_id=str(firm["clients"][2]))]
    gone, bad, ok = await connector.write("account", ops)
    assert isinstance(gone.error, Gone) and not gone.ok
    assert isinstance(bad.error, Permanent) and bad.error.status == 422 and "already been taken" in bad.error.message
    assert ok.ok and ok.fields == {"name": "Fine Co"}


# ------------------------------------------------------------------------------------------------
# writes
# ------------------------------------------------------------------------------------------------

async def test_create_retried_after_lost_response_finds_the_first_record(harvest_state, make_harvest, firm) -> None:
    connector = make_harvest()
    harvest_state.faults.add("time_entries", "drop", after=1)  # the lookup passes; the POST runs, its answer is lost
    first = await connector.write("time_entry", [entry_op(harvest_state, "gid-1")])
    assert not first[0].ok and isinstance(first[0].error, Retryable)
    retried = await connector.write("time_entry", [entry_op(harvest_state, "gid-1")])
    assert retried[0].ok and retried[0].created is False
    mine = [r for r in harvest_state.records("time_entries") if (r["external_reference"] or {}).get("id") == "gid-1"]
    assert len(mine) == 1 and retried[0].target_id == str(mine[0]["id"])
    posts = [e for e in harvest_state.requests.entries("time_entries") if e.method == "POST"]
    assert len(posts) == 1
    found = await connector.find_created("time_entry", ["gid-1", "gid-x"], int(START * 1000))
    assert set(found) == {"gid-1"} and found["gid-1"].gid == "gid-1"


async def test_a_first_create_costs_one_request_without_a_lookup(harvest_state, make_harvest, firm) -> None:
    """Writers ask for the look-up only when a create may have been sent before: a first one is one POST."""
    connector = make_harvest()
    before = len(harvest_state.requests.entries())
    op = WriteOp(gid="acc-new", kind="upsert", key="k", lookup=False, fields={
        "name": "First Time BV", "currency": "EUR", "status": "active"})
    [result] = await connector.write("account", [op])
    assert result.ok and result.created
    assert [(e.method, e.endpoint) for e in harvest_state.requests.entries()[before:]] == [("POST", "clients")]


async def test_create_for_marker_entities_is_linked_not_duplicated(harvest_state, make_harvest, firm) -> None:
    connector = make_harvest()
    op = WriteOp(gid="acc-1", kind="upsert", key="k", fields={
        "name": "Fresh Client BV", "currency": "EUR", "status": "active",
        "billing_address": {"street": "Keizersgracht 1", "city": "Amsterdam", "postal_code": "1015"}})
    created = (await connector.write("account", [op]))[0]
    again = (await connector.write("account", [op]))[0]
    assert created.created and not again.created and created.target_id == again.target_id
    row = harvest_state.get("clients", int(created.target_id or 0))
    assert row is not None and row["address"].endswith("\naccord:acc-1")
    pages, _ = await drain(connector, "account")
    record = next(r for p in pages for r in p.records if r.id == created.target_id)
    assert record.gid == "acc-1" and record.fields["billing_address"] == {"street": "Keizersgracht 1\nAmsterdam 1015"}
    assert sum(1 for r in harvest_state.records("clients") if r["name"] == "Fresh Client BV") == 1


async def test_patch_writes_only_given_fields_and_sends_headers(harvest_state, make_harvest, firm) -> None:
    seen: list[httpx.Request] = []
    app = build_app(harvest_state)

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await httpx.ASGITransport(app=app).handle_async_request(request)

    settings = HarvestSettings(base_url="http://harvest.test", account_id=harvest_state.account_id, access_token="sandbox-pat")
    connector = HarvestConnector(settings, transport=Spy(), now=harvest_state.clock.now)
    pid = firm["projects"][0]
    before = harvest_state.get("projects", pid)
    harvest_state.clock.advance(5)
    op = WriteOp(gid="p-1", kind="upsert", fields={"code": "NEW-1"}, key="k", target_id=str(pid),
                 correlation_id="c-9")
    result = (await connector.write("project", [op]))[0]
    await connector.aclose()
    assert result.ok and result.fields == {"code": "NEW-1"}
    patch = seen[-1]
    assert patch.method == "PATCH" and patch.content == b'{"code":"NEW-1"}'
    assert patch.headers["x-correlation-id"] == "c-9" and patch.headers["harvest-account-id"] == harvest_state.account_id
    assert patch.headers["authorization"] == "Bearer sandbox-pat" and patch.headers["user-agent"].startswith("Accord")
    after = harvest_state.get("projects", pid)
    assert after is not None and before is not None
    assert {k for k in after if after[k] != before[k]} == {"code", "updated_at"}


async def test_locked_entry_edit_refused_and_deletes(harvest_state, make_harvest, firm) -> None:
    connector = make_harvest()
    locked = next(r["id"] for r in harvest_state.records("time_entries") if r["is_locked"])
    free = next(r["id"] for r in harvest_state.records("time_entries") if not r["is_locked"])
    edit = WriteOp(gid="t", kind="upsert", fields={"hours": "1"}, key="k", target_id=str(locked))
    result = (await connector.write("time_entry", [edit]))[0]
    assert isinstance(result.error, Permanent) and result.error.status == 422 and "locked" in result.error.message
    deletes = [WriteOp(gid="d1", kind="delete", fields={}, key="k1", target_id=str(free)),
               WriteOp(gid="d2", kind="delete", fields={}, key="k2", target_id="424242"),
               WriteOp(gid="d3", kind="delete", fields={}, key="k3")]
    assert [r.ok for r in await connector.write("time_entry", deletes)] == [True, True, True]
    assert harvest_state.get("time_entries", free) is None
    archived = (await connector.write("account", [WriteOp(gid="a", kind="delete", fields={}, key="k",
                                                          target_id=str(firm["clients"][0]))]))[0]
    client = harvest_state.get("clients", firm["clients"][0])
    assert archived.ok and client is not None and client["is_active"] is False


async def test_task_and_resource_creates_use_natural_keys(harvest_state, make_harvest, firm) -> None:
    connector = make_harvest()
    pid = firm["projects"][0]
    op = WriteOp(gid="task-1", kind="upsert", key="k", fields={"project": f"{pid}", "name": "QA Audit",
                                                               "billable": True, "budget_hours": "40"})
    first = (await connector.write("task", [op]))[0]
    second = (await connector.write("task", [op]))[0]
    assert first.created and not second.created and first.target_id == second.target_id
    task_id = first.target_id.split(":")[1] if first.target_id else ""
    assert first.target_id == f"{pid}:{task_id}"
    assert sum(1 for t in harvest_state.records("tasks") if t["name"] == "QA Audit") == 1
    user = WriteOp(gid="res-1", kind="upsert", key="k", fields={"name": "Ada Lovelace", "email": "ada@firm.example",
                                                                "cost_rate": "90", "bill_rate": "210"})
    made = [(await connector.write("resource", [user]))[0] for _ in range(2)]
    assert [r.created for r in made] == [True, False] and made[0].target_id == made[1].target_id
    assert sum(1 for u in harvest_state.records("users") if u["email"] == "ada@firm.example") == 1
