"""Fixtures shared by the connector tests: a sandbox per test and connectors on it, per system."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from accord.config.types import Duration, RateLimit
from accord.connectors.harvest.client import HarvestConnector
from accord.connectors.harvest.settings import HarvestSettings
from accord.connectors.quickbooks.client import QuickBooksConnector
from accord.connectors.salesforce.client import SalesforceConnector
from accord.sandboxes.harvest.sandbox import HarvestState
from accord.sandboxes.harvest.sandbox import build_app as build_harvest
from accord.sandboxes.quickbooks.sandbox import QuickBooksState
from accord.sandboxes.salesforce.sandbox import SalesforceState, build_app
from accord.sandboxes.server import Clock
from tests.connectors import harvest_rig, qbo_rig
from tests.connectors.sf_rig import START, Recorder, settings


@pytest.fixture
def sf_state() -> SalesforceState:
    return SalesforceState(clock=Clock(start=START))


@pytest.fixture
async def sf_recorder(sf_state: SalesforceState) -> AsyncIterator[Recorder]:
    yield Recorder(build_app(sf_state))


@pytest.fixture
async def sf(sf_recorder: Recorder) -> AsyncIterator[SalesforceConnector]:
    connector = SalesforceConnector(settings(), transport=sf_recorder)
    yield connector
    await connector.aclose()


@pytest.fixture
async def sf_api(sf_recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    """A plain REST client on the sandbox org with a valid session (for tests of the API itself)."""
    async with httpx.AsyncClient(transport=sf_recorder, base_url="http://sf.test") as client:
        token = await client.post("/services/oauth2/token", data={"grant_type": "client_credentials"},
                                  auth=("accord-sandbox", "sandbox-secret"))
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


@pytest.fixture
def qbo_state() -> QuickBooksState:
    return qbo_rig.new_state()


@pytest.fixture
async def make_qbo(qbo_state: QuickBooksState) -> AsyncIterator[Callable[..., QuickBooksConnector]]:
    """Connectors on the test's realm (``cache``, ``hook`` and settings overrides as keywords)."""
    made: list[QuickBooksConnector] = []

    def factory(**options: Any) -> QuickBooksConnector:
        made.append(qbo_rig.connector(qbo_state, **options))
        return made[-1]

    yield factory
    for connector in made:
        await connector.aclose()


@pytest.fixture
def qbo(make_qbo: Callable[..., QuickBooksConnector]) -> QuickBooksConnector:
    return make_qbo()


_HARVEST_ACCOUNTS = itertools.count(7_000_001)  # one account per connector test: limiters are per loop


@pytest.fixture
def harvest_sandbox() -> HarvestState:
    """The sandbox as it ships (account 1234567, Harvest's own rate limit), for tests of the API itself."""
    return HarvestState(clock=Clock(start=harvest_rig.START))


@pytest.fixture
async def harvest_api(harvest_sandbox: HarvestState) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_harvest(harvest_sandbox)),
                                 base_url="http://harvest.test", headers=harvest_rig.HEADERS) as client:
        yield client


@pytest.fixture
def harvest_state() -> HarvestState:
    """A sandbox account of its own with a generous limit, for connector tests."""
    return HarvestState(clock=Clock(start=harvest_rig.START), account_id=str(next(_HARVEST_ACCOUNTS)), rate_limit=100_000)


@pytest.fixture
async def make_harvest(harvest_state: HarvestState) -> AsyncIterator[Callable[..., HarvestConnector]]:
    """Connectors on the test's account (settings overrides as keywords)."""
    made: list[HarvestConnector] = []

    def factory(**overrides: Any) -> HarvestConnector:
        settings = HarvestSettings(**{"base_url": "http://harvest.test", "account_id": harvest_state.account_id,
                                      "access_token": "sandbox-pat",
                                      "rate_limit": RateLimit(requests=100_000, period=Duration(15.0)), **overrides})
        made.append(HarvestConnector(settings, transport=httpx.ASGITransport(app=build_harvest(harvest_state)),
                                     now=harvest_state.clock.now))
        return made[-1]

    yield factory
    for connector in made:
        await connector.aclose()
