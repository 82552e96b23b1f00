"""The plug-in contract of a system: one ``SystemSpec`` per kind of system, registered once.

A system lives in its own package (``accord.connectors.<kind>``) and names its spec in ``pyproject.toml``
under the ``accord.systems`` entry points; nothing else in Accord names it. The config reads the spec's
``settings`` type, the actors build connectors through ``connector``, ``accord map`` uses ``mapper``, the
web surface asks ``verify_webhook`` (True: verified; False: forged; None: nothing configured to verify
with, so refused), the poller reads ``capabilities``, and the demo and the tests start the
simulator named by ``sandbox`` (a dotted path, so product code never imports a simulator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from accord.config.systems import SystemSettings
from accord.connectors.base import CallStats, Connector, SourceRecord, TokenCache
from accord.connectors.budget import RequestBudget
from accord.connectors.check import CheckHook

S = TypeVar("S", bound=SystemSettings)
S_contra = TypeVar("S_contra", bound=SystemSettings, contravariant=True)


class Mapper(Protocol):
    """A system's wire records ↔ canonical fields, one signature for every system."""

    def to_canonical(self, entity: str, wire: Mapping[str, Any]) -> SourceRecord:
        """One wire record as the poller would read it (fields in canonical names)."""
        ...

    def to_wire(self, entity: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The wire fields that write exactly ``fields`` (a sparse update)."""
        ...


class ConnectorFactory(Protocol[S_contra]):
    def __call__(self, settings: S_contra, *, name: str, token_cache: TokenCache | None, budget: RequestBudget | None,
                 stats: CallStats | None) -> Connector: ...


@runtime_checkable
class IdScanner(Protocol):
    """A connector of a system without a delete feed lists every live id, so deletes are found by absence;
    ``scan_interval`` is how often (seconds)."""

    scan_interval: float

    async def scan_ids(self, entity: str) -> Sequence[str | int]: ...


@dataclass(frozen=True)
class WebhookRequest:
    """A notification as it arrived: raw body, headers (case-insensitive) and URL query parameters."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What the generic code may expect of a system.

    ``deletes``: ``"feed"`` when fetched pages report deletes, ``"scan"`` when the connector is an
    ``IdScanner`` and deletes are found by a periodic scan of ids.
    ``webhooks``: the system sends change notifications to ``/webhooks/<name>``.
    """

    deletes: Literal["feed", "scan"] = "feed"
    webhooks: bool = False


@dataclass(frozen=True, kw_only=True)
class SystemSpec(Generic[S]):
    """One kind of system. ``connector`` and ``mapper`` import their modules lazily: an actor loads only
    the systems it talks to. ``check_connection`` is the optional connection check
    (``accord.connectors.check``). ``sandbox`` is ``"module:callable"``; the callable returns a
    ``accord.sandboxes.server.LocalSandbox``."""

    kind: str
    settings: type[S]
    connector: ConnectorFactory[S]
    mapper: Callable[[S], Mapper]
    capabilities: Capabilities = Capabilities()
    verify_webhook: Callable[[S, WebhookRequest], bool | None] | None = None
    webhook_secret_setting: str | None = None  # the setting ``verify_webhook`` needs (named when it is unset)
    webhook_ack: tuple[str, bytes] | None = None  # (media type, body) a verified notification is answered with
    check_connection: CheckHook[S] | None = None
    sandbox: str | None = None
