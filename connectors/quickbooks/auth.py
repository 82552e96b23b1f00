"""The refresh-token grant of one QuickBooks Online connection.

QBO access tokens live 3600 s and every refresh may rotate the refresh token, invalidating the previous
one, so the newest token response is saved to the ``TokenCache`` at once (the cache, shared by every
process, is preferred over ``settings.refresh_token``, which is only the initial one). The cache, the
lock and the retry after a refused grant are ``accord.connectors.oauth``'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from accord.connectors.base import TokenCache
from accord.connectors.errors import Permanent, RateLimited, Retryable
from accord.connectors.oauth import OAuthTokens, Token
from accord.connectors.quickbooks.settings import QuickBooksSettings

EARLY_REFRESH = 60.0  # refresh this many seconds before the access token expires

Send = Callable[..., Awaitable[httpx.Response]]


def qbo_tokens(settings: QuickBooksSettings, cache: TokenCache | None, send: Send, now: Callable[[], float],
               system: str) -> OAuthTokens:
    """The connection's tokens, renewed with the refresh-token grant through ``send``."""
    grant = RefreshGrant(settings, send, now, system)
    return OAuthTokens(cache, grant, system=system, early=EARLY_REFRESH, refresh_token=settings.refresh_token,
                       now=now, refused="the refresh token was refused (invalid_grant): re-authorize the app "
                                        f"for company {settings.realm_id} and set the new quickbooks "
                                        "refresh_token (or clear the token cache)")


@dataclass(frozen=True)
class RefreshGrant:
    """POSTs the refresh-token grant to ``settings.token_url`` through ``send`` (the realm's limiter)."""

    _settings: QuickBooksSettings
    _send: Send
    _now: Callable[[], float]
    _system: str

    async def __call__(self, refresh_token: str | None) -> Token | None:
        """The new token to save; ``None`` when the grant itself is refused (``invalid_grant``)."""
        response = await self._send(
            "POST", self._settings.token_url,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(self._settings.client_id, self._settings.client_secret),
            headers={"Accept": "application/json"})
        if response.status_code == 400 and _oauth_error(response) == "invalid_grant":
            return None
        body = self._answer(response)
        return {**body, "refresh_token": body.get("refresh_token") or refresh_token,
                "expires_at": self._now() + float(body.get("expires_in", 3600))}

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        """The token endpoint's answer, or the classified error of its refusal."""
        if response.status_code == 429:
            raise RateLimited(self._system, "token endpoint throttled", retry_after=60.0, status=429)
        if response.status_code >= 500:
            raise Retryable(self._system, f"token endpoint answered {response.status_code}",
                            status=response.status_code)
        if response.status_code != 200:
            raise Permanent(self._system, f"token endpoint {self._settings.token_url} answered "
                            f"{response.status_code} {_oauth_error(response) or response.text[:200]}: check "
                            "client_id/client_secret", status=response.status_code)
        try:
            body = response.json()
            str(body["access_token"])
        except (ValueError, KeyError, TypeError) as exc:
            raise Retryable(self._system, f"token endpoint returned no access_token: {exc}") from exc
        return dict(body)


def _oauth_error(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("error")) if isinstance(body, dict) and body.get("error") else None
