"""Harvest as an Accord system plug-in (named by the ``accord.systems`` entry point ``harvest``)."""

from __future__ import annotations

from accord.connectors.base import CallStats, Connector, TokenCache
from accord.connectors.budget import RequestBudget
from accord.connectors.check import CheckContext, Report
from accord.connectors.harvest.settings import HarvestSettings
from accord.connectors.spec import Capabilities, Mapper, SystemSpec


def _connector(settings: HarvestSettings, *, name: str, token_cache: TokenCache | None, budget: RequestBudget | None,
               stats: CallStats | None) -> Connector:
    from accord.connectors.harvest.client import HarvestConnector

    return HarvestConnector(settings, name=name, token_cache=token_cache, budget=budget, stats=stats)


def _mapper(_: HarvestSettings) -> Mapper:
    from accord.connectors.harvest.mapping import HarvestMapper

    return HarvestMapper()


async def _check_connection(settings: HarvestSettings, context: CheckContext) -> Report:
    from accord.connectors.harvest.check import check_connection

    return await check_connection(settings, context)


SYSTEM = SystemSpec(kind="harvest", settings=HarvestSettings, connector=_connector, mapper=_mapper,
                    check_connection=_check_connection,
                    capabilities=Capabilities(deletes="scan"),
                    sandbox="accord.sandboxes.harvest.local:local")
