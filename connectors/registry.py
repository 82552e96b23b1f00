"""Build a connector from its settings Struct (the ``kind`` tag picks the implementation)."""

from __future__ import annotations

from accord.connectors.base import CallStats, Connector, TokenCache


def build_connector(name: str, settings: object, *, token_cache: TokenCache | None = None,
                    share: float = 1.0, stats: CallStats | None = None) -> Connector:
    """The connector for configured system ``name`` (imports lazily: actors load only their own)."""
    from accord.connectors.harvest.settings import HarvestSettings
    from accord.connectors.quickbooks.settings import QuickBooksSettings
    from accord.connectors.salesforce.settings import SalesforceSettings

    if isinstance(settings, SalesforceSettings):
        from accord.connectors.salesforce.client import SalesforceConnector

        return SalesforceConnector(settings, name=name, token_cache=token_cache, share=share, stats=stats)
    if isinstance(settings, QuickBooksSettings):
        from accord.connectors.quickbooks.client import QuickBooksConnector

        return QuickBooksConnector(settings, name=name, token_cache=token_cache, share=share, stats=stats)
    if isinstance(settings, HarvestSettings):
        from accord.connectors.harvest.client import HarvestConnector

        return HarvestConnector(settings, name=name, token_cache=token_cache, share=share, stats=stats)
    raise TypeError(f"system `{name}`: no connector for settings of type {type(settings).__name__}")
