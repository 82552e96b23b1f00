"""The QuickBooks plug-in's sandbox factory (``SystemSpec.sandbox``): a fresh company and settings that reach it."""

from __future__ import annotations

from accord.connectors.quickbooks.settings import QuickBooksSettings
from accord.sandboxes.local import Simulator
from accord.sandboxes.quickbooks.sandbox import QuickBooksState, build_app


def settings(state: QuickBooksState, base_url: str) -> QuickBooksSettings:
    return QuickBooksSettings(base_url=base_url, token_url=f"{base_url}/oauth2/v1/tokens/bearer",
                              realm_id=state.realm_id, client_id=state.client_id,
                              client_secret=state.client_secret, refresh_token=state.refresh_token)


def local(*, quota_scale: float = 1.0) -> Simulator[QuickBooksState]:
    return Simulator(QuickBooksState(quota_scale=quota_scale), build_app, settings)
