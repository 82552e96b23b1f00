"""The registry of system kinds: each kind of system Accord connects (salesforce, quickbooks, harvest, ...)
is one plug-in, registered once.

A plug-in is found in two ways: an installed distribution names it under the ``accord.systems`` entry-point
group (Accord's own systems are listed in its ``pyproject.toml``), or code calls ``register`` on import (a
package that is not installed, as the tests' fourth system does in its ``__init__``). Configuration needs
only a plug-in's ``kind`` and ``settings`` type; the whole plug-in contract (connector, mapper, capabilities,
sandbox) is ``accord.connectors.spec.SystemSpec``. Nothing here survives a restart: the table is rebuilt
from the entry points in each process.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol, TypeVar

import msgspec

from accord.config.types import AccountLimits

ENTRY_POINT_GROUP = "accord.systems"


class SystemSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """Base of one ``[systems.<name>]`` table; a plug-in's subclass sets ``tag`` to its kind.

    ``webhook_secret``: verifies notifications sent to ``/webhooks/<name>`` where the system's API signs none
    (Accord's ``X-Accord-Signature``) or where its plug-in asks for a shared secret (Salesforce)."""

    webhook_secret: str | None = None

    def limits(self) -> AccountLimits:
        """Every documented limit of the account, enforced by its shared request budget (none here)."""
        return AccountLimits()


class Plugin(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def settings(self) -> type[SystemSettings]: ...


P = TypeVar("P", bound=Plugin)

_registered: dict[str, Plugin] = {}
_discovered = False


class PluginError(Exception):
    """A plug-in cannot be registered (its kind is taken, or its entry point does not load)."""


def register(plugin: P) -> P:
    """Make a kind of system known in this process; registering the same plug-in twice is a no-op."""
    known = _registered.get(plugin.kind)
    if known is not None and known is not plugin and known.settings is not plugin.settings:
        raise PluginError(f"system kind `{plugin.kind}` is already registered by {known.settings.__module__}; "
                          "give the plug-in another kind")
    _registered[plugin.kind] = plugin
    return plugin


def plugins() -> dict[str, Plugin]:
    """Every known kind, by name (the entry points are loaded on the first call)."""
    _discover()
    return dict(sorted(_registered.items()))


def plugin_for_kind(kind: str) -> Plugin | None:
    return plugins().get(kind)


def plugin_of(settings: SystemSettings) -> Plugin:
    """The plug-in whose settings type ``settings`` is (or derives from)."""
    for plugin in plugins().values():
        if isinstance(settings, plugin.settings):
            return plugin
    raise PluginError(f"no system plug-in has settings of type {type(settings).__qualname__}; register its "
                      f"plug-in (an `{ENTRY_POINT_GROUP}` entry point, or `register(...)` on import)")


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugin = point.load()
        except Exception as exc:  # a broken plug-in stops the start, by name
            raise PluginError(f"entry point `{point.name} = {point.value}` ({ENTRY_POINT_GROUP}) does not load: "
                              f"{exc}") from exc
        register(plugin)
