"""The exception desk and flow traces as JSON on the daemon's admin listener (``http.admin_port``).

``GET /exceptions`` (filters: state, system, entity, reason, correlation_id, older_than, newer_than; pages:
``limit`` (default 100, at most 1000) and ``after``, the ``next`` cursor of the previous page),
``GET /exceptions/{id}``, ``POST /exceptions/{id}/retry|resolve|skip`` (JSON body: ``by``, ``note``,
``edit`` — fields to patch before a retry), ``POST /exceptions/bulk`` (body: ``action``, ``ids`` or
``filters``), ``GET /trace/{correlation_id}``.

Every route, reads included (payloads hold tax ids and terms), needs ``Authorization: Bearer
<http.admin_token>`` when a token is configured, and is refused from anywhere but the local host when none is.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import msgspec
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.actors.desk import STATES, DeskError, ExceptionDesk, Filters
from accord.config.settings import Settings
from accord.config.types import Duration
from accord.streams.audit import AuditTrail
from accord.streams.keys import Keys
from accord.streams.scope import Scope

ACTIONS = ("retry", "resolve", "skip")


DEFAULT_PAGE, MAX_PAGE = 100, 1000
Endpoint = Callable[[Request], Awaitable[Response]]


def desk_routes(settings: Settings, redis: Redis) -> list[Route]:
    api = _DeskApi(settings, redis)
    guard = partial(_guarded, settings)
    return [Route("/exceptions", guard(api.listing)), Route("/exceptions/bulk", guard(api.bulk), methods=["POST"]),
            Route("/exceptions/{id}", guard(api.show)),
            Route("/exceptions/{id}/{action}", guard(api.act), methods=["POST"]),
            Route("/trace/{cid}", guard(api.trace))]


def _guarded(settings: Settings, endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind the admin token (or the local host, when no token is configured)."""
    async def guarded(request: Request) -> Response:
        refused = refused_admin(settings, request)
        return refused if refused is not None else await endpoint(request)
    return guarded


class _DeskApi:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.desk = ExceptionDesk(redis, Scope.of(settings))
        self.trail = AuditTrail(Keys(settings.namespace), settings.streams.audit_retention)

    async def listing(self, request: Request) -> JSONResponse:
        params = dict(request.query_params)
        try:
            filters = filters_from(params)
            limit = _limit(params.get("limit"))
            entries, after = await self.desk.page(filters, limit, params.get("after", ""))
        except ValueError as exc:
            return _error(400, str(exc))
        return JSONResponse({"count": len(entries), "exceptions": [e.as_json() for e in entries], "next": after})

    async def show(self, request: Request) -> JSONResponse:
        try:
            entry = await self.desk.get(request.path_params["id"])
        except DeskError as exc:
            return _error(404, str(exc))
        return JSONResponse(_jsonable(entry.as_json(full=True)))

    async def act(self, request: Request) -> JSONResponse:
        action, eid = request.path_params["action"], request.path_params["id"]
        if action not in ACTIONS:
            return _error(404, f"unknown action `{action}`; use one of {', '.join(ACTIONS)}")
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        result = await apply_action(self.desk, action, eid, body)
        return JSONResponse(result, status_code=200 if result["ok"] else 409)

    async def bulk(self, request: Request) -> JSONResponse:
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        action = body.get("action")
        if action not in ACTIONS:
            return _error(400, f"`action` must be one of {', '.join(ACTIONS)}, got {action!r}")
        try:
            ids = body.get("ids") or [
                e.record.exception_id for e in await self.desk.list(filters_from(body.get("filters") or {}))]
        except ValueError as exc:
            return _error(400, str(exc))
        results = [await apply_action(self.desk, action, eid, body) for eid in ids]
        return JSONResponse({"done": sum(r["ok"] for r in results), "results": results})

    async def trace(self, request: Request) -> JSONResponse:
        events = await self.trail.read(self.redis, request.path_params["cid"])
        return JSONResponse({"correlation_id": request.path_params["cid"],
                             "events": [msgspec.to_builtins(e) for e in events]})


async def apply_action(desk: ExceptionDesk, action: str, eid: str, body: dict[str, Any]) -> dict[str, Any]:
    by, note = str(body.get("by") or "api"), str(body.get("note") or "")
    try:
        if action == "retry":
            edit = body.get("edit")
            if edit is not None and not isinstance(edit, dict):
                raise DeskError(f"exception `{eid}`: `edit` must be an object of canonical fields, got {edit!r}")
            return {"id": eid, "ok": True, "change_id": await desk.retry(eid, by, edit)}
        await (desk.resolve if action == "resolve" else desk.skip)(eid, by, note)
        return {"id": eid, "ok": True}
    except DeskError as exc:
        return {"id": eid, "ok": False, "error": str(exc)}


def filters_from(params: dict[str, Any]) -> Filters:
    state = params.get("state", "open")
    if state not in (*STATES, "all"):
        raise ValueError(f"state: {state!r} is not one of {', '.join((*STATES, 'all'))}")
    older, newer = params.get("older_than"), params.get("newer_than")
    return Filters(state=None if state == "all" else state, system=params.get("system"),
                   entity=params.get("entity"), reason=params.get("reason"),
                   correlation_id=params.get("correlation_id"),
                   older_than_s=Duration.parse(older) if older else None,
                   newer_than_s=Duration.parse(newer) if newer else None)


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ValueError(f"limit: {raw!r} is not a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def refused_admin(settings: Settings, request: Request) -> Response | None:
    """None when the request may use the admin listener, else the refusal (401 without the right token; 403
    from another host when no token is configured)."""
    token = settings.http.admin_token
    if token:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(sent.encode(), token.encode()):
            return None
        return _error(401, "send Authorization: Bearer <http.admin_token> to use the exception desk")
    host = request.client.host if request.client else ""
    if host in ("127.0.0.1", "::1", "localhost", "testclient"):
        return None
    return _error(403, "the exception desk from other hosts needs http.admin_token in the config")


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        return _error(400, f"the request body is not JSON: {exc}")
    return body if isinstance(body, dict) else _error(400, "the request body must be a JSON object")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _jsonable(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value, enc_hook=str))
