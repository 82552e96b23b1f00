"""Salesforce as an Accord system plug-in (named by the ``accord.systems`` entry point ``salesforce``)."""

from __future__ import annotations

from accord.connectors.base import CallStats, Connector, TokenCache
from accord.connectors.budget import RequestBudget
from accord.connectors.check import CheckContext, Report
from accord.connectors.salesforce.settings import SalesforceSettings
from accord.connectors.salesforce.webhooks import ACK as OUTBOUND_ACK
from accord.connectors.salesforce.webhooks import verify_outbound_message
from accord.connectors.spec import Capabilities, Mapper, SystemSpec


def _connector(settings: SalesforceSettings, *, name: str, token_cache: TokenCache | None, budget: RequestBudget | None,
               stats: CallStats | None) -> Connector:
    from accord.connectors.salesforce.client import SalesforceConnector

    return SalesforceConnector(settings, name=name, token_cache=token_cache, budget=budget, stats=stats)


def _mapper(settings: SalesforceSettings) -> Mapper:
    from accord.connectors.salesforce.mapping import SalesforceMapper

    return SalesforceMapper(multi_currency=settings.multi_currency, external_id_field=settings.external_id_field)


async def _check_connection(settings: SalesforceSettings, context: CheckContext) -> Report:
    from accord.connectors.salesforce.check import check_connection

    return await check_connection(settings, context)


SYSTEM = SystemSpec(kind="salesforce", settings=SalesforceSettings, connector=_connector, mapper=_mapper,
                    check_connection=_check_connection,
                    capabilities=Capabilities(deletes="feed"), verify_webhook=verify_outbound_message,
                    webhook_secret_setting="webhook_secret", webhook_ack=("text/xml", OUTBOUND_ACK),
                    sandbox="accord.sandboxes.salesforce.local:local")
