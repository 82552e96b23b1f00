"""The shared OAuth token helper: one renewal at a time, a refused token never handed out again, and a
refresh token another process rotated meanwhile picked up from the cache."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from accord.connectors.base import MemoryTokenCache
from accord.connectors.errors import AuthExpired
from accord.connectors.oauth import OAuthTokens

NOW = 1_000_000.0


class Grants:
    """A token endpoint: issues ``a1``, ``a2``, … and refuses the refresh tokens in ``refused``."""

    def __init__(self, refused: set[str] | None = None) -> None:
        self.used: list[str | None] = []
        self.refused = refused or set()

    async def __call__(self, refresh_token: str | None) -> dict[str, Any] | None:
        self.used.append(refresh_token)
        await asyncio.sleep(0)
        if refresh_token in self.refused:
            return None
        n = len(self.used)
        return {"access_token": f"a{n}", "refresh_token": f"r{n}", "expires_at": NOW + 3600}


def tokens(grants: Grants, cache: MemoryTokenCache, **kwargs: Any) -> OAuthTokens:
    return OAuthTokens(cache, grants, system="erp", now=lambda: NOW, **kwargs)


async def test_concurrent_callers_share_one_renewal() -> None:
    grants = Grants()
    helper = tokens(grants, MemoryTokenCache())
    got = await asyncio.gather(*(helper.current() for _ in range(5)))
    assert {t["access_token"] for t in got} == {"a1"} and grants.used == [None]


async def test_a_token_due_within_early_seconds_is_renewed_with_the_cached_refresh_token() -> None:
    grants = Grants()
    cache = MemoryTokenCache({"access_token": "old", "refresh_token": "r0", "expires_at": NOW + 30})
    assert (await tokens(grants, cache, early=60).current())["access_token"] == "a1"
    assert grants.used == ["r0"] and cache.token is not None and cache.token["refresh_token"] == "r1"


async def test_a_refused_token_is_renewed_unless_already_replaced() -> None:
    grants = Grants()
    cache = MemoryTokenCache({"access_token": "a0", "expires_at": NOW + 3600})
    helper = tokens(grants, cache, refresh_token="initial")
    assert (await helper.renew(stale="a0"))["access_token"] == "a1"
    assert (await helper.renew(stale="a0"))["access_token"] == "a1"  # another caller renewed it meanwhile
    assert grants.used == ["initial"]


async def test_a_refused_grant_retries_with_a_refresh_token_rotated_meanwhile() -> None:
    grants = Grants(refused={"r0"})
    cache = MemoryTokenCache({"access_token": "a0", "refresh_token": "r0", "expires_at": 0})

    async def rotated_elsewhere(refresh_token: str | None) -> dict[str, Any] | None:
        if refresh_token == "r0":
            cache.token = {"access_token": "x", "refresh_token": "r9", "expires_at": 0}
        return await grants(refresh_token)

    token = await OAuthTokens(cache, rotated_elsewhere, system="erp", now=lambda: NOW).current()
    assert grants.used == ["r0", "r9"] and token["access_token"] == "a2"


async def test_every_refresh_token_refused_is_auth_expired_naming_the_fix() -> None:
    helper = tokens(Grants(refused={"r0"}), MemoryTokenCache(), refresh_token="r0", refused="re-authorize")
    with pytest.raises(AuthExpired, match="^erp: re-authorize$"):
        await helper.current()
