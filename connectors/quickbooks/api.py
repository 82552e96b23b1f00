"""HTTP plumbing of the QuickBooks connector: one ``httpx.AsyncClient``, the realm's rate limiter,
call counters, bearer auth with one refresh-and-retry on 401, and the translation of every failure
into the connector error tree (``error_for``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from accord.connectors.base import (
    CallStats,
    TokenCache,
    account_limiter,
    classify_transport_error,
    default_timeout,
    retry_after_seconds,
)
from accord.connectors.errors import (
    AuthExpired,
    ConnectorError,
    Permanent,
    RateLimited,
    Retryable,
    StaleVersion,
)
from accord.connectors.quickbooks.auth import TokenManager
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


class QboApi:
    """Authenticated JSON calls to ``/v3/company/{realm_id}/...`` (``minorversion`` on every call)."""

    def __init__(self, settings: QuickBooksSettings, *, system: str, token_cache: TokenCache, share: float,
                 transport: httpx.AsyncBaseTransport | None, stats: CallStats, now: Callable[[], float]) -> None:
        self.settings = settings
        self.system = system
        self.stats = stats
        self._client = httpx.AsyncClient(
            base_url=f"{settings.base_url.rstrip('/')}/v3/company/{settings.realm_id}",
            timeout=default_timeout(settings.timeout), transport=transport)
        self._limiter = account_limiter(f"{system}:{settings.realm_id}",
                                        settings.rate_limit.requests * share, settings.rate_limit.period)
        self.tokens = TokenManager(settings, token_cache, self.send, now, system)

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request through the realm's limiter; transport failures become connector errors."""
        async with self._limiter:
            self.stats.calls += 1
            try:
                response = await self._client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                self.stats.errors += 1
                raise classify_transport_error(self.system, exc) from exc
        if response.status_code == 429:
            self.stats.rate_limited += 1
        return response

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of a 2xx answer; on 401 refresh the token and retry once, else raise."""
        params = {**(params or {}), "minorversion": self.settings.minor_version}
        token = await self.tokens.access_token()
        for attempt in (1, 2):
            response = await self.send(method, path, params=params, headers={
                "Authorization": f"Bearer {token}", "Accept": "application/json", **(headers or {})}, **kwargs)
            if response.status_code == 401 and attempt == 1:
                token = await self.tokens.refresh(stale=token)
                continue
            if response.status_code >= 300:
                self.stats.errors += 1
                raise error_for(self.system, response)
            try:
                body = response.json()
            except ValueError as exc:
                self.stats.errors += 1
                raise Retryable(self.system, f"{method} {path} returned a body that is not JSON") from exc
            if not isinstance(body, dict):
                raise Retryable(self.system, f"{method} {path} returned {type(body).__name__}, not an object")
            return body
        raise AssertionError("unreachable")

    async def query(self, statement: str) -> dict[str, Any]:
        """POST one query-language statement (``application/text`` body)."""
        return await self.call("POST", "/query", content=statement.encode(),
                               headers={"Content-Type": "application/text"})

    async def aclose(self) -> None:
        await self._client.aclose()
