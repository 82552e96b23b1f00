"""The Salesforce plug-in's sandbox factory (``SystemSpec.sandbox``): a fresh org and settings that reach it."""

from __future__ import annotations

from accord.connectors.salesforce.settings import SalesforceSettings
from accord.sandboxes.local import Simulator
from accord.sandboxes.salesforce.sandbox import SalesforceState, build_app


def settings(state: SalesforceState, base_url: str) -> SalesforceSettings:
    return SalesforceSettings(base_url=base_url, client_id=state.client_id, client_secret=state.client_secret)


def local(*, quota_scale: float = 1.0) -> Simulator[SalesforceState]:
    return Simulator(SalesforceState(quota_scale=quota_scale), build_app, settings)
