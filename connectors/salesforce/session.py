"""One authenticated HTTP session with a Salesforce org on the shared ``HttpSession``: the
client-credentials grant, the instance URL, ``Sforce-Limit-Info`` and how Salesforce's error bodies map
onto the connector error tree.

The connector builds on ``SalesforceSession.request_json``; nothing above this module looks at status codes.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from accord.connectors.base import CallStats, TokenCache, error_class, retry_after_seconds
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
from accord.connectors.oauth import OAuthTokens
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


class SalesforceSession(HttpSession):
    """Authenticated requests to one org: paths under ``/services/data/vNN.N/``, sent to the token's
    ``instance_url``; ``Sforce-Limit-Info`` is kept as ``api_usage``."""

    def __init__(self, settings: SalesforceSettings, *, system: str, token_cache: TokenCache | None,
                 budget: RequestBudget | None, transport: httpx.AsyncBaseTransport | None, stats: CallStats) -> None:
        super().__init__(system=system, stats=stats, limits=settings.limits(),
                         budget=budget, timeout=settings.timeout, transport=transport)
        self.settings = settings
        self.api_usage: tuple[int, int] | None = None
        self._tokens = OAuthTokens(token_cache, self._grant, system=system)

    @property
    def data_path(self) -> str:
        return f"/services/data/v{self.settings.api_version}"

    async def target(self, path: str, stale: str | None) -> Target:
        """``path`` (under the data path unless it starts with ``/``) on the token's instance."""
        token = await self._tokens.to_send(stale)
        if not path.startswith("/"):
            path = f"{self.data_path}/{path}"
        url = f"{str(token.get('instance_url') or self.settings.base_url).rstrip('/')}{path}"
        return Target(url, {"Authorization": f"Bearer {token.get('access_token', '')}"},
                      str(token.get("access_token", "")))

    def throttled(self, response: httpx.Response) -> bool:
        return response.status_code == 429 or (response.status_code == 403 and
                                               _first_error(response)[0] == "REQUEST_LIMIT_EXCEEDED")

    def retry_after(self, response: httpx.Response) -> float | None:
        """The daily quota's refusal names no wait: pause for ``limit_retry_after``."""
        return super().retry_after(response) or (self.settings.limit_retry_after
                                                 if response.status_code == 403 else None)

    def quota_usage(self, response: httpx.Response) -> tuple[int, int] | None:
        return self.api_usage

    def observe(self, response: httpx.Response) -> None:
        usage = _API_USAGE.search(response.headers.get("sforce-limit-info", ""))
        if usage:
            self.api_usage = (int(usage[1]), int(usage[2]))
        super().observe(response)

    # -- tokens -------------------------------------------------------------------------------

    async def _grant(self, _refresh_token: str | None) -> dict[str, Any]:
        """A new token from the client-credentials flow (Salesforce issues no refresh token to it)."""
        url = f"{self.settings.base_url.rstrip('/')}/services/oauth2/token"
        response = await self.send("POST", url, data={"grant_type": "client_credentials"},
                                   auth=(self.settings.client_id, self.settings.client_secret))
        if response.status_code != 200:
            raise self._token_error(response)
        return {**response.json(), "expires_at": time.time() + SESSION_SECONDS}

    def _token_error(self, response: httpx.Response) -> ConnectorError:
        self.stats.error(error_class(response.status_code))
        code, message = _first_error(response)
        where = f"token endpoint {self.settings.base_url}/services/oauth2/token answered {response.status_code}"
        if response.status_code >= 500 or response.status_code in (403, 429):
            return Retryable(self.system, f"{where} {code}: {message}", code=code, status=response.status_code)
        return Permanent(self.system, f"{where} {code}: {message}; check client_id/client_secret of the "
                                      "connected app, that the client-credentials flow is enabled with a run-as "
                                      "user, and that base_url is the org's My Domain URL",
                         code=code, status=response.status_code)

    # -- errors -------------------------------------------------------------------------------

    def error(self, response: httpx.Response) -> ConnectorError:
        """The connector error for a failed response (the one place status codes are read)."""
        status = response.status_code
        code, message = _first_error(response)
        where = f"{response.request.method} {response.request.url.path}"
        text = f"{where} → {status} {code or ''}: {message}".replace(" :", ":")
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
