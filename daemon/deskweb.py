"""The exception desk and flow trails as JSON over the daemon's HTTP API, for dashboards.

``GET /exceptions`` (filters: state, system, entity, reason, correlation_id, older_than, newer_than),
``GET /exceptions/{id}``, ``POST /exceptions/{id}/retry|resolve|skip`` (JSON body: ``by``, ``note``,
``edit`` — fields to patch before a retry), ``POST /exceptions/bulk`` (body: ``action``, ``ids`` or
``filters``), ``GET /trace/{correlation_id}``.

Actions change data: they need ``Authorization: Bearer <http.admin_token>`` when a token is configured,
and are refused from anywhere but the local host when none is.
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from accord.actors.desk import STATES, DeskError, ExceptionDesk, Filters
from accord.config.settings import Settings
from accord.config.types import Duration
from accord.streams.audit import AuditTrail
from accord.streams.keys import Keys
from accord.streams.scope import Scope

ACTIONS = ("retry", "resolve", "skip")


def desk_routes(settings: Settings, redis: Redis) -> list[Route]:
    api = _DeskApi(settings, redis)
    return [Route("/exceptions", api.listing), Route("/exceptions/bulk", api.bulk, methods=["POST"]),
            Route("/exceptions/{id}", api.show), Route("/exceptions/{id}/{action}", api.act, methods=["POST"]),
            Route("/trace/{cid}", api.trace)]


class _DeskApi:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.desk = ExceptionDesk(redis, Scope.of(settings))
        self.trail = AuditTrail(Keys(settings.namespace), settings.streams.audit_retention)

    async def listing(self, request: Request) -> JSONResponse:
        try:
            filters = _filters(dict(request.query_params))
        except ValueError as exc:
            return _error(400, str(exc))
        entries = await self.desk.list(filters)
        return JSONResponse({"count": len(entries), "exceptions": [e.as_json() for e in entries]})

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
        body = await _authorised_body(self.settings, request)
        if isinstance(body, JSONResponse):
            return body
        result = await _apply(self.desk, action, eid, body)
        return JSONResponse(result, status_code=200 if result["ok"] else 409)

    async def bulk(self, request: Request) -> JSONResponse:
        body = await _authorised_body(self.settings, request)
        if isinstance(body, JSONResponse):
            return body
        action = body.get("action")
        if action not in ACTIONS:
            return _error(400, f"`action` must be one of {', '.join(ACTIONS)}, got {action!r}")
        try:
            ids = body.get("ids") or [
                e.record.exception_id for e in await self.desk.list(_filters(body.get("filters") or {}))]
        except ValueError as exc:
            return _error(400, str(exc))
        results = [await _apply(self.desk, action, eid, body) for eid in ids]
        return JSONResponse({"done": sum(r["ok"] for r in results), "results": results})

    async def trace(self, request: Request) -> JSONResponse:
        events = await self.trail.read(self.redis, request.path_params["cid"])
        return JSONResponse({"correlation_id": request.path_params["cid"],
                             "events": [msgspec.to_builtins(e) for e in events]})


async def _authorised_body(settings: Settings, request: Request) -> dict[str, Any] | JSONResponse:
    refused = _refused(settings, request)
    return refused if refused is not None else await _body(request)


async def _apply(desk: ExceptionDesk, action: str, eid: str, body: dict[str, Any]) -> dict[str, Any]:
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


def _filters(params: dict[str, Any]) -> Filters:
    state = params.get("state", "open")
    if state not in (*STATES, "all"):
        raise ValueError(f"state: {state!r} is not one of {', '.join((*STATES, 'all'))}")
    older, newer = params.get("older_than"), params.get("newer_than")
    return Filters(state=None if state == "all" else state, system=params.get("system"),
                   entity=params.get("entity"), reason=params.get("reason"),
                   correlation_id=params.get("correlation_id"),
                   older_than_s=Duration.parse(older) if older else None,
                   newer_than_s=Duration.parse(newer) if newer else None)


def _refused(settings: Settings, request: Request) -> JSONResponse | None:
    token = settings.http.admin_token
    if token:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(sent.encode(), token.encode()):
            return None
        return _error(401, "send Authorization: Bearer <http.admin_token> to act on exceptions")
    host = request.client.host if request.client else ""
    if host in ("127.0.0.1", "::1", "localhost", "testclient"):
        return None
    return _error(403, "exception desk actions from other hosts need http.admin_token in the config")


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
