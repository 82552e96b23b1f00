"""One HTTP session with one external account: the plumbing every connector shares.

``HttpSession`` owns one ``httpx.AsyncClient`` (``default_timeout``), takes a grant of the account's
shared ``RequestBudget`` for every request (and tells it the server's throttles and quota usage), counts
calls, rate limits and errors in ``CallStats``, translates transport failures
(``classify_transport_error``), and renews a refused access token once. A system's session subclasses
it and keeps only what differs:

- ``target``: the URL and auth headers of a path (and the access token sent, if any);
- ``error``: how its API's error bodies map onto the error tree of ``accord.connectors.errors``
  (``Retry-After`` included); nothing above a session looks at status codes;
- ``throttled`` / ``retry_after`` / ``quota_usage`` / ``kind``: what counts as rate limited, how long
  the server asks to wait, the quota usage it reports, and which budget windows a request counts in;
- ``observe``: headers worth keeping;
- its endpoints.

What survives a crash: nothing; tokens live in the ``TokenCache`` (``accord.connectors.oauth``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import httpx
import msgspec

from accord.config.types import AccountLimits
from accord.connectors.base import CallStats, classify_transport_error, default_timeout, error_class
from accord.connectors.budget import RequestBudget, local_budget
from accord.connectors.errors import ConnectorError, Retryable


class Target(NamedTuple):
    """Where a request goes: its URL, its auth headers and the access token in them (``None``: a
    credential a 401 cannot renew)."""

    url: str
    headers: dict[str, str]
    token: str | None = None


class HttpSession:
    """Requests to one external account (``system`` names it in errors). ``budget`` is the account's
    shared request budget; without one, a budget of this session alone enforces ``limits``."""

    def __init__(self, *, system: str, stats: CallStats, limits: AccountLimits, budget: RequestBudget | None,
                 timeout: float, transport: httpx.AsyncBaseTransport | None, base_url: str = "",
                 headers: Mapping[str, str] | None = None) -> None:
        self.system = system
        self.stats = stats
        self.budget = budget or local_budget(limits)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=default_timeout(timeout), transport=transport,
                                       headers=headers)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- what a system supplies -----------------------------------------------------------------

    async def target(self, path: str, stale: str | None) -> Target:
        """The URL and auth headers for ``path``; ``stale`` is the token a 401 just refused (renew it)."""
        return Target(path, {})

    def error(self, response: httpx.Response) -> ConnectorError:
        """The classified error of a non-2xx answer (the one place status codes are read)."""
        raise NotImplementedError

    def throttled(self, response: httpx.Response) -> bool:
        """Whether ``response`` says the account's rate limit was hit."""
        return response.status_code == 429

    def retry_after(self, response: httpx.Response) -> float | None:
        """How long a throttled answer asks every caller to wait (``Retry-After`` in seconds)."""
        try:
            return float(response.headers["retry-after"])
        except (KeyError, ValueError):
            return None

    def quota_usage(self, response: httpx.Response) -> tuple[int, int] | None:
        """``(used, limit)`` of a quota the server reports on every answer, if it does."""
        return None

    def kind(self, method: str, url: str) -> str:
        """Which of the account's budget windows (beyond the ``"*"`` ones) a request counts in."""
        return "*"

    def observe(self, response: httpx.Response) -> None:
        """Note what every answer tells (counts a rate-limited one)."""
        if self.throttled(response):
            self.stats.rate_limited += 1

    # -- requests -------------------------------------------------------------------------------

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request under a grant of the account's budget, whatever its status; transport failures
        raise connector errors. A throttle or a quota report is passed on to the budget (every caller)."""
        async with self.budget.slot(self.kind(method, url)):
            self.stats.calls += 1
            try:
                response = await self._http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                self.stats.error("transport")
                raise classify_transport_error(self.system, exc) from exc
        self.observe(response)
        if self.throttled(response):
            await self.budget.throttled(self.retry_after(response))
        usage = self.quota_usage(response)
        if usage is not None:
            await self.budget.usage(*usage)
        return response

    async def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                      **kwargs: Any) -> httpx.Response:
        """A 2xx answer to ``method path``. A 401 renews the access token and repeats the request once;
        any other failure raises the system's ``ConnectorError``."""
        target = await self.target(path, None)
        response = await self.send(method, target.url, headers={**target.headers, **(headers or {})}, **kwargs)
        if response.status_code == 401 and target.token is not None:
            target = await self.target(path, target.token)
            response = await self.send(method, target.url, headers={**target.headers, **(headers or {})},
                                       **kwargs)
        if response.status_code >= 300:
            self.stats.error(error_class(response.status_code))
            raise self.error(response)
        return response

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request`` and its JSON body (see ``decode``)."""
        return self.decode(method, path, await self.request(method, path, **kwargs))

    def decode(self, method: str, path: str, response: httpx.Response) -> Any:
        """The JSON body of ``response``; one that is not JSON (a proxy's error page) is ``Retryable``."""
        try:
            return msgspec.json.decode(response.content)  # ~2.4x the stdlib's speed on a page of rows
        except ValueError as exc:
            self.stats.error("bad_body")
            raise Retryable(self.system, f"{method} {path} → {response.status_code} with a body that is not "
                                         f"JSON: {response.text[:120]!r}", status=response.status_code) from exc
