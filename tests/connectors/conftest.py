"""Fixtures shared by the Salesforce connector tests (other connectors' tests define their own)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from accord.connectors.salesforce.client import SalesforceConnector
from accord.connectors.salesforce.sandbox import SalesforceState, build_app
from accord.connectors.sandbox import Clock
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
