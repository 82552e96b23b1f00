"""Quota fidelity of the Harvest and Salesforce sandboxes over HTTP, on a frozen sandbox clock (time moves only
when a test advances it). The shared bookkeeping and QuickBooks are in ``test_sandbox_quotas``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from accord.sandboxes.harvest.sandbox import HarvestState
from accord.sandboxes.harvest.sandbox import build_app as build_harvest
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.salesforce.sandbox import build_app as build_sf
from accord.sandboxes.server import Clock

START = 1_775_124_930.0  # 2026-04-02T10:15:30Z; quarter seconds are exact at this magnitude
HARVEST_HEADERS = {"Harvest-Account-Id": "1234567", "User-Agent": "Quota test (q@x.io)"}


# -- Harvest: 100 requests per 15 s per token ------------------------------------------------------------

def harvest_client(state: HarvestState) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=build_harvest(state)), base_url="http://harvest.test",
                             headers=HARVEST_HEADERS)


async def harvest_statuses(client: httpx.AsyncClient, n: int, token: str = "a") -> list[int]:
    return [(await client.get("/v2/users", headers={"Authorization": f"Bearer {token}"})).status_code
            for _ in range(n)]


async def harvest_refusal(client: httpx.AsyncClient, retry_after: str, *, limit: int = 100) -> None:
    response = await client.get("/v2/users", headers={"Authorization": "Bearer a"})
    assert response.status_code == 429 and response.headers["Retry-After"] == retry_after
    assert response.json() == {"message": f"Retry later ({limit} requests per 15 seconds); "
                                          f"retry in {retry_after} seconds"}


@pytest.fixture
async def harvest() -> AsyncIterator[tuple[HarvestState, httpx.AsyncClient]]:
    state = HarvestState(clock=Clock(start=START, frozen=True), tokens=("a", "b"))
    async with harvest_client(state) as client:
        yield state, client


async def test_harvest_100_requests_per_15_seconds_per_token(harvest: tuple[HarvestState, httpx.AsyncClient]) -> None:
    state, client = harvest
    assert await harvest_statuses(client, 100) == [200] * 100
    await harvest_refusal(client, "15")
    assert await harvest_statuses(client, 100, token="b") == [200] * 100  # another token, another window
    assert await harvest_statuses(client, 3, token="nope") == [401] * 3  # not counted
    state.clock.advance(14.75)
    await harvest_refusal(client, "1")  # 0.25 s left, rounded up
    state.clock.advance(0.25)  # the first 100 leave the window together
    assert await harvest_statuses(client, 101) == [200] * 100 + [429]
    assert state.quota_stats()["throttled"] == {"per_15s": 3}
    assert state.quota_stats()["accepted"] == {"per_15s": 300}
    assert [e.status for e in state.requests.entries("users")].count(429) == 3


async def test_harvest_window_slides_request_by_request(harvest: tuple[HarvestState, httpx.AsyncClient]) -> None:
    state, client = harvest
    state.rate_limit = 3  # tuned at run time, as the connector tests do
    for _ in range(3):  # START, START + 5, START + 10
        assert await harvest_statuses(client, 1) == [200]
        state.clock.advance(5.0)
    assert await harvest_statuses(client, 1) == [200]  # START + 15: the first request left just now
    await harvest_refusal(client, "5", limit=3)  # the next to leave is START + 5's
    state.clock.advance(4.75)
    await harvest_refusal(client, "1", limit=3)
    state.clock.advance(0.25)
    assert await harvest_statuses(client, 2) == [200, 429]


async def test_harvest_quota_scale_shortens_the_window() -> None:
    state = HarvestState(clock=Clock(start=START, frozen=True), tokens=("a",), quota_scale=4)
    async with harvest_client(state) as client:
        assert await harvest_statuses(client, 100) == [200] * 100
        await harvest_refusal(client, "3.75")  # 15 s / 4, in decimal seconds
        state.clock.advance(1.25)
        await harvest_refusal(client, "2.5")
        state.clock.advance(2.5)
        assert await harvest_statuses(client, 101) == [200] * 100 + [429]
        assert state.rate_period == 15.0 and state.quota_stats()["limits"]["per_15s"]["window"] == 3.75


# -- Salesforce: the org's daily requests over a rolling 24 h -------------------------------------------

V = "/services/data/v66.0"
LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


@contextlib.asynccontextmanager
async def sf_org(state: SalesforceState) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_sf(state)), base_url="http://sf.test") as client:
        token = await client.post("/services/oauth2/token", data={"grant_type": "client_credentials"},
                                  auth=("accord-sandbox", "sandbox-secret"))
        assert token.headers["Sforce-Limit-Info"] == "api-usage=0/3"  # every response carries it; tokens are free
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


async def sf_call(client: httpx.AsyncClient, usage: str, status: int = 200) -> httpx.Response:
    response = await client.get(f"{V}/sobjects")
    assert (response.status_code, response.headers["Sforce-Limit-Info"]) == (status, f"api-usage={usage}")
    assert "Retry-After" not in response.headers  # Salesforce sends none, even on a refusal
    if status == 403:
        assert response.json() == LIMIT_EXCEEDED
    return response


@pytest.fixture
async def sf() -> AsyncIterator[tuple[SalesforceState, httpx.AsyncClient]]:
    state = SalesforceState(clock=Clock(start=START, frozen=True), api_limit=3, token_ttl=10**7)
    async with sf_org(state) as client:
        yield state, client


async def test_sf_daily_limit_is_a_rolling_24_hours(sf: tuple[SalesforceState, httpx.AsyncClient]) -> None:
    state, client = sf
    await sf_call(client, "1/3")
    state.clock.advance(3600)
    await sf_call(client, "2/3")
    state.clock.advance(3600)
    await sf_call(client, "3/3")
    for _ in range(3):
        await sf_call(client, "3/3", 403)  # refusals do not count
    state.clock.advance(86400 - 7200 - 0.25)  # past midnight UTC, yet the first call is still in the 24 h
    await sf_call(client, "3/3", 403)
    state.clock.advance(0.25)  # START + 24 h: the first call leaves the window
    await sf_call(client, "3/3")
    await sf_call(client, "3/3", 403)
    limits = (await client.get(f"{V}/limits")).json()  # refused too, but its 403 still says why
    assert limits == LIMIT_EXCEEDED
    state.clock.advance(3600)  # the second call leaves
    assert (await client.get(f"{V}/limits")).json()["DailyApiRequests"] == {"Max": 3, "Remaining": 0}
    assert state.usage() == (3, 3)
    assert state.quota_stats()["throttled"] == {"daily": 6}
    assert state.quota_stats()["accepted"] == {"daily": 5}


async def test_sf_uncounted_answers_still_carry_the_usage(sf: tuple[SalesforceState, httpx.AsyncClient]) -> None:
    state, client = sf
    await sf_call(client, "1/3")
    expired = await client.get(f"{V}/sobjects", headers={"Authorization": "Bearer nope"})
    assert expired.status_code == 401 and expired.headers["Sforce-Limit-Info"] == "api-usage=1/3"
    old = await client.get("/services/data/v45.0/sobjects")
    assert old.status_code == 404 and old.headers["Sforce-Limit-Info"] == "api-usage=1/3"
    versions = await client.get("/services/data/")
    assert versions.status_code == 200 and versions.headers["Sforce-Limit-Info"] == "api-usage=1/3"
    assert state.usage() == (1, 3)


async def test_sf_quota_scale_shortens_the_day() -> None:
    state = SalesforceState(clock=Clock(start=START, frozen=True), api_limit=3, token_ttl=10**7, quota_scale=96)
    async with sf_org(state) as client:
        for usage in ("1/3", "2/3", "3/3"):
            await sf_call(client, usage)
        await sf_call(client, "3/3", 403)
        state.clock.advance(899.75)  # 86400 s / 96 = 900 s
        await sf_call(client, "3/3", 403)
        state.clock.advance(0.25)
        assert state.usage() == (0, 3)
        await sf_call(client, "1/3")
        admin = (await client.get("/__sandbox__/quotas")).json()
        assert admin["quota_scale"] == 96.0 and admin["limits"]["daily"] == {
            "limit": 3, "period": 86400.0, "scaled_limit": 3, "window": 900.0}
        assert admin["throttled"] == {"daily": 2} and admin["usage"]["daily"] == {state.org_id: 1}
