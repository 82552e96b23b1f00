"""The optional connection check of a system plug-in (``SystemSpec.check_connection``), run by
``accord check --connect``.

A check authenticates with the configured credentials, makes one cheap read, and looks for what the
sync needs in that account (custom fields, accounts, features); it returns a ``Report``. It raises the
connector's own errors when the system cannot be reached or refuses the credentials, and ``finding_of``
turns those into findings, so a check only writes findings about what it found missing::

    Retryable (transport, 5xx, 429)      → "unreachable"   (exit 3: try again when it answers)
    AuthExpired, a 401/403 answer, or    → "refused"       (exit 1: fix the credentials)
      an OAuth2 refusal code (RFC 6749 §5.2: invalid_client, invalid_grant, ...)
    any other ConnectorError             → "failed"        (exit 1)

What survives a crash: nothing; a check writes nothing to the system (tokens go to ``token_cache``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

import httpx
import msgspec

from accord.config.systems import SystemSettings
from accord.config.types import Duration
from accord.connectors.base import TokenCache
from accord.connectors.errors import AuthExpired, ConnectorError, Retryable

S = TypeVar("S", bound=SystemSettings)
Kind = Literal["missing", "refused", "unreachable", "failed"]
OAUTH_REFUSALS = frozenset({"invalid_client", "invalid_client_id", "invalid_grant", "unauthorized_client",
                            "invalid_token"})


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One thing wrong: ``what`` (e.g. ``Opportunity.Billing_Model__c``), ``value`` (what was found) and
    ``fix`` (what to do)."""

    kind: Kind
    what: str
    value: str
    fix: str

    def text(self) -> str:
        return f"{self.what}: {self.value}; {self.fix}"


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """What a check saw (``about``: which org or company answered) and what it found wrong."""

    about: str = ""
    findings: list[Finding] = []


class EntityUse(msgspec.Struct, frozen=True, kw_only=True):
    """How the configuration uses one entity with the checked system: canonical fields left out of it
    (``exclude``), fields named by a ``when`` condition, and wire fields a configured ``mappings`` table
    reads (top-level names only)."""

    excluded: frozenset[str] = frozenset()
    conditions: frozenset[str] = frozenset()
    wire_fields: tuple[str, ...] = ()


async def no_token_store() -> TokenCache | None:
    """The token store of a context that has none."""
    return None


@dataclass(frozen=True, kw_only=True)
class CheckContext:
    """What a check gets beside the system's settings. ``token_cache`` is the daemon's shared token store
    of this system, opened on first call (``None`` when it cannot be reached): a grant that rotates its
    refresh token must save the new one there. ``transport`` is for tests (``None``: the network)."""

    name: str
    entities: Mapping[str, EntityUse]
    timeout: float = 10.0
    token_cache: Callable[[], Awaitable[TokenCache | None]] = no_token_store
    transport: httpx.AsyncBaseTransport | None = None

    def excluded(self, entity: str) -> frozenset[str]:
        use = self.entities.get(entity)
        return use.excluded if use is not None else frozenset()


CheckHook = Callable[[S, CheckContext], Awaitable[Report]]
"""A plug-in's check: ``async def check_connection(settings, context) -> Report``."""


def with_timeout(settings: S, seconds: float) -> S:
    """``settings`` with its HTTP ``timeout`` cut to ``seconds`` (a check waits less than a sync)."""
    current = getattr(settings, "timeout", None)
    if current is None or float(current) <= seconds:
        return settings
    return msgspec.structs.replace(settings, timeout=Duration(seconds))


def finding_of(exc: ConnectorError) -> Finding:
    """The finding for an error a check raised (see the module docstring)."""
    where = _where(exc)
    if isinstance(exc, Retryable):
        return Finding(kind="unreachable", what=where or exc.system, value=f"no usable answer ({exc.message})",
                       fix="check the URL in the system's settings and that this host reaches it (DNS, "
                           "firewall, proxy), or try again when the service is back")
    if isinstance(exc, AuthExpired) or exc.status in (401, 403) or exc.code in OAUTH_REFUSALS:
        return Finding(kind="refused", what="credentials", value=f"refused ({exc.message})",
                       fix="correct the credentials in the system's settings (or their ${VAR} values)")
    return Finding(kind="failed", what=where or exc.system, value=exc.message,
                   fix="see the message; fix the system's settings or the account")


def _where(exc: BaseException) -> str:
    """The URL a transport failure was on (no query string), when the cause says."""
    cause = exc.__cause__
    if isinstance(cause, httpx.HTTPError):
        try:
            url = cause.request.url
        except RuntimeError:  # an error raised without a request
            return ""
        return str(url.copy_with(query=None, fragment=None))
    return ""
