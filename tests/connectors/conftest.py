"""Fixtures shared by the Salesforce and QuickBooks connector tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from accord.connectors.quickbooks.client import QuickBooksConnector
from accord.connectors.quickbooks.sandbox import QuickBooksState
from accord.connectors.salesforce.client import SalesforceConnector
from accord.connectors.salesforce.sandbox import SalesforceState, build_app
from accord.connectors.sandbox import Clock
from tests.connectors import qbo_rig
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
