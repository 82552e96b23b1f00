"""One JSON-RPC session with a Tryton database on the shared ``HttpSession``: the login, the context
every call carries, the one-writer lock for creates, and how Tryton's errors map onto the error tree.

Protocol (``reference/tryton.md`` §3.4): ``POST /<db>/rpc/`` with ``{"id", "method", "params"}``; the
answer is HTTP 200 with ``result`` or ``error`` (application errors), other statuses for transport-level
refusals (401 session, 403 method not exposed, 404 database, 422 no context, 429 login back-off).
``common.db.login`` gives ``[user_id, token, bus]``; later calls send
``Authorization: Session base64("<login>:<user_id>:<token>")``. The context (``company`` and
``language``) is the last positional parameter of every model call (pitfall 4).

Errors: ``ConcurrencyException`` (a stale ``_timestamp``) is ``TrytonConcurrency`` (retryable: re-read
and write again); ``UserError`` is ``Permanent`` naming Tryton's message, except a read of a deleted
record (``Gone``) and a duplicate sequence number (pitfall 1: two creates raced; ``Retryable``);
``UserWarning`` is ``Permanent``; a raw Python error text (an unknown field or model) is ``Permanent``.

What survives a crash: nothing here. Tryton keeps sessions in its database, so a token outlives a
server restart; a refused one (401) is renewed by logging in again, once per request.
"""

from __future__ import annotations

import asyncio
import base64
import re
import weakref
from typing import Any

import httpx

from accord.config.types import AccountLimits
from accord.connectors.base import CallStats
from accord.connectors.budget import RequestBudget
from accord.connectors.errors import (
    AuthExpired,
    ConnectorError,
    Gone,
    Permanent,
    RateLimited,
    Retryable,
    StaleVersion,
)
from accord.connectors.http import HttpSession, Target
from accord.connectors.tryton.codec import dumps, loads
from accord.connectors.tryton.settings import TrytonSettings

SEQUENCE_CLASH = re.compile(r"The (code|number) on .+ must be unique")
_create_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary())


class TrytonConcurrency(StaleVersion, Retryable):
    """The record changed in Tryton between Accord's read and its write (a stale ``_timestamp``):
    nothing was written; read again and retry."""


def create_lock(base_url: str, database: str) -> asyncio.Lock:
    """The one lock for creates on a Tryton database in this process and event loop (pitfall 1:
    concurrent creates of sequence-numbered records collide on SQLite)."""
    locks = _create_locks.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(f"{base_url.rstrip('/')}/{database}", asyncio.Lock())


def rpc_error(system: str, method: str, error: Any) -> ConnectorError:
    """The classified error of a JSON-RPC ``error`` member."""
    kind, detail = (error[0], error[1] if len(error) > 1 else None) if isinstance(error, list) and error else (
        str(error), None)
    where = f"{method}"
    if kind == "ConcurrencyException":
        return TrytonConcurrency(system, f"{where}: the record was modified in Tryton meanwhile ({detail}); "
                                         "it is read again and written on the next attempt", code="concurrency")
    message = str(detail[0]) if isinstance(detail, list) and detail else str(detail or kind)
    extra = str(detail[1]) if isinstance(detail, list) and len(detail) > 1 and detail[1] else ""
    text = f"{where} refused by Tryton: {message}" + (f" ({extra})" if extra else "")
    if kind == "UserError":
        if "that don't exist" in message:
            return Gone(system, f"{text}; the record was deleted in Tryton", code="not_found")
        if SEQUENCE_CLASH.search(message):
            return Retryable(system, f"{text}; two creates took the same sequence number (SQLite), retried",
                             code="sequence_clash")
        return Permanent(system, text, code="user_error")
    if kind == "UserWarning":
        return Permanent(system, f"{where} stopped by a Tryton warning: {detail}; accept it for the sync user "
                                 "(res.user.warning) or fix the record", code="user_warning")
    if kind == "LoginException":
        return AuthExpired(system, f"{where}: Tryton asks for a login ({detail})", code="login")
    return Permanent(system, f"{where} failed in Tryton with {kind!r} {detail or ''}: an unknown field, model "
                             "or method (a programming error, not the record's)", code="server_error")


class TrytonSession(HttpSession):
    """Calls to ``<base_url>/<database>/rpc/`` under one login session."""

    def __init__(self, settings: TrytonSettings, *, system: str, budget: RequestBudget | None,
                 transport: httpx.AsyncBaseTransport | None, stats: CallStats) -> None:
        super().__init__(system=system, stats=stats, limits=AccountLimits(), budget=budget,
                         timeout=settings.timeout, transport=transport, base_url=settings.base_url.rstrip("/"),
                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        self.settings = settings
        self.path = f"/{settings.database}/rpc/"
        self.context: dict[str, Any] = {}
        self._token: str | None = None
        self._auth: dict[str, str] = {}
        self._login_lock = asyncio.Lock()
        self._ids = 0

    # -- HttpSession hooks --------------------------------------------------------------------------

    async def target(self, path: str, stale: str | None) -> Target:
        if path != self.path:  # the DB-less endpoint (/rpc/) and the login itself carry no session
            return Target(path, {})
        async with self._login_lock:
            if self._token is None or self._token == stale:
                await self._login()
        return Target(path, dict(self._auth), self._token)

    def error(self, response: httpx.Response) -> ConnectorError:
        status = response.status_code
        text = f"POST {response.request.url.path} → {status}: {response.text[:200] or response.reason_phrase}"
        if status == 401:
            return AuthExpired(self.system, f"{text}; Tryton refused the login `{self.settings.login}` of "
                                            f"database {self.settings.database}: check login and password",
                               status=status, code="login")
        if status == 429:
            return RateLimited(self.system, f"{text} (too many failed logins)", retry_after=60.0, status=status)
        if status >= 500:
            return Retryable(self.system, text, status=status)
        if status == 404:
            return Permanent(self.system, f"{text}; no database `{self.settings.database}` on "
                                          f"{self.settings.base_url}", status=status, code="no_database")
        return Permanent(self.system, text, status=status)

    # -- calls --------------------------------------------------------------------------------------

    async def _post(self, method: str, params: list[Any], headers: dict[str, str] | None = None) -> Any:
        """One envelope to ``/<db>/rpc/``: the ``result``, or the classified ``error``."""
        self._ids += 1
        content = dumps({"id": self._ids, "method": method, "params": params})
        if headers is None:
            response = await self.request("POST", self.path, content=content)
        else:
            response = await self.send("POST", self.path, content=content, headers=headers)
            if response.status_code >= 300:
                raise self.error(response)
        try:
            body = loads(response.content)
        except ValueError as exc:
            self.stats.error("bad_body")
            raise Retryable(self.system, f"{method} answered with a body that is not JSON: "
                                         f"{response.text[:120]!r}") from exc
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise Retryable(self.system, f"{method} answered without a result: {str(body)[:120]}")
        if body.get("error") is not None:
            self.stats.error("client")
            raise rpc_error(self.system, method, body["error"])
        return body.get("result")

    async def _login(self) -> None:
        login = self.settings.login
        result = await self._post("common.db.login", [login, {"password": self.settings.password},
                                                      self.settings.language], headers={})
        if not isinstance(result, list) or len(result) < 2:
            raise AuthExpired(self.system, f"common.db.login answered {str(result)[:80]}: check the login "
                                           f"`{login}` and its password", code="login")
        uid, token = result[0], str(result[1])
        raw = f"{login}:{uid}:{token}".encode()
        self._auth = {"Authorization": "Session " + base64.b64encode(raw).decode()}
        self._token = token
        prefs = await self._post("model.res.user.get_preferences", [True, {}], headers=dict(self._auth))
        company = self.settings.company or (prefs or {}).get("company")
        if not company:
            raise Permanent(self.system, f"Tryton user `{login}` has no current company: set `company` in the "
                                         "settings or the user's preferences", code="no_company")
        self.context = {"company": company, "language": self.settings.language}
        if (prefs or {}).get("employee"):  # Tryton's own client sends it: records default their employee to it
            self.context["employee"] = prefs["employee"]

    async def call(self, method: str, *args: Any, context: dict[str, Any] | None = None) -> Any:
        """``model.<name>.<method>(*args, context)`` with the session's context merged with ``context``."""
        if not self.context:
            await self.target(self.path, None)
        return await self._post(method, [*args, {**self.context, **(context or {})}])
