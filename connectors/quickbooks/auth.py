"""OAuth2 access tokens for one QuickBooks Online connection.

QBO access tokens live 3600 s and every refresh may rotate the refresh token, invalidating the previous
one, so the newest token response is saved to the ``TokenCache`` at once (the cache, shared by every
process, is preferred over ``settings.refresh_token``, which is only the initial one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from accord.connectors.base import TokenCache
from accord.connectors.errors import AuthExpired, Permanent, RateLimited, Retryable
from accord.connectors.quickbooks.settings import QuickBooksSettings

EARLY_REFRESH = 60.0  # refresh this many seconds before the access token expires

Send = Callable[..., Awaitable[httpx.Response]]


class TokenManager:
    """Hands out a valid access token; refreshes it when it is about to expire or after a 401."""

    def __init__(self, settings: QuickBooksSettings, cache: TokenCache, send: Send, now: Callable[[], float],
                 system: str) -> None:
        self._settings = settings
        self._cache = cache
        self._send = send
        self._now = now
        self._system = system
        self._lock = asyncio.Lock()

    def _usable(self, token: dict[str, Any] | None, stale: str | None = None) -> str | None:
        if not token or not token.get("access_token") or token["access_token"] == stale:
            return None
        if float(token.get("expires_at", 0)) - EARLY_REFRESH <= self._now():
            return None
        return str(token["access_token"])

    async def access_token(self) -> str:
        return self._usable(await self._cache.load()) or await self.refresh(stale=None)

    async def refresh(self, stale: str | None) -> str:
        """A fresh access token. ``stale`` is the token a 401 refused (never handed out again)."""
        async with self._lock:
            token = await self._cache.load()
            usable = self._usable(token, stale)
            if usable and stale is not None:
                return usable  # another task or process refreshed meanwhile
            refresh_token = (token or {}).get("refresh_token") or self._settings.refresh_token
            response = await self._grant(refresh_token)
            if response is None:  # invalid_grant: maybe another process rotated the token just now
                latest = await self._cache.load()
                newer = (latest or {}).get("refresh_token")
                usable = self._usable(latest, stale)
                if usable:
                    return usable
                response = await self._grant(newer) if newer and newer != refresh_token else None
            if response is None:
                raise AuthExpired(self._system, "the refresh token was refused (invalid_grant): re-authorize "
                                  f"the app for company {self._settings.realm_id} and set the new "
                                  "quickbooks refresh_token (or clear the token cache)")
            saved = {**response, "refresh_token": response.get("refresh_token") or refresh_token,
                     "expires_at": self._now() + float(response.get("expires_in", 3600))}
            await self._cache.save(saved)
            return str(saved["access_token"])

    async def _grant(self, refresh_token: str) -> dict[str, Any] | None:
        """POST the refresh-token grant; ``None`` when the grant itself is refused."""
        response = await self._send(
            "POST", self._settings.token_url,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(self._settings.client_id, self._settings.client_secret),
            headers={"Accept": "application/json"})
        if response.status_code == 400 and _oauth_error(response) == "invalid_grant":
            return None
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
