"""Quota fidelity: the shared sliding-window bookkeeping (``sandboxes.quota``) and QuickBooks' per-realm quotas
over HTTP, on a frozen sandbox clock (time moves only when a test advances it, so every edge is exact).
Harvest's and Salesforce's quotas are in ``test_sandbox_quotas_apis``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from accord.sandboxes.firm.world import World
from accord.sandboxes.local import start_local
from accord.sandboxes.quickbooks.sandbox import QuickBooksState, build_app
from accord.sandboxes.quota import Quotas, Refusal, Ticket, check_scale, retry_after_value
from accord.sandboxes.server import Clock

START = 1_780_000_000.0  # quarter seconds are exact at this magnitude


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (the event loop keeps serving the sandbox meanwhile), at most 5 s. The sandbox
    signals nothing when a request takes a slot, so this polls the quota's own count."""
    async with asyncio.timeout(5.0):
        while not condition():  # noqa: ASYNC110 - no event to wait on; the deadline bounds the wait
            await asyncio.sleep(0.001)


# -- the shared bookkeeping ------------------------------------------------------------------------------

class FakeNow:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_window_slides_and_frees_a_slot_exactly_when_the_oldest_request_leaves() -> None:
    now = FakeNow()
    quotas = Quotas(now)
    quotas.window("w", 3, 10.0)
    for t in (0.0, 1.0, 2.0):
        now.t = t
        assert isinstance(quotas.admit("k", ["w"]), Ticket)
    now.t = 5.0
    assert quotas.admit("k", ["w"]) == Refusal("w", 5.0, "5")
    now.t = 9.75
    assert quotas.admit("k", ["w"]) == Refusal("w", 0.25, "1")  # whole seconds, rounded up
    now.t = 10.0  # the request of t=0 leaves the window (10 - 10, 10]: refusals took no slot
    assert isinstance(quotas.admit("k", ["w"]), Ticket)
    assert quotas.admit("k", ["w"]) == Refusal("w", 1.0, "1")  # next to leave: t=1
    assert isinstance(quotas.admit("other", ["w"]), Ticket)  # each key has its own window
    assert (quotas.used("w", "k"), quotas.accepted(), quotas.throttled()) == (3, {"w": 5}, {"w": 3})


def test_a_refused_request_counts_nowhere_and_is_charged_to_its_binding_quota() -> None:
    now = FakeNow()
    quotas = Quotas(now)
    quotas.window("minute", 2, 60.0)
    quotas.window("second", 1, 1.0)
    assert isinstance(quotas.admit("k", ["minute", "second"]), Ticket)
    assert quotas.admit("k", ["minute", "second"]) == Refusal("second", 1.0, "1")
    assert quotas.used("minute", "k") == 1  # the refused request did not count toward "minute"
    now.t = 1.0
    assert isinstance(quotas.admit("k", ["minute", "second"]), Ticket)
    # both refuse now; "minute" frees its slot last (t=60), so it binds and sets Retry-After
    assert quotas.admit("k", ["minute", "second"]) == Refusal("minute", 59.0, "59")
    assert quotas.throttled() == {"minute": 1, "second": 1}
    quotas.set_limit("minute", 1)  # a limit lowered below the usage: the slot frees when the newest leaves
    assert quotas.admit("k", ["minute"]) == Refusal("minute", 60.0, "60")


def test_a_concurrency_slot_is_released_once() -> None:
    quotas = Quotas(FakeNow())
    quotas.cap("c", 1)
    first = quotas.admit("k", ["c"])
    assert isinstance(first, Ticket)
    assert quotas.admit("k", ["c"]) == Refusal("c", 1.0, "1")
    first.release()
    first.release()  # idempotent: must not free a slot someone else holds
    second = quotas.admit("k", ["c"])
    assert isinstance(second, Ticket) and quotas.used("c", "k") == 1
    assert quotas.admit("k", ["c"]) == Refusal("c", 1.0, "1")


def test_quota_scale_divides_windows_and_retry_after_becomes_decimal() -> None:
    now = FakeNow()
    quotas = Quotas(now, scale=4)
    quotas.window("w", 1, 60.0)
    quotas.cap("c", 0)
    assert isinstance(quotas.admit("k", ["w"]), Ticket)
    now.t = 0.25
    assert quotas.admit("k", ["w"]) == Refusal("w", 14.75, "14.75")
    assert quotas.admit("k", ["c"]) == Refusal("c", 0.25, "0.25")
    now.t = 15.0
    assert isinstance(quotas.admit("k", ["w"]), Ticket)
    assert (retry_after_value(0.35, 20), retry_after_value(2.0, 4), retry_after_value(1e-5, 2)) == ("0.35", "2", "0.001")
    assert (retry_after_value(59.2, 1), retry_after_value(0.001, 1), retry_after_value(3.0, 1)) == ("60", "1", "3")
    with pytest.raises(ValueError, match="quota_scale `0.5` must be"):
        check_scale(0.5)
    with pytest.raises(ValueError):
        quotas.scale = float("inf")


def test_admission_is_thread_safe() -> None:
    quotas = Quotas(lambda: 0.0)
    quotas.window("w", 5000, 60.0)
    quotas.cap("c", 10**6)

    def burst() -> None:
        for _ in range(1000):
            quotas.admit("k", ["w", "c"])

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert quotas.accepted() == {"w": 5000, "c": 5000} and quotas.throttled() == {"w": 3000, "c": 0}
    assert quotas.used("w", "k") == 5000 and quotas.used("c", "k") == 5000


# -- QuickBooks over HTTP ----------------------------------------------------------------------------------

class Qbo:
    """A raw client on one realm with a valid token; ``get`` answers one ``GET /term`` and ``batch`` one
    ``POST /batch`` of ``items`` queries."""

    def __init__(self, client: httpx.AsyncClient, state: QuickBooksState) -> None:
        self.client, self.state = client, state
        self.base = f"/v3/company/{state.realm_id}"
        client.headers["Authorization"] = f"Bearer {state.issue_token()['access_token']}"

    async def get(self, path: str = "/term") -> httpx.Response:
        return await self.client.get(self.base + path, params={"minorversion": "75"})

    async def batch(self, items: int = 1) -> httpx.Response:
        body = {"BatchItemRequest": [{"bId": str(i), "Query": "SELECT * FROM Term"} for i in range(items)]}
        return await self.client.post(self.base + "/batch", params={"minorversion": "75"}, json=body)

    async def statuses(self, n: int) -> list[int]:
        return [(await self.get()).status_code for _ in range(n)]

    def advance(self, seconds: float) -> None:
        self.state.clock.advance(seconds)

    def in_flight(self) -> int:
        return self.state.quotas.used("concurrent", self.state.realm_id)


@pytest.fixture
def make_qbo() -> Callable[..., Any]:
    opened: list[httpx.AsyncClient] = []

    def make(**options: Any) -> Qbo:
        state = QuickBooksState(clock=Clock(start=START, frozen=True), **options)
        opened.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(state)), base_url="http://qbo.test"))
        return Qbo(opened[-1], state)

    return make


@pytest.fixture
async def qbo(make_qbo: Callable[..., Qbo]) -> AsyncIterator[Qbo]:
    api = make_qbo()
    yield api
    await api.client.aclose()


def assert_throttled(response: httpx.Response, retry_after: str) -> None:
    assert response.status_code == 429 and response.headers["Retry-After"] == retry_after
    fault = response.json()["fault"]
    assert fault["type"] == "SERVICE" and fault["error"][0]["code"] == "3001"
    assert fault["error"][0]["message"] == "message=ThrottleExceeded; errorCode=003001; statusCode=429"


async def test_qbo_10_per_second_and_500_per_minute_per_realm(qbo: Qbo) -> None:
    assert await qbo.statuses(10) == [200] * 10
    assert_throttled(await qbo.get(), "1")
    qbo.advance(0.75)
    assert_throttled(await qbo.get(), "1")  # 0.25 s left, rounded up to whole seconds
    qbo.advance(0.25)  # the ten requests of START leave the 1 s window
    assert await qbo.statuses(10) == [200] * 10
    for _ in range(48):  # ten a second, up to 500 in the minute
        qbo.advance(1.0)
        assert await qbo.statuses(10) == [200] * 10
    qbo.advance(1.0)  # START + 50 s: the per-second window is empty, the per-minute one full
    assert_throttled(await qbo.get(), "10")
    qbo.advance(9.75)
    assert_throttled(await qbo.get(), "1")
    qbo.advance(0.25)  # START + 60 s: the ten requests of START leave the minute
    assert await qbo.statuses(11) == [200] * 10 + [429]
    stats = qbo.state.quota_stats()
    # the last refusal is a tie (both windows free a slot in 1 s): the first quota named, per_minute, binds
    assert stats["throttled"] == {"per_minute": 3, "per_second": 2, "concurrent": 0, "batch": 0}
    assert stats["accepted"] == {"per_minute": 510, "per_second": 510, "concurrent": 510, "batch": 0}
    assert stats["usage"]["per_minute"] == {qbo.state.realm_id: 500}
    assert [e.fault for e in qbo.state.requests.entries("term")].count("limit") == 5


async def test_qbo_40_batches_per_minute_and_at_most_30_payloads(qbo: Qbo) -> None:
    for _ in range(40):  # four a second: under the per-second quota, which batches count toward too
        assert (await qbo.batch()).status_code == 200
        qbo.advance(0.25)
    assert_throttled(await qbo.batch(), "50")  # START + 10 s; the first batch leaves at START + 60 s
    assert (await qbo.get()).status_code == 200  # the batch quota binds /batch only
    qbo.advance(49.75)
    assert_throttled(await qbo.batch(), "1")
    qbo.advance(0.25)
    assert len((await qbo.batch(30)).json()["BatchItemResponse"]) == 30
    qbo.advance(0.25)
    too_big = await qbo.batch(31)
    assert too_big.status_code == 400
    assert too_big.json()["Fault"]["type"] == "ValidationFault"
    assert too_big.json()["Fault"]["Error"][0]["code"] == "2050"
    assert "1-30 items, got 31" in too_big.json()["Fault"]["Error"][0]["Detail"]
    stats = qbo.state.quota_stats()
    assert stats["accepted"]["batch"] == 42 and stats["accepted"]["per_minute"] == 43
    assert stats["throttled"] == {"per_minute": 0, "per_second": 0, "concurrent": 0, "batch": 2}


async def test_qbo_10_in_flight_slots_are_released_when_requests_finish(qbo: Qbo) -> None:
    qbo.state.faults.add("term", "slow", count=10, delay=1.0)  # holds ten slots for a real second
    held = [asyncio.create_task(qbo.get()) for _ in range(10)]
    await until(lambda: qbo.in_flight() == 10)
    qbo.advance(1.0)  # the per-second window is empty again: only the concurrency cap refuses
    assert_throttled(await qbo.get(), "1")
    assert [r.status_code for r in await asyncio.gather(*held)] == [200] * 10
    assert qbo.in_flight() == 0 and (await qbo.get()).status_code == 200
    assert qbo.state.quota_stats()["throttled"]["concurrent"] == 1


async def test_qbo_slots_are_released_when_requests_fail_or_are_cancelled(qbo: Qbo) -> None:
    qbo.state.max_concurrent = 1
    qbo.state.faults.add("term", "500")
    qbo.state.faults.add("term", "timeout", delay=0.01)
    assert [r.status_code for r in (await qbo.get(), await qbo.get())] == [500, 504]
    bad_minor = await qbo.client.get(qbo.base + "/term", params={"minorversion": "3"})
    assert bad_minor.status_code == 400 and qbo.in_flight() == 0
    qbo.state.faults.add("term", "slow", delay=30.0)
    abandoned = asyncio.create_task(qbo.get())  # the client gives up on a request held by the server
    await until(lambda: qbo.in_flight() == 1)
    assert_throttled(await qbo.get(), "1")
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert qbo.in_flight() == 0
    qbo.advance(1.0)
    assert (await qbo.get()).status_code == 200


async def test_qbo_quota_scale_shortens_windows_and_retry_after(make_qbo: Callable[..., Qbo]) -> None:
    qbo = make_qbo(quota_scale=4, rate_limit=3, per_second_limit=100)
    async with qbo.client:
        assert await qbo.statuses(4) == [200, 200, 200, 429]
        qbo.advance(0.25)
        assert_throttled(await qbo.get(), "14.75")  # 60 s / 4 = 15 s, decimal seconds
        qbo.advance(14.75)
        assert await qbo.statuses(4) == [200, 200, 200, 429]
        qbo.state.per_second_limit = 10  # not 10 per 0.25 s (below the 1 s floor): 40 per 1 s, the same rate
        qbo.advance(15.0)
        assert await qbo.statuses(3) == [200] * 3
        qbo.state.rate_limit = 500
        assert await qbo.statuses(38) == [200] * 37 + [429]
        assert qbo.state.quota_stats()["throttled"]["per_second"] == 1
        assert qbo.state.quota_stats()["limits"]["per_second"] == {"limit": 10, "period": 1.0, "scaled_limit": 40,
                                                                    "window": 1.0}
        qbo.advance(0.5)
        assert_throttled(await qbo.get(), "0.5")
        qbo.advance(0.5)
        assert (await qbo.get()).status_code == 200


async def test_qbo_quota_admin_endpoint(qbo: Qbo) -> None:
    await qbo.get()
    stats = (await qbo.client.get("/__sandbox__/quotas")).json()
    assert stats == {
        "quota_scale": 1.0,
        "limits": {"per_minute": {"limit": 500, "period": 60.0, "scaled_limit": 500, "window": 60.0},
                   "per_second": {"limit": 10, "period": 1.0, "scaled_limit": 10, "window": 1.0},
                   "batch": {"limit": 40, "period": 60.0, "scaled_limit": 40, "window": 60.0},
                   "concurrent": {"limit": 10, "in_flight": True}},
        "accepted": {"per_minute": 1, "per_second": 1, "batch": 0, "concurrent": 1},
        "throttled": {"per_minute": 0, "per_second": 0, "batch": 0, "concurrent": 0},
        "usage": {"per_minute": {qbo.state.realm_id: 1}, "per_second": {qbo.state.realm_id: 1}, "batch": {},
                  "concurrent": {qbo.state.realm_id: 0}}}
    scaled = (await qbo.client.post("/__sandbox__/quotas", json={"quota_scale": 20})).json()
    assert scaled["quota_scale"] == 20.0 and scaled["limits"]["per_minute"]["window"] == 3.0
    assert (await qbo.client.post("/__sandbox__/quotas", json={"quota_scale": 0.5})).status_code == 400
    reset = (await qbo.client.delete("/__sandbox__/quotas")).json()
    assert reset["accepted"]["per_minute"] == 0 and qbo.state.quota_scale == 20.0


def test_quota_scale_reaches_every_sandbox_the_world_and_start_local() -> None:
    world = World(quota_scale=20, qbo_per_second=10, qbo_batch_limit=40)
    assert (world.crm.quota_scale, world.erp.quota_scale, world.psa.quota_scale) == (20.0, 20.0, 20.0)
    assert (world.erp.rate_limit, world.erp.per_second_limit, world.erp.max_concurrent) == (500, 10, 10)
    assert world.erp.batch_limit == 40
    demo = World()  # the demo's defaults: real per-minute and in-flight ERP quotas, the rest raised
    assert (demo.erp.quota_scale, demo.erp.rate_limit, demo.erp.max_concurrent) == (1.0, 500, 10)
    assert (demo.crm.api_limit, demo.psa.rate_limit, demo.erp.per_second_limit) == (1_000_000, 100_000, 1_000_000)
    running = start_local("accord.sandboxes.quickbooks.local:local", quota_scale=20)
    try:
        stats = httpx.get(f"{running.server.url}/__sandbox__/quotas").json()
    finally:
        running.stop()
    assert stats["quota_scale"] == 20.0 and stats["limits"]["per_minute"]["window"] == 3.0
