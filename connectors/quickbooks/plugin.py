"""QuickBooks Online as an Accord system plug-in (named by the ``accord.systems`` entry point ``quickbooks``)."""

from __future__ import annotations

from accord.connectors.base import CallStats, Connector, TokenCache
from accord.connectors.budget import RequestBudget
from accord.connectors.check import CheckContext, Report
from accord.connectors.quickbooks.settings import QuickBooksSettings
from accord.connectors.spec import Capabilities, Mapper, SystemSpec, WebhookRequest


def _connector(settings: QuickBooksSettings, *, name: str, token_cache: TokenCache | None, budget: RequestBudget | None,
               stats: CallStats | None) -> Connector:
    from accord.connectors.quickbooks.client import QuickBooksConnector

    return QuickBooksConnector(settings, name=name, token_cache=token_cache, budget=budget, stats=stats)


def _mapper(_: QuickBooksSettings) -> Mapper:
    from accord.connectors.quickbooks.mapping import QuickBooksMapper

    return QuickBooksMapper()


def _verify_webhook(settings: QuickBooksSettings, hook: WebhookRequest) -> bool | None:
    """Intuit signs each notification (``intuit-signature``) with the app's verifier token; None (refused)
    when no verifier is configured."""
    if not settings.webhook_verifier:
        return None
    from accord.connectors.quickbooks.webhooks import verify_webhook

    return verify_webhook(hook.body, hook.headers.get("intuit-signature", ""), settings.webhook_verifier)


async def _check_connection(settings: QuickBooksSettings, context: CheckContext) -> Report:
    from accord.connectors.quickbooks.check import check_connection

    return await check_connection(settings, context)


SYSTEM = SystemSpec(kind="quickbooks", settings=QuickBooksSettings, connector=_connector, mapper=_mapper,
                    check_connection=_check_connection,
                    capabilities=Capabilities(deletes="feed", webhooks=True), verify_webhook=_verify_webhook,
                    webhook_secret_setting="webhook_verifier", sandbox="accord.sandboxes.quickbooks.local:local")
