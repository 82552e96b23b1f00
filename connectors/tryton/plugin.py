"""Tryton as an Accord system plug-in (named by the ``accord.systems`` entry point ``tryton``)."""

from __future__ import annotations

from accord.connectors.base import CallStats, Connector, TokenCache
from accord.connectors.budget import RequestBudget
from accord.connectors.spec import Capabilities, Mapper, SystemSpec
from accord.connectors.tryton.settings import TrytonSettings


def _connector(settings: TrytonSettings, *, name: str, token_cache: TokenCache | None, budget: RequestBudget | None,
               stats: CallStats | None) -> Connector:
    from accord.connectors.tryton.client import TrytonConnector

    return TrytonConnector(settings, name=name, budget=budget, stats=stats)


def _mapper(_: TrytonSettings) -> Mapper:
    from accord.connectors.tryton.mapping import TrytonMapper

    return TrytonMapper()


SYSTEM = SystemSpec(kind="tryton", settings=TrytonSettings, connector=_connector, mapper=_mapper,
                    capabilities=Capabilities(deletes="scan"))
