"""Fixtures shared by the Salesforce connector tests (other connectors' tests define their own)."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
