"""One authenticated HTTP session with a Salesforce org: tokens, the account limiter, call counters,
``Sforce-Limit-Info`` and the translation of every failure into the connector error tree.

The connector builds on ``SalesforceSession.request``; nothing above this module looks at status codes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

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
from accord.connectors.salesforce.settings import SalesforceSettings

# Salesforce does not say when a client-credentials session ends (the org's session timeout decides;
# 2 h by default). Re-mint before that; a 401 INVALID_SESSION_ID re-mints at once anyway.
SESSION_SECONDS = 2 * 3600 - 300
_API_USAGE = re.compile(r"(?:^|[^-])api-usage=(\d+)/(\d+)")
_HINTS = {
    "INVALID_FIELD": "check that the field exists on the object and that the integration user can see it "
                     "(field-level security)",
    "INVALID_TYPE": "check the object name and the integration user's object permissions",
    "MALFORMED_QUERY": "this is a bug in the query Accord built; report it with the query text",
    "INSUFFICIENT_ACCESS": "grant the integration user access to the object and record",
    "NOT_FOUND": "check the API version, object name and external id field in the connector settings",
    "INVALID_QUERY_LOCATOR": "the query cursor expired; the query is restarted from the watermark",
}


def _first_error(response: httpx.Response) -> tuple[str | None, str]:
    """``(errorCode, message)`` of a Salesforce error body (an array) or an OAuth error (an object)."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200] or response.reason_phrase
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0].get("errorCode"), str(body[0].get("message", ""))
    if isinstance(body, dict) and "error" in body:
        return str(body["error"]), str(body.get("error_description", ""))
    return None, str(body)[:200]


class SalesforceSession:
    """Authenticated requests to one org, one ``httpx.AsyncClient`` for the connector's lifetime."""

    def __init__(self, settings: SalesforceSettings, *, system: str, token_cache: TokenCache, share: float,
                 transport: httpx.AsyncBaseTransport | None, stats: CallStats) -> None:
        self.settings = settings
        self.system = system
        self.stats = stats
        self.api_usage: tuple[int, int] | None = None
        self._tokens = token_cache
        self._share = share
        self._host = urlsplit(settings.base_url).netloc
        self._auth_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(transport=transport, timeout=default_timeout(settings.timeout))

    @property
    def data_path(self) -> str:
        return f"/services/data/v{self.settings.api_version}"

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- requests -----------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      json: Any = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Call the REST API at ``path`` (under ``/services/data/vNN.N/`` unless it starts with ``/``).

        A 401 mints a new token and retries once; any other failure raises a ``ConnectorError``.
        """
        if not path.startswith("/"):
            path = f"{self.data_path}/{path}"
        token = await self._token()
        response = await self._send(method, path, token, params=params, json=json, headers=headers)
        if response.status_code == 401:
            token = await self._mint(stale=token.get("access_token"))
            response = await self._send(method, path, token, params=params, json=json, headers=headers)
        if response.status_code >= 300:
            raise self._error(method, path, response)
        return response

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request`` and its JSON body; a body that is not JSON (a proxy's error page) is ``Retryable``."""
        response = await self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            self.stats.errors += 1
            raise Retryable(self.system, f"{method} {path} → {response.status_code} with a body that is not "
                                         f"JSON: {response.text[:120]!r}", status=response.status_code) from exc

    async def _send(self, method: str, path: str, token: Mapping[str, Any], **kwargs: Any) -> httpx.Response:
        url = f"{str(token.get('instance_url') or self.settings.base_url).rstrip('/')}{path}"
        headers = {"Authorization": f"Bearer {token.get('access_token', '')}", **(kwargs.pop("headers") or {})}
        return await self._call(method, url, headers=headers, **kwargs)

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        rate = self.settings.rate_limit
        limiter = account_limiter(f"{self.system}:{self._host}", rate.requests * self._share, rate.period)
        async with limiter:
            self.stats.calls += 1
            try:
                response = await self._http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                self.stats.errors += 1
                raise classify_transport_error(self.system, exc) from exc
        usage = _API_USAGE.search(response.headers.get("sforce-limit-info", ""))
        if usage:
            self.api_usage = (int(usage[1]), int(usage[2]))
        if response.status_code == 429 or (response.status_code == 403 and
                                           _first_error(response)[0] == "REQUEST_LIMIT_EXCEEDED"):
            self.stats.rate_limited += 1
        return response

    # -- tokens -------------------------------------------------------------------------------

    async def _token(self) -> dict[str, Any]:
        token = await self._tokens.load()
        if token and token.get("access_token") and float(token.get("expires_at", 0)) > time.time():
            return token
        return await self._mint(stale=token.get("access_token") if token else None)

    async def _mint(self, stale: str | None) -> dict[str, Any]:
        """A new token from the client-credentials flow, unless another caller already replaced ``stale``."""
        async with self._auth_lock:
            cached = await self._tokens.load()
            if (cached and cached.get("access_token") and cached.get("access_token") != stale
                    and float(cached.get("expires_at", 0)) > time.time()):
                return cached
            url = f"{self.settings.base_url.rstrip('/')}/services/oauth2/token"
            response = await self._call("POST", url, data={"grant_type": "client_credentials"},
                                        auth=(self.settings.client_id, self.settings.client_secret))
            if response.status_code != 200:
                raise self._token_error(response)
            token = {**response.json(), "expires_at": time.time() + SESSION_SECONDS}
            await self._tokens.save(token)
            return token

    def _token_error(self, response: httpx.Response) -> ConnectorError:
        self.stats.errors += 1
        code, message = _first_error(response)
        where = f"token endpoint {self.settings.base_url}/services/oauth2/token answered {response.status_code}"
        if response.status_code >= 500 or response.status_code in (403, 429):
            return Retryable(self.system, f"{where} {code}: {message}", code=code, status=response.status_code)
        return Permanent(self.system, f"{where} {code}: {message}; check client_id/client_secret of the "
                                      "connected app, that the client-credentials flow is enabled with a run-as "
                                      "user, and that base_url is the org's My Domain URL",
                         code=code, status=response.status_code)

    # -- errors -------------------------------------------------------------------------------

    def _error(self, method: str, path: str, response: httpx.Response) -> ConnectorError:
        """The connector error for a failed response (the one place status codes are read)."""
        self.stats.errors += 1
        status = response.status_code
        code, message = _first_error(response)
        text = f"{method} {path} → {status} {code or ''}: {message}".replace(" :", ":")
        if code in _HINTS:
            text = f"{text} ({_HINTS[code]})"
        if status == 401:
            return AuthExpired(self.system, f"{text}; a freshly minted token was refused too", code=code,
                               status=status)
        if status == 429 or (status == 403 and code == "REQUEST_LIMIT_EXCEEDED"):
            wait = float(self.settings.limit_retry_after)
            if "ConcurrentPerOrgLongTxn" in message:  # too many long requests at once: short back-off
                wait = min(wait, 5.0)
            if status == 429:
                wait = retry_after_seconds(response.headers, wait)
            return RateLimited(self.system, text, retry_after=wait, code=code, status=status)
        if status == 412:
            return StaleVersion(self.system, text, code=code, status=status)
        if status >= 500:
            return Retryable(self.system, text, code=code, status=status)
        return Permanent(self.system, text, code=code, status=status)
