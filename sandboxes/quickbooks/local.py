"""The QuickBooks plug-in's sandbox factory (``SystemSpec.sandbox``): a fresh company and settings that reach it."""

from __future__ import annotations

from typing import Any

from accord.connectors.quickbooks.settings import QuickBooksSettings
from accord.sandboxes.quickbooks.sandbox import QuickBooksState, build_app


class LocalQuickBooks:
    def __init__(self, **options: Any) -> None:
        self.state = QuickBooksState(**options)

    def app(self) -> Any:
        return build_app(self.state)

    def settings(self, base_url: str) -> QuickBooksSettings:
        state = self.state
        return QuickBooksSettings(base_url=base_url, token_url=f"{base_url}/oauth2/v1/tokens/bearer",
                                  realm_id=state.realm_id, client_id=state.client_id,
                                  client_secret=state.client_secret, refresh_token=state.refresh_token)


def local() -> LocalQuickBooks:
    return LocalQuickBooks()
