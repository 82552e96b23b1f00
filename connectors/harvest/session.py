"""One HTTP session with a Harvest account on the shared ``HttpSession``: the required headers, the
paging of list answers and how Harvest's error bodies map onto the connector error tree (``error_for``).

Nothing above this module looks at status codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from accord.connectors.base import CallStats, retry_after_seconds
from accord.connectors.budget import RequestBudget
from accord.connectors.errors import AuthExpired, ConnectorError, Gone, Permanent, RateLimited, Retryable
from accord.connectors.harvest.settings import HarvestSettings
from accord.connectors.http import HttpSession

DEFAULT_RETRY_AFTER = 15.0  # one rate-limit window, when a 429 carries no Retry-After


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "error_description", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)[:200]


def error_for(system: str, response: httpx.Response, *, account_id: str) -> ConnectorError:
    """The classified error of a non-2xx Harvest answer."""
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    text = f"{where} → {status}: {_message(response)}"
    if status == 429:
        return RateLimited(system, f"{text} (100 requests per 15 s per account)", status=status,
                           retry_after=retry_after_seconds(response.headers, DEFAULT_RETRY_AFTER))
    if status == 401:
        return AuthExpired(system, f"{text}; the access token was refused for Harvest account {account_id}: "
                                   "issue a new personal access token (or OAuth token) and update "
                                   "access_token, and check account_id", status=status, code="invalid_token")
    if status >= 500 or status == 408:
        return Retryable(system, text, status=status)
    if status == 404:
        return Gone(system, f"{text}; the record no longer exists in Harvest", status=status, code="not_found")
    if status == 403:
        return Permanent(system, f"{text}; the token's user lacks the permission (an Administrator or a "
                                 "Manager with the right to edit this resource is needed)", status=status,
                         code="forbidden")
    if status == 422:
        return Permanent(system, f"{where} refused (validation): {_message(response)}", status=status,
                         code="validation")
    return Permanent(system, text, status=status)


class HarvestSession(HttpSession):
    """Requests to ``<base_url>/v2/...`` with the three required headers (a fixed access token)."""

    def __init__(self, settings: HarvestSettings, *, system: str, budget: RequestBudget | None,
                 transport: httpx.AsyncBaseTransport | None, stats: CallStats) -> None:
        super().__init__(system=system, stats=stats, limits=settings.limits(),
                         budget=budget, timeout=settings.timeout, transport=transport,
                         base_url=settings.base_url.rstrip("/"), headers={
                             "Authorization": f"Bearer {settings.access_token}",
                             "Harvest-Account-Id": settings.account_id.strip(),
                             "User-Agent": settings.user_agent,
                             "Accept": "application/json"})
        self.settings = settings

    def error(self, response: httpx.Response) -> ConnectorError:
        return error_for(self.system, response, account_id=self.settings.account_id)

    def local(self, url: str) -> str:
        """A ``links.next`` URL as a path on our own base URL (never follow a link to another host)."""
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}" if parts.query else parts.path

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a 2xx answer (``None`` for an empty one); otherwise a ``ConnectorError``."""
        response = await self.request(method, path, **kwargs)
        if not response.content:
            return None
        return self.decode(method, path, response)

    async def listing(self, path: str, key: str, params: Mapping[str, Any] | None = None,
                      ) -> dict[str, Any]:
        """One list answer; one without the ``key`` collection is ``Retryable`` (a proxy's page)."""
        body = await self.request_json("GET", path, params=params)
        if not isinstance(body, dict) or not isinstance(body.get(key), list):
            raise Retryable(self.system, f"GET {path} answered without a `{key}` list; repeating the call")
        return body

    async def record(self, method: str, path: str, body: dict[str, Any] | None,
                     headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The record a write (or GET) answers with; an answer without one is ``Permanent``."""
        answer = await self.request_json(method, path, json=body, headers=headers)
        if not isinstance(answer, dict):
            raise Permanent(self.system, f"{method} {path} answered without the record")
        return answer

    async def pages(self, path: str, key: str, params: Mapping[str, Any] | None = None,
                    ) -> AsyncIterator[dict[str, Any]]:
        """Every list answer from ``path``, following ``links.next`` to the end."""
        body = await self.listing(path, key, {"per_page": self.settings.page_size, **(params or {})})
        while True:
            yield body
            nxt = (body.get("links") or {}).get("next")
            if not nxt:
                return
            body = await self.listing(self.local(nxt), key)
