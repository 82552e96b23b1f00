"""The QuickBooks Online session on the shared ``HttpSession``: paths under ``/v3/company/{realm_id}``,
bearer auth from the refresh-token grant, ``minorversion`` on every call, and how QBO's Fault bodies map
onto the connector error tree (``error_for``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from accord.connectors.base import CallStats, TokenCache, retry_after_seconds
from accord.connectors.budget import RequestBudget
from accord.connectors.errors import (
    AuthExpired,
    ConnectorError,
    Permanent,
    RateLimited,
    Retryable,
    StaleVersion,
)
from accord.connectors.http import HttpSession, Target
from accord.connectors.quickbooks.auth import qbo_tokens
from accord.connectors.quickbooks.faults import first_error
from accord.connectors.quickbooks.settings import QuickBooksSettings

THROTTLE_WAIT = 60.0  # QBO says: after a 429, wait 60 s


def error_for(system: str, response: httpx.Response) -> ConnectorError:
    """The classified error for a non-2xx QBO response (both Fault body shapes are understood)."""
    status = response.status_code
    try:
        error = first_error(response.json())
    except ValueError:
        error = {}
    code = str(error["code"]) if error.get("code") is not None else None
    text = " - ".join(str(error[k]) for k in ("message", "detail") if error.get(k)) or response.text[:200]
    where = f"{response.request.method} {response.request.url.path}"
    if status == 429:
        return RateLimited(system, f"throttled on {where}: {text}", status=status, code=code,
                           retry_after=retry_after_seconds(response.headers, THROTTLE_WAIT))
    if status == 401:
        return AuthExpired(system, f"{where} refused the access token: {text}", status=status, code=code)
    if status >= 500 or status == 408:
        return Retryable(system, f"{where} answered {status}: {text}", status=status, code=code)
    if code == "5010":
        return StaleVersion(system, f"{where}: {text}", status=status, code=code)
    return Permanent(system, f"{where} answered {status} (code {code}): {text}", status=status, code=code)


class QboApi(HttpSession):
    """Authenticated JSON calls to ``/v3/company/{realm_id}/...`` (``minorversion`` on every call)."""

    def __init__(self, settings: QuickBooksSettings, *, system: str, token_cache: TokenCache | None, budget: RequestBudget | None,
                 transport: httpx.AsyncBaseTransport | None, stats: CallStats, now: Callable[[], float]) -> None:
        super().__init__(system=system, stats=stats, limits=settings.limits(),
                         budget=budget, timeout=settings.timeout, transport=transport,
                         base_url=f"{settings.base_url.rstrip('/')}/v3/company/{settings.realm_id}")
        self.settings = settings
        self.tokens = qbo_tokens(settings, token_cache, self.send, now, system)

    async def target(self, path: str, stale: str | None) -> Target:
        token = await self.tokens.to_send(stale)
        access = str(token["access_token"])
        return Target(path, {"Authorization": f"Bearer {access}", "Accept": "application/json"}, access)

    def error(self, response: httpx.Response) -> ConnectorError:
        return error_for(self.system, response)

    def kind(self, method: str, url: str) -> str:
        """``/batch`` requests count in the realm's batch window as well."""
        return "batch" if url.rstrip("/").endswith("/batch") else "*"

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                   **kwargs: Any) -> dict[str, Any]:
        """The JSON object of a 2xx answer; on 401 refresh the token and retry once, else raise."""
        params = {**(params or {}), "minorversion": self.settings.minor_version}
        body = await self.request_json(method, path, params=params, **kwargs)
        if not isinstance(body, dict):
            raise Retryable(self.system, f"{method} {path} returned {type(body).__name__}, not an object")
        return body

    async def query(self, statement: str) -> dict[str, Any]:
        """POST one query-language statement (``application/text`` body)."""
        return await self.call("POST", "/query", content=statement.encode(),
                               headers={"Content-Type": "application/text"})
