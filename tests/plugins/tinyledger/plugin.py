"""TinyLedger's ``SystemSpec``."""

from __future__ import annotations

from accord.connectors.base import CallStats, Connector, TokenCache
from accord.connectors.budget import RequestBudget
from accord.connectors.spec import Capabilities, Mapper, SystemSpec
from tests.plugins.tinyledger.settings import TinyLedgerSettings


def _connector(settings: TinyLedgerSettings, *, name: str, token_cache: TokenCache | None, budget: RequestBudget | None,
               stats: CallStats | None) -> Connector:
    from tests.plugins.tinyledger.connector import TinyLedgerConnector

    return TinyLedgerConnector(settings, name=name, stats=stats)


def _mapper(_: TinyLedgerSettings) -> Mapper:
    from tests.plugins.tinyledger.mapping import TinyLedgerMapper

    return TinyLedgerMapper()


SYSTEM = SystemSpec(kind="tinyledger", settings=TinyLedgerSettings, connector=_connector, mapper=_mapper,
                    capabilities=Capabilities(deletes="feed"), sandbox="tests.plugins.tinyledger.sandbox:local")
