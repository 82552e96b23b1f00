"""The Salesforce plug-in's sandbox factory (``SystemSpec.sandbox``): a fresh org and settings that reach it."""

from __future__ import annotations

from typing import Any

from accord.connectors.salesforce.settings import SalesforceSettings
from accord.sandboxes.salesforce.sandbox import SalesforceState, build_app


class LocalSalesforce:
    def __init__(self, **options: Any) -> None:
        self.state = SalesforceState(**options)

    def app(self) -> Any:
        return build_app(self.state)

    def settings(self, base_url: str) -> SalesforceSettings:
        return SalesforceSettings(base_url=base_url, client_id=self.state.client_id,
                                  client_secret=self.state.client_secret)


def local() -> LocalSalesforce:
    return LocalSalesforce()
