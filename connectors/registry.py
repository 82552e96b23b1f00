"""The registered systems: look up a plug-in by settings or kind, and build a connector from its settings."""

from __future__ import annotations

from typing import Any, cast

from accord.config.systems import SystemSettings, plugin_for_kind, plugin_of
from accord.connectors.base import CallStats, Connector, TokenCache
from accord.connectors.budget import RequestBudget
from accord.connectors.spec import SystemSpec


def spec_of(settings: SystemSettings) -> SystemSpec[Any]:
    """The plug-in of a configured system (by the type of its settings)."""
    return cast(SystemSpec[Any], plugin_of(settings))


def spec_for_kind(kind: str) -> SystemSpec[Any] | None:
    return cast("SystemSpec[Any] | None", plugin_for_kind(kind))


def build_connector(name: str, settings: SystemSettings, *, token_cache: TokenCache | None = None,
                    budget: RequestBudget | None = None, stats: CallStats | None = None) -> Connector:
    """The connector for configured system ``name``."""
    return spec_of(settings).connector(settings, name=name, token_cache=token_cache, budget=budget, stats=stats)
