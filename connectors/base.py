"""The connector contract and the shared HTTP plumbing every connector uses.

A connector is a plain async class over one ``httpx.AsyncClient``. The poller calls ``fetch`` and the
writer calls ``write``; both speak canonical field maps (``dict`` of canonical field name to a
msgpack-native value), never wire shapes. Connectors hold no sync state: cursors, ids and versions live
in Redis and are passed in.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

import httpx
import msgspec

from accord.connectors.errors import (
    AuthExpired,
    ConnectorError,
    Permanent,
    RateLimited,
    Retryable,
)

T = TypeVar("T")


class SourceRecord(msgspec.Struct, kw_only=True, frozen=True):
    """One record as read from a system, already mapped to canonical fields.

    ``version`` increases every time the record changes in that system (Salesforce: SystemModstamp in
    epoch ms; QuickBooks: SyncToken); versions are only comparable within one system. ``fields`` holds
    every canonical field the system maps (the full projection, not a diff). ``gid`` is the Accord
    global id when the record carries one (a record Accord created stores it in an external-id field).
    """

    id: str
    version: int
    deleted: bool = False
    fields: dict[str, Any] = {}
    gid: str | None = None
    modified_ms: int = 0
    error: str | None = None  # set when the record could not be mapped (names field and value); it is
    # filed as an exception by the poller while the rest of the page flows
    raw: dict[str, Any] | None = None  # the wire record, for field maps configured on top of the defaults


class Page(msgspec.Struct, kw_only=True, frozen=True):
    """One page of changes. ``cursor`` is opaque to the caller and is stored as given; ``more`` says
    another page is ready now (fetch again with the returned cursor before sleeping)."""

    records: list[SourceRecord]
    cursor: str
    more: bool = False


WriteKind = Literal["upsert", "delete"]


class WriteOp(msgspec.Struct, kw_only=True, frozen=True):
    """One record to write to a target.

    ``target_id`` is the record's id in the target when the xref knows it (update), else ``None``
    (create, or link to a record Accord created earlier). ``fields`` are canonical, already filtered to
    what the target may be written. ``version`` is the target's own version of the record as Accord last
    saw it (e.g. QuickBooks SyncToken), when known. ``key`` is a deterministic idempotency key for this
    write (the change id), used where the API supports one. ``lookup`` asks a connector without an
    idempotency key to look for a record an earlier attempt of this create left behind before creating
    (look-up-before-create); the writers ask only for creates that may have been sent before, so a first
    create costs no look-up.
    """

    gid: str
    kind: WriteKind
    fields: dict[str, Any]
    key: str
    target_id: str | None = None
    version: int | None = None
    correlation_id: str = ""
    wire: dict[str, Any] = {}  # extra wire fields from configured field maps, merged into the payload
    lookup: bool = True


class WriteResult(msgspec.Struct, kw_only=True, frozen=True):
    """Outcome of one ``WriteOp``. On success ``target_id`` and the record's new ``version`` are set and
    ``fields`` is the canonical projection the target now holds for the written fields. On failure
    ``error`` is set (classified; see ``accord.connectors.errors``)."""

    gid: str
    ok: bool
    target_id: str | None = None
    version: int | None = None
    created: bool = False
    fields: dict[str, Any] = {}
    error: ConnectorError | None = None


class Connector(Protocol):
    """What actors need from a system. Implementations live in ``accord.connectors.<system>``."""

    system: str
    batch_size: int  # the most WriteOps one ``write`` call should carry (the API's batch limit)

    def entities(self) -> Sequence[str]:
        """Canonical entities this connector can read and write."""
        ...

    async def fetch(self, entity: str, cursor: str | None) -> Page:
        """Changes since ``cursor`` (``None``: a full initial load), one page per call."""
        ...

    async def write(self, entity: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` (at most ``batch_size``) idempotently; one result per op, in order.

        A failure of the whole request raises a ``ConnectorError``; per-record failures come back as
        results with ``ok=False``."""
        ...

    def cursor_since(self, entity: str, since_ms: int) -> str:
        """A cursor whose next ``fetch`` returns every record changed at or after ``since_ms`` (resync)."""
        ...

    async def find_created(self, entity: str, gids: Sequence[str], since_ms: int) -> dict[str, SourceRecord]:
        """Records carrying one of ``gids`` as their Accord id, changed since ``since_ms``: used before a
        retried create so a record created by a crashed attempt is linked, never created twice."""
        ...

    async def aclose(self) -> None: ...


def mapped_entity(table: Mapping[str, T], entity: str, *, system: str, name: str, code: str | None = None) -> T:
    """``table[entity]``; an entity the system (``name``) does not map is ``Permanent``, naming those it does."""
    try:
        return table[entity]
    except KeyError:
        raise Permanent(system, f"entity {entity!r} is not mapped for {name}; mapped entities are "
                                f"{sorted(table)}", code=code) from None


class TokenCache(Protocol):
    """Where a connector keeps its OAuth tokens so every process shares (and persists) them.

    The daemon passes a Redis-backed cache (tokens survive restarts, and a rotated refresh token is
    never lost); tests and tools may use ``MemoryTokenCache``. Tokens are plain dicts of the token
    endpoint's response plus ``expires_at`` (epoch seconds)."""

    async def load(self) -> dict[str, Any] | None: ...

    async def save(self, token: dict[str, Any]) -> None: ...


class MemoryTokenCache:
    """A token cache for one process."""

    def __init__(self, token: dict[str, Any] | None = None) -> None:
        self.token = token

    async def load(self) -> dict[str, Any] | None:
        return self.token

    async def save(self, token: dict[str, Any]) -> None:
        self.token = dict(token)


# ------------------------------------------------------------------------------------------------
# Shared HTTP plumbing
# ------------------------------------------------------------------------------------------------

ERROR_CLASSES = ("transport", "auth", "rate_limited", "server", "client", "bad_body", "unmappable")
"""What failed, as an operator acts on it: the network or a timeout (``transport``), credentials (``auth``:
401/403 or a refused token grant), the quota (``rate_limited``), the service (``server``: 5xx), Accord's
request (``client``: another 4xx), an answer that is not JSON (``bad_body``), a value that could not be
mapped (``unmappable``)."""


def error_class(status: int) -> str:
    """The class of an HTTP error status."""
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    return "server" if status >= 500 else "client"


class CallStats:
    """API call counters of one connector, drained by the owning actor into Redis."""

    def __init__(self) -> None:
        self.calls = 0
        self.rate_limited = 0
        self.errors = 0
        self.by_class: Counter[str] = Counter()

    def error(self, kind: str) -> None:
        """One failed call (or unmappable value) of class ``kind`` (one of ``ERROR_CLASSES``)."""
        self.errors += 1
        self.by_class[kind] += 1

    def drain(self) -> dict[str, int]:
        out = {"calls": self.calls, "rate_limited": self.rate_limited, "errors": self.errors,
               **{f"error:{kind}": n for kind, n in self.by_class.items()}}
        self.calls = self.rate_limited = self.errors = 0
        self.by_class.clear()
        return out


def backoff_delay(attempt: int, base: float = 0.2, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff: a random delay in ``[0, min(cap, base * 2**attempt)]``."""
    return random.uniform(0, min(cap, base * (2 ** min(attempt, 32))))


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 5,
    base: float = 0.2,
    cap: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``call``, retrying ``Retryable`` errors with jittered backoff (``RateLimited`` waits its
    ``retry_after``). Other errors and the last failure propagate."""
    for attempt in range(attempts):
        try:
            return await call()
        except RateLimited as exc:
            if attempt == attempts - 1:
                raise
            await sleep(max(exc.retry_after, backoff_delay(attempt, base, cap)))
        except Retryable:
            if attempt == attempts - 1:
                raise
            await sleep(backoff_delay(attempt, base, cap))
    raise AssertionError("unreachable")


def classify_transport_error(system: str, exc: httpx.HTTPError) -> ConnectorError:
    """Timeouts and connection failures are transient; anything else from httpx is permanent."""
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return Retryable(system, f"{type(exc).__name__}: {exc}")
    return Permanent(system, f"{type(exc).__name__}: {exc}")


def retry_after_seconds(headers: Mapping[str, str], default: float) -> float:
    """Parse a ``Retry-After`` header given in seconds, falling back to ``default``."""
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in; nested dicts merge key by key (``{"BillAddr": {"City": ..}}``)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def default_timeout(seconds: float = 30.0) -> httpx.Timeout:
    """One explicit timeout for every connector client (httpx refuses ambiguous ones)."""
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


__all__ = [
    "AuthExpired",
    "CallStats",
    "Connector",
    "ConnectorError",
    "MemoryTokenCache",
    "Page",
    "Permanent",
    "RateLimited",
    "Retryable",
    "SourceRecord",
    "TokenCache",
    "WriteOp",
    "WriteResult",
    "backoff_delay",
    "classify_transport_error",
    "deep_merge",
    "default_timeout",
    "mapped_entity",
    "retry_after_seconds",
    "with_retries",
]
