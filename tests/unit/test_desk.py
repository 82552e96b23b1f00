"""The exception desk: retry (edited), resolve, skip, closing by a later success, the audit trail and
the HTTP API, on the poller/writer rig (fakeredis and real Redis)."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from accord.actors.desk import DeskError, ExceptionDesk, Filters
from accord.config.settings import Settings
from accord.connectors.errors import Permanent
from accord.deskweb import desk_routes
from accord.streams.audit import AuditTrail
from accord.streams.scope import Scope
from tests.unit.test_sync import Rig


@pytest.fixture
async def rig(any_redis: Redis) -> Rig:
    return await Rig(any_redis).setup()


async def _failed_create(rig: Rig, name: str = "Bad Name") -> tuple[str, str]:
    """A CRM account the ERP refuses: returns (its gid, its exception id)."""
    rid = rig.crm.user_create({"name": name, "country": "US"})
    await rig.poll("crm")
    gid = (await rig.redis.get(rig.keys.xid("account", "crm", rid))).decode()
    rig.erp.fail_records[gid] = Permanent("erp", "6240 Duplicate Name Exists Error")
    while await rig.writer.sweep():
        pass
    [entry] = await ExceptionDesk(rig.redis, Scope.of(rig.settings)).list(Filters())
    return gid, entry.record.exception_id


async def test_edited_retry_reaches_the_target_once_and_is_audited(rig: Rig) -> None:
    desk = ExceptionDesk(rig.redis, Scope.of(rig.settings))
    gid, eid = await _failed_create(rig)
    entry = await desk.get(eid)
    assert entry.status.state == "open" and entry.payload()["fields"]["name"] == "Bad Name"
    assert [e.record.exception_id for e in await desk.list(Filters(system="erp", reason="permanent"))] == [eid]
    assert await desk.list(Filters(system="crm")) == []

    rig.erp.fail_records.clear()
    change_id = await desk.retry(eid, "ops@firm", {"name": "Bad Name (US)"})
    with pytest.raises(DeskError, match="already retried"):
        await desk.retry(eid, "ops@firm")  # a second retry publishes nothing
    while await rig.writer.sweep():
        pass
    assert [f["name"] for f in rig.erp.records.values()] == ["Bad Name (US)"] and rig.erp.creates == 1
    status = (await desk.get(eid)).status
    assert (status.state, status.by, status.retried_as) == ("retried", "ops@firm", change_id)

    trail = await AuditTrail(rig.keys, 60).read(rig.redis, entry.record.correlation_id)
    kinds = [e.kind for e in trail]
    assert kinds[0] == "published upsert" and "exception" in kinds and kinds[-1] == "written"
    assert kinds.index("exception") < kinds.index("desk retry") < kinds.index("written")
    [audit] = await rig.redis.xrange(rig.keys.desk_audit())
    assert audit[1][b"action"] == b"retry" and audit[1][b"by"] == b"ops@firm"


async def test_a_bad_edit_is_refused_naming_the_field(rig: Rig) -> None:
    desk = ExceptionDesk(rig.redis, Scope.of(rig.settings))
    _, eid = await _failed_create(rig)
    with pytest.raises(DeskError, match="status"):
        await desk.retry(eid, "ops", {"status": "maybe"})
    assert (await desk.get(eid)).status.state == "open"


async def test_a_later_successful_change_closes_the_exception(rig: Rig) -> None:
    desk = ExceptionDesk(rig.redis, Scope.of(rig.settings))
    gid, eid = await _failed_create(rig)
    rig.erp.fail_records.clear()
    rid = next(r for r, f in rig.crm.records.items() if f["name"] == "Bad Name")
    rig.crm.user_update(rid, {"name": "Renamed in the CRM"})
    await rig.settle()
    status = (await desk.get(eid)).status
    assert status.state == "closed" and status.by == "accord" and "reached erp" in status.note
    assert await desk.list(Filters()) == []
    assert not await rig.redis.exists(rig.keys.exceptions_open("account", "erp", gid))


async def test_resolve_and_skip_are_final(rig: Rig) -> None:
    desk = ExceptionDesk(rig.redis, Scope.of(rig.settings))
    _, eid = await _failed_create(rig)
    await desk.resolve(eid, "finance", "created by hand in QuickBooks")
    with pytest.raises(DeskError, match="already resolved .*created by hand"):
        await desk.skip(eid, "finance")
    assert [e.record.exception_id for e in await desk.list(Filters(state="resolved"))] == [eid]
    with pytest.raises(DeskError, match="no exception `nope`"):
        await desk.resolve("nope", "finance")


async def test_http_api_lists_shows_and_acts_with_the_admin_token(rig: Rig) -> None:
    _, eid = await _failed_create(rig)
    settings = rig.settings
    async with _client(settings, rig) as client:
        body = (await client.get("/exceptions", params={"entity": "account"})).json()
        assert body["count"] == 1 and body["exceptions"][0]["exception_id"] == eid
        assert (await client.get(f"/exceptions/{eid}")).json()["payload"]["fields"]["name"] == "Bad Name"
        assert (await client.get("/exceptions", params={"state": "wrong"})).status_code == 400
        assert (await client.post(f"/exceptions/{eid}/explode")).status_code == 404
        done = await client.post("/exceptions/bulk", json={"action": "skip", "filters": {"reason": "permanent"}})
        assert done.json()["done"] == 1
        again = await client.post(f"/exceptions/{eid}/retry", json={"by": "dashboard"})
        assert again.status_code == 409 and "already skipped" in again.json()["error"]


async def test_http_reads_and_actions_need_the_token_when_one_is_configured(rig: Rig) -> None:
    _, eid = await _failed_create(rig)
    settings = msgspec.structs.replace(
        rig.settings, http=msgspec.structs.replace(rig.settings.http, admin_token="s3cret"))
    async with _client(settings, rig) as client:
        for path in ("/exceptions", f"/exceptions/{eid}", "/trace/some-flow"):
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get(f"/exceptions/{eid}", headers={"Authorization": "Bearer wrong"})).status_code == 401
        shown = await client.get(f"/exceptions/{eid}", headers={"Authorization": "Bearer s3cret"})
        assert shown.status_code == 200 and shown.json()["payload"]["fields"]["name"] == "Bad Name"
        assert (await client.post(f"/exceptions/{eid}/resolve")).status_code == 401
        ok = await client.post(f"/exceptions/{eid}/resolve", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["ok"]


async def test_http_reads_and_actions_from_another_host_need_a_token(rig: Rig) -> None:
    _, eid = await _failed_create(rig)
    app = Starlette(routes=desk_routes(rig.settings, rig.redis))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://accord") as client:
        refused = await client.post(f"/exceptions/{eid}/skip")
        assert refused.status_code == 403 and "admin_token" in refused.json()["error"]
        assert (await client.get(f"/exceptions/{eid}")).status_code == 403


def _client(settings: Settings, rig: Rig) -> httpx.AsyncClient:
    app = Starlette(routes=desk_routes(settings, rig.redis))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord")


async def test_a_mapping_exception_closes_when_the_record_reads_cleanly(rig: Rig) -> None:
    desk = ExceptionDesk(rig.redis, Scope.of(rig.settings))
    rid = rig.crm.user_create({"name": "Acme", "country": "US", "status": "maybe"})
    await rig.settle()
    [entry] = await desk.list(Filters(reason="mapping"))
    assert entry.record.source == "crm" and entry.record.source_id == rid and "status" in entry.record.message
    assert rig.erp.records == {}
    rig.crm.user_update(rid, {"status": "active"})
    await rig.settle()
    status = (await desk.get(entry.record.exception_id)).status
    assert status.state == "closed" and "reads cleanly" in status.note
    assert [f["name"] for f in rig.erp.records.values()] == ["Acme"]


async def test_desk_page_signs_in_with_the_token_and_refuses_forged_forms(rig: Rig) -> None:
    """The page sends a browser without the session cookie to sign in; the cookie holds an HMAC of the token,
    never the token; an action without the form's CSRF field is refused and changes nothing."""
    from accord.deskpage import COOKIE, desk_page_routes, session_value

    _, eid = await _failed_create(rig)
    settings = msgspec.structs.replace(rig.settings, http=msgspec.structs.replace(rig.settings.http,
                                                                                  admin_token="s3cret"))
    app = Starlette(routes=desk_page_routes(settings, rig.redis))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord") as client:
        first = await client.get(f"/desk/{eid}")
        assert first.status_code == 303 and first.headers["location"].startswith("/desk/login?next=")
        wrong = await client.post("/desk/login", data={"token": "guess", "next": f"/desk/{eid}"})
        assert wrong.status_code == 401 and COOKIE not in client.cookies
        signed = await client.post("/desk/login", data={"token": "s3cret", "name": "Fiona", "next": f"/desk/{eid}"})
        assert signed.status_code == 303 and client.cookies[COOKIE] == session_value("s3cret") != "s3cret"
        page = await client.get(f"/desk/{eid}")
        assert page.status_code == 200 and "Bad Name" in page.text and 'name=csrf' in page.text
        forged = await client.post(f"/desk/{eid}/skip", data={"note": "no csrf"})
        assert forged.status_code == 403
        assert (await ExceptionDesk(rig.redis, Scope.of(settings)).get(eid)).status.state == "open"
        csrf = page.text.split("name=csrf value='", 1)[1].split("'", 1)[0]
        done = await client.post(f"/desk/{eid}/skip", data={"note": "duplicate", "csrf": csrf})
        assert done.status_code == 303 and "skip%3A+done" in done.headers["location"]
        status = (await ExceptionDesk(rig.redis, Scope.of(settings)).get(eid)).status
        assert (status.state, status.by, status.note) == ("skipped", "Fiona", "duplicate")
