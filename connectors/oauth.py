"""OAuth2 access tokens shared through a ``TokenCache``: one renewal at a time per connector.

Every system's grant differs (Salesforce mints with client credentials, QuickBooks rotates a refresh
token); what they share lives here: read the cache, hand out a token that is not about to expire,
renew under one ``asyncio.Lock`` (re-reading the cache inside it, since another task or process may
have renewed meanwhile), never hand out a token a 401 refused, and save every new token at once.

What survives a crash: the newest token, in the cache (the daemon's is Redis, so a rotated refresh token
is never lost); nothing is held here but the lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from accord.config.secrets import redact
from accord.connectors.base import MemoryTokenCache, TokenCache
from accord.connectors.errors import AuthExpired

Token = dict[str, Any]  # the token endpoint's answer plus ``expires_at`` (epoch seconds)
Grant = Callable[[str | None], Awaitable[Token | None]]
"""Asks the token endpoint for a new token, given the refresh token to use (``None``: none known).
Returns the token to save, with ``expires_at``; ``None`` when the grant itself was refused
(``invalid_grant``); raises a ``ConnectorError`` for anything else."""


class OAuthTokens:
    """Hands out a valid token from ``cache`` and renews it through ``grant`` when due or refused.

    A token is due ``early`` seconds before its ``expires_at``. ``refresh_token`` is the initial one from
    the settings; a refresh token in the cache (the newest rotation) is preferred. ``refused`` says what
    to do when every refresh token known is refused (raised as ``AuthExpired``).
    """

    def __init__(self, cache: TokenCache | None, grant: Grant, *, system: str, early: float = 0.0,
                 refresh_token: str | None = None, refused: str = "the refresh token was refused",
                 now: Callable[[], float] = time.time) -> None:
        self._cache = cache or MemoryTokenCache()
        self._grant = grant
        self._system = system
        self._early = early
        self._refresh_token = refresh_token
        self._refused = refused
        self._now = now
        self._lock = asyncio.Lock()

    def _usable(self, token: Token | None, stale: str | None) -> bool:
        """Whether ``token`` has an access token that is not ``stale`` (refused) and not yet due."""
        if not token or not token.get("access_token") or token["access_token"] == stale:
            return False
        return float(token.get("expires_at", 0)) - self._early > self._now()

    async def current(self) -> Token:
        """A token that is not due; renewed first when the cached one is. Every token handed out is a
        secret of this process from then on (masked in its logs)."""
        token = await self._cache.load()
        if token is not None and self._usable(token, None):
            redact(token.get("access_token"), token.get("refresh_token"))
            return token
        return await self.renew(stale=token.get("access_token") if token else None)

    async def to_send(self, refused: str | None) -> Token:
        """The token for a request: the current one, or after a 401 a new one in place of ``refused``."""
        return await self.current() if refused is None else await self.renew(refused)

    async def renew(self, stale: str | None) -> Token:
        """A new token, unless another task or process already replaced ``stale`` (never handed out again)."""
        token = await self._renewed(stale)
        redact(token.get("access_token"), token.get("refresh_token"))
        return token

    async def _renewed(self, stale: str | None) -> Token:
        async with self._lock:
            cached = await self._cache.load()
            if cached is not None and self._usable(cached, stale):
                return cached
            used = (cached or {}).get("refresh_token") or self._refresh_token
            token = await self._grant(used)
            if token is None:  # refused: maybe another process rotated the refresh token just now
                latest = await self._cache.load()
                if latest is not None and self._usable(latest, stale):
                    return latest
                newer = (latest or {}).get("refresh_token")
                token = await self._grant(newer) if newer and newer != used else None
            if token is None:
                raise AuthExpired(self._system, self._refused)
            await self._cache.save(token)
            return token
