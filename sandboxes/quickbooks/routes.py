"""HTTP side of the QuickBooks sandbox: the guards every API call passes (per-realm quotas, bearer
token, company, ``minorversion``), requestid replay, the token endpoint and the API handlers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from accord.connectors.quickbooks.faults import QboFault, auth_failed, qbo_time, system_fault, throttled
from accord.sandboxes.faults import Fault
from accord.sandboxes.quickbooks.store import ENTITY_TYPES, EntityType, Realm, entity_type
from accord.sandboxes.quota import Refusal
from accord.sandboxes.server import LoggedRequest

if TYPE_CHECKING:
    from accord.sandboxes.quickbooks.sandbox import QuickBooksState

CDC_WINDOW = 30 * 86400.0
CDC_MAX_OBJECTS = 1000
BATCH_MAX_ITEMS = 30
MIN_MINOR_VERSION = 75
REALM_QUOTAS = ["per_minute", "per_second", "concurrent"]  # every API call; /batch also counts toward "batch"

Endpoint = Callable[[Request], Awaitable[Response]]
RealmHandler = Callable[[Request, Realm], Awaitable[Response]]

T = TypeVar("T")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json",
                    headers={"intuit_tid": uuid.uuid4().hex, **(headers or {})})


def limited(state: QuickBooksState, endpoint: str, inner: Endpoint) -> Endpoint:
    """The realm's quotas (see ``QuickBooksState``) before anything else, as Intuit's gateway does: a
    refusal is a 429 with the gateway's throttle Fault and ``Retry-After``, logged with fault ``"limit"``.
    The concurrency slot is held until ``inner`` returns or raises (a cancelled request frees it too)."""
    quotas = [*REALM_QUOTAS, "batch"] if endpoint == "batch" else REALM_QUOTAS

    async def wrapped(request: Request) -> Response:
        realm = state.realms.get(request.path_params.get("realm", ""))
        if realm is None:
            return await inner(request)
        admitted = state.quotas.admit(realm.id, quotas)
        if isinstance(admitted, Refusal):
            state.requests.add(LoggedRequest(method=request.method, path=request.url.path, endpoint=endpoint,
                                             status=429, at=state.clock.now(), query=request.url.query,
                                             fault="limit"))
            return json_response(throttled(), 429, {"Retry-After": admitted.retry_after})
        try:
            return await inner(request)
        finally:
            admitted.release()

    return wrapped


def authed(state: QuickBooksState, handler: RealmHandler) -> Endpoint:
    """Bearer token, company and ``minorversion`` checks, then the handler; ``QboFault`` → Fault body."""

    async def wrapped(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else ""
        with state.lock:
            expires = state.access_tokens.get(token)
        if expires is None or expires <= state.clock.now():
            why = "Token expired" if token else "Authorization header missing"
            return json_response(auth_failed(f"{why}: refresh the access token"), 401)
        realm = state.realms.get(request.path_params["realm"])
        try:
            if realm is None:
                raise QboFault(403, "3100", "ApplicationAuthorizationFailed",
                               f"company {request.path_params['realm']} is not connected to this app",
                               kind="AuthorizationFault")
            minor = request.query_params.get("minorversion", "")
            if not minor.isdigit() or int(minor) < MIN_MINOR_VERSION:
                raise QboFault(400, "2010" if minor else "2020", "Invalid minorversion",
                               f"minorversion={minor or '<missing>'} is not supported: send "
                               f"minorversion={MIN_MINOR_VERSION} or later (1-74 were retired on 1 Aug 2025)",
                               element="minorversion")
            return await handler(request, realm)
        except QboFault as fault:
            return json_response(fault.body(state.clock.now()), fault.status)

    return wrapped


def fault_renderer(state: QuickBooksState) -> Callable[[Fault], Response]:
    """Injected faults in QBO's shapes: 429 throttle (with ``Retry-After``), 500/503 SystemFault."""

    def render(fault: Fault) -> Response:
        if fault.kind == "429":
            return json_response(throttled(), 429, {"Retry-After": f"{fault.retry_after:g}"})
        status = 500 if fault.kind == "500" else 503
        return json_response(system_fault(status).body(state.clock.now()), status)

    return render


async def body_json(request: Request) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise QboFault(400, "2010", "Request has invalid or unsupported property",
                       f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise QboFault(400, "2010", "Request has invalid or unsupported property", "expected a JSON object")
    return body


def replayable(state: QuickBooksState, request: Request, realm: Realm, max_len: int,
               execute: Callable[[], Any]) -> Response:
    """Run ``execute`` once per ``requestid``: a repeat gets the stored status and body back."""
    request_id = request.query_params.get("requestid")
    if request_id is not None and not 0 < len(request_id) <= max_len:
        raise QboFault(400, "2010", "Invalid requestid",
                       f"requestid must be 1-{max_len} characters, got {len(request_id)}", element="requestid")
    with state.lock:
        if request_id is not None and request_id in realm.replies:
            status, body = realm.replies[request_id]
            return Response(body, status_code=status, media_type="application/json")
        try:
            status, payload = 200, execute()
        except QboFault as fault:
            status, payload = fault.status, fault.body(state.clock.now())
        encoded = msgspec.json.encode(payload)
        if request_id is not None:
            realm.remember_reply(request_id, status, encoded)
    return Response(encoded, status_code=status, media_type="application/json",
                    headers={"intuit_tid": uuid.uuid4().hex})


async def off_loop(state: QuickBooksState, work: Callable[..., T], *args: Any) -> T:
    """Run ``work`` under the state's lock in a worker thread: the event loop stays free to take (and
    stamp, for the quotas) the requests arriving meanwhile, as a real service's many workers would."""
    def locked() -> T:
        with state.lock:
            return work(*args)
    return await asyncio.to_thread(locked)


def token_endpoint(state: QuickBooksState) -> Endpoint:
    """``POST /oauth2/v1/tokens/bearer``: the refresh-token grant with HTTP Basic client auth."""

    async def token(request: Request) -> Response:
        try:
            kind, _, encoded = request.headers.get("authorization", "").partition(" ")
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            kind, client_id, secret = "", "", ""
        if kind.lower() != "basic" or (client_id, secret) != (state.client_id, state.client_secret):
            return JSONResponse({"error": "invalid_client"}, 401)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        with state.lock:
            if form.get("refresh_token") != state.refresh_token:
                return JSONResponse({"error": "invalid_grant"}, 400)
            return JSONResponse(state.issue_token())

    return token


class Handlers:
    """The v3 company API. Each handler gets the request and its company (``Realm``)."""

    def __init__(self, state: QuickBooksState) -> None:
        self.state = state

    def now(self) -> str:
        return qbo_time(self.state.clock.now(), millis=True)

    def routes(self) -> list[tuple[str, str, RealmHandler, list[str]]]:
        """(endpoint name, path, handler, methods) for every API route."""
        out: list[tuple[str, str, RealmHandler, list[str]]] = [
            ("query", "/v3/company/{realm}/query", self.query, ["GET", "POST"]),
            ("cdc", "/v3/company/{realm}/cdc", self.cdc, ["GET"]),
            ("batch", "/v3/company/{realm}/batch", self.batch, ["POST"]),
            ("companyinfo", "/v3/company/{realm}/companyinfo/{id}", self.company_info, ["GET"]),
            ("preferences", "/v3/company/{realm}/preferences", self.preferences, ["GET"])]
        for etype in ENTITY_TYPES.values():
            base = f"/v3/company/{{realm}}/{etype.path}"
            out += [(etype.path, base, self._bind(self.write, etype), ["POST"]),
                    (etype.path, base, self._bind(self.listing, etype), ["GET"]),
                    (etype.path, base + "/{id}", self._bind(self.read, etype), ["GET"])]
        return out

    @staticmethod
    def _bind(method: Callable[[Request, Realm, EntityType], Awaitable[Response]], etype: EntityType) -> RealmHandler:
        async def handler(request: Request, realm: Realm) -> Response:
            return await method(request, realm, etype)

        return handler

    async def query(self, request: Request, realm: Realm) -> Response:
        text = (await request.body()).decode() if request.method == "POST" else request.query_params.get("query", "")
        result = await off_loop(self.state, realm.query, text)
        return json_response({"QueryResponse": result, "time": self.now()})

    async def cdc(self, request: Request, realm: Realm) -> Response:
        params = request.query_params
        names = [entity_type(n.strip()).name for n in params.get("entities", "").split(",") if n.strip()]
        raw = params.get("changedSince", "")
        if not names or not raw:
            missing = "entities" if not names else "changedSince"
            raise QboFault(400, "2020", "Required param missing, need to supply the required value for the API",
                           f"Required parameter {missing} is missing in the request", element=missing)
        try:
            since = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise QboFault(400, "2010", "Invalid changedSince", f"changedSince {raw!r} is not an ISO 8601 "
                           "date-time such as 2026-04-01T00:00:00-07:00", element="changedSince") from None
        start = (since if since.tzinfo else since.replace(tzinfo=dt.UTC)).timestamp()
        if self.state.clock.now() - start > CDC_WINDOW:
            raise QboFault(400, "2010", "Invalid changedSince", f"changedSince {raw} is more than 30 days ago; "
                           "change data capture covers the last 30 days: run a full query", element="changedSince")
        def blocks() -> list[dict[str, Any]]:
            changed, _ = realm.changed_since(names, start, CDC_MAX_OBJECTS)
            out = []
            for name in names:
                objects = [realm.render(ENTITY_TYPES[name], row) for n, row in changed if n == name]
                out.append({name: objects, "startPosition": 1, "maxResults": len(objects)} if objects else {})
            return out

        return json_response({"CDCResponse": [{"QueryResponse": await off_loop(self.state, blocks)}],
                              "time": self.now()})

    def _batch_item(self, realm: Realm, item: dict[str, Any]) -> dict[str, Any]:
        bid = item.get("bId")
        try:
            if "Query" in item:
                return {"QueryResponse": realm.query(str(item["Query"])), "bId": bid}
            names = [k for k in item if k in ENTITY_TYPES]
            if len(names) != 1:
                raise QboFault(400, "2010", "Request has invalid or unsupported property",
                               f"batch item {bid} must carry exactly one entity object")
            etype = ENTITY_TYPES[names[0]]
            row = self.state.write(realm, etype, str(item.get("operation", "create")), item[names[0]], "API app")
            return {etype.name: realm.render(etype, row), "bId": bid}
        except QboFault as fault:
            return {"Fault": fault.fault(), "bId": bid}

    async def batch(self, request: Request, realm: Realm) -> Response:
        items = (await body_json(request)).get("BatchItemRequest")
        if not isinstance(items, list) or not 0 < len(items) <= BATCH_MAX_ITEMS:
            size = len(items) if isinstance(items, list) else 0
            raise QboFault(400, "2050", "Batch size limit exceeded",
                           f"BatchItemRequest must hold 1-{BATCH_MAX_ITEMS} items, got {size}")
        if "requestid" in request.query_params and any(len(str(i.get("bId", ""))) > 10 for i in items):
            raise QboFault(400, "2010", "Invalid bId", "bId must be at most 10 characters when requestid is set",
                           element="bId")
        return await asyncio.to_thread(replayable, self.state, request, realm, 36, lambda: {
            "BatchItemResponse": [self._batch_item(realm, i) for i in items], "time": self.now()})

    async def write(self, request: Request, realm: Realm, etype: EntityType) -> Response:
        body = await body_json(request)
        operation = request.query_params.get("operation", "update" if "Id" in body else "create")

        def execute() -> dict[str, Any]:
            row = self.state.write(realm, etype, operation, body, "API app")
            return {etype.name: realm.render(etype, row), "time": self.now()}

        return await asyncio.to_thread(replayable, self.state, request, realm, 50, execute)

    async def read(self, request: Request, realm: Realm, etype: EntityType) -> Response:
        record = await off_loop(self.state, lambda: realm.render(etype, realm.row(etype, request.path_params["id"])))
        return json_response({etype.name: record, "time": self.now()})

    async def listing(self, request: Request, realm: Realm, etype: EntityType) -> Response:
        rows = await off_loop(self.state, lambda: [realm.render(etype, r) for r in realm.tables[etype.name].values()
                                                   if not r.deleted])
        response = {etype.name: rows, "startPosition": 1, "maxResults": len(rows)} if rows else {}
        return json_response({"QueryResponse": response, "time": self.now()})

    async def company_info(self, request: Request, realm: Realm) -> Response:
        """``GET /companyinfo/{realmId}`` (any id is answered: the company has one CompanyInfo)."""
        return await self._account(realm, "CompanyInfo")

    async def preferences(self, request: Request, realm: Realm) -> Response:
        return await self._account(realm, "Preferences")

    async def _account(self, realm: Realm, name: str) -> Response:
        record = await off_loop(self.state, realm.render, None, realm.account[name])
        return json_response({name: record, "time": self.now()})
