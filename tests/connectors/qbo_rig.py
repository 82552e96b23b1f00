"""What the QuickBooks connector tests share: the sandbox clock start, a unique realm per test (account
limiters are per process and event loop), and a transport that lets a test see every request first."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx

from accord.config.types import Duration, RateLimit
from accord.connectors.base import MemoryTokenCache, WriteOp, WriteResult
from accord.connectors.quickbooks.client import QuickBooksConnector
from accord.connectors.quickbooks.settings import QuickBooksSettings
from accord.sandboxes.quickbooks.sandbox import QuickBooksState, build_app
from accord.sandboxes.server import Clock

START = 1_780_000_000.0
_REALMS = itertools.count(9130350000000001)
_KEYS = itertools.count(1)


def new_state() -> QuickBooksState:
    """A realm with QuickBooks' per-minute and concurrency quotas; its per-second and ``/batch`` quotas
    raised, since these tests call as fast as the machine allows (the quotas' own tests are in
    ``test_sandbox_quotas``)."""
    return QuickBooksState(clock=Clock(start=START), realm_id=str(next(_REALMS)), per_second_limit=100_000,
                           batch_limit=100_000)


class HookTransport(httpx.AsyncBaseTransport):
    """The sandbox app, with a hook that sees (and may act on) every request before it is answered."""

    def __init__(self, app: Any, hook: Callable[[httpx.Request], None]) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._hook = hook

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._hook(request)
        return await self._inner.handle_async_request(request)


def connector(state: QuickBooksState, *, cache: MemoryTokenCache | None = None,
              hook: Callable[[httpx.Request], None] | None = None, **overrides: Any) -> QuickBooksConnector:
    """A connector on ``state``'s realm, in-process (settings ``overrides`` on top of the defaults)."""
    settings = QuickBooksSettings(**{
        "base_url": "http://qbo.test", "token_url": "http://qbo.test/oauth2/v1/tokens/bearer",
        "realm_id": state.realm_id, "client_id": state.client_id, "client_secret": state.client_secret,
        "refresh_token": "AB11-sandbox-initial", "rate_limit": RateLimit(requests=100_000, period=Duration(60.0)),
        **overrides})
    app = build_app(state)
    transport = HookTransport(app, hook) if hook else httpx.ASGITransport(app=app)
    return QuickBooksConnector(settings, token_cache=cache or MemoryTokenCache(), transport=transport,
                               now=state.clock.now)


def op(gid: str, fields: dict[str, Any], target: str | None = None, *, kind: str = "upsert",
       version: int | None = None, key: str | None = None) -> WriteOp:
    """A write of ``fields`` (``target``: update that record) with a fresh idempotency key unless given."""
    return WriteOp(gid=gid, kind=kind, fields=fields, key=key or f"k{next(_KEYS)}", target_id=target,  # type: ignore[arg-type]
                   version=version, correlation_id="corr-1")


async def write1(connector: QuickBooksConnector, entity: str, one: WriteOp) -> WriteResult:
    [result] = await connector.write(entity, [one])
    return result
