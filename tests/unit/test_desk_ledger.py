"""The desk's ledger: pages that never skip or repeat an exception, open counts for the metrics without
reading any exception, retention of settled exceptions (never of open ones), and exceptions filed by an
earlier version listed on the next start (fakeredis, embedded Redis 6.2, Redis 7)."""

from __future__ import annotations

import re
import time

import httpx
import msgspec
from redis.asyncio import Redis
from starlette.applications import Starlette

from accord.actors.desk import DeskError, ExceptionDesk, Filters
from accord.config.load import loads
from accord.config.settings import Settings
from accord.deskweb import desk_routes
from accord.pipeline_metrics import render
from accord.streams.batch import Batch
from accord.streams.exception_ledger import build_once, trim_settled, trim_streams
from accord.streams.exceptions import ExceptionRecord, file_exception
from accord.streams.keys import Keys
from accord.streams.scope import Scope
from tests.helpers import CRM_AND_ERP

CONFIG = CRM_AND_ERP + """
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
"""
T0 = 1_700_000_000_000


def _settings() -> Settings:
    return loads(CONFIG, env={})


async def _file(redis: Redis, keys: Keys, n: int, *, reason: str = "permanent", start: int = 0) -> list[str]:
    """``n`` exceptions about distinct ERP records; pairs share a filing millisecond (ties in the pages)."""
    ids = []
    for i in range(start, start + n):
        record = ExceptionRecord(exception_id=f"chg:account:{i}:erp:1-{i}", reason=reason,  # type: ignore[arg-type]
                                 message=f"refused {i}", entity="account", target="erp", gid=f"g{i}",
                                 created_ms=T0 + i // 2)
        pipe = Batch()
        file_exception(pipe, keys, record)
        await pipe.apply(redis)
        ids.append(record.exception_id)
    return ids


async def _open_metric(redis: Redis, settings: Settings, reason: str = "permanent") -> float:
    text = (await render(redis, settings)).decode()
    found = re.search(rf'^accord_exceptions_open{{entity="account",reason="{reason}"}} (\S+)$', text, re.M)
    assert found, "the open-exceptions gauge is missing"
    return float(found[1])


async def test_pages_cover_every_exception_once_in_filing_order(any_redis: Redis) -> None:
    settings = _settings()
    desk = ExceptionDesk(any_redis, Scope.of(settings))
    ids = await _file(any_redis, Keys(settings.namespace), 7)
    await desk.resolve(ids[1], "finance")
    seen, after = [], ""
    while True:
        page, after = await desk.page(Filters(state=None), limit=3, after=after)
        assert len(page) <= 3
        seen += [e.record.exception_id for e in page]
        if not after:
            break
    assert seen == ids
    assert [e.record.exception_id for e in await desk.list(Filters())] == [i for i in ids if i != ids[1]]
    app = Starlette(routes=desk_routes(settings, any_redis))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord") as client:
        first = (await client.get("/exceptions", params={"limit": "4"})).json()
        second = (await client.get("/exceptions", params={"limit": "4", "after": first["next"]})).json()
        assert [e["exception_id"] for e in first["exceptions"] + second["exceptions"]] == \
            [i for i in ids if i != ids[1]]
        assert second["next"] == ""
        assert (await client.get("/exceptions", params={"limit": "0"})).status_code == 400
        bad = await client.get("/exceptions", params={"after": "not-a-cursor"})
        assert bad.status_code == 400 and "start again without it" in bad.json()["error"]
    try:
        await desk.page(Filters(), 1, "x-y")
    except DeskError:
        pass
    else:
        raise AssertionError("a foreign cursor must be refused")


async def test_open_counts_follow_filing_and_settling_without_reading_exceptions(any_redis: Redis) -> None:
    settings = _settings()
    keys = Keys(settings.namespace)
    desk = ExceptionDesk(any_redis, Scope.of(settings))
    assert await _open_metric(any_redis, settings) == 0  # a known label set starts at 0
    ids = await _file(any_redis, keys, 4)
    assert await _open_metric(any_redis, settings) == 4
    await desk.skip(ids[0], "finance")
    pipe = Batch()  # a later success closes two (the writer knows the ids, not the reasons)
    desk.queue_closed(pipe, "account", "erp", "g1", ids[1:3], "written later")
    await pipe.apply(any_redis)
    assert await _open_metric(any_redis, settings) == 1
    await _file(any_redis, keys, 1, start=0)  # the skipped one filed again (a record read twice) stays settled
    assert await _open_metric(any_redis, settings) == 1
    await any_redis.delete(keys.exception_index())  # the gauge does not read the exceptions themselves
    assert await _open_metric(any_redis, settings) == 1


async def test_retention_drops_settled_exceptions_and_keeps_open_ones(any_redis: Redis) -> None:
    settings = _settings()
    keys = Keys(settings.namespace)
    desk = ExceptionDesk(any_redis, Scope.of(settings))
    ids = await _file(any_redis, keys, 3)
    await desk.resolve(ids[0], "finance")
    await desk.skip(ids[1], "finance")
    now = msgspec.msgpack.decode(await any_redis.hget(keys.exception_state(), ids[1]))["at_ms"]
    assert await trim_settled(any_redis, keys, retention_ms=60_000, now_ms=now + 59_000) == 0
    assert await trim_settled(any_redis, keys, retention_ms=60_000, now_ms=now + 61_000) == 2
    assert await any_redis.hlen(keys.exception_index()) == 1 and await any_redis.hlen(keys.exception_state()) == 0
    assert [e.record.exception_id for e in await desk.list(Filters(state=None))] == [ids[2]]
    assert await trim_settled(any_redis, keys, retention_ms=0, now_ms=now + 10**9) == 0  # open: kept
    filed, acted = await any_redis.xlen(keys.exceptions()), await any_redis.xlen(keys.desk_audit())
    assert (filed, acted) == (3, 2)
    assert await trim_streams(any_redis, keys, 10**12, 10**12, now_ms=now) == 0
    assert await trim_streams(any_redis, keys, 0, 0, now_ms=int(time.time() * 1000) + 1) == 5


async def test_exceptions_filed_before_the_ledger_are_listed_once_on_start(any_redis: Redis) -> None:
    settings = _settings()
    keys = Keys(settings.namespace)
    ids = await _file(any_redis, keys, 3)
    await ExceptionDesk(any_redis, Scope.of(settings)).resolve(ids[2], "finance")
    for key in (keys.exceptions_by_time(), keys.exceptions_open_all(), keys.exceptions_settled(),
                keys.exceptions_open_kind("account", "permanent")):
        await any_redis.delete(key)  # as an earlier version left them: index and state only
    assert await build_once(any_redis, keys) == 3
    assert await build_once(any_redis, keys) == 0
    assert await _open_metric(any_redis, settings) == 2
    desk = ExceptionDesk(any_redis, Scope.of(settings))
    assert [e.record.exception_id for e in await desk.list(Filters())] == ids[:2]
    assert [e.record.exception_id for e in await desk.list(Filters(state="resolved"))] == [ids[2]]
