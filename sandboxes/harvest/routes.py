"""HTTP side of the Harvest sandbox: the guards every call passes (User-Agent, token and account id,
the per-token quota → 429 with ``Retry-After``, see ``sandbox``), list paging (``page`` or ``cursor``,
``per_page`` ≤ 2000, ``links``), filters, and the CRUD handlers of every resource (invoices with their
nested ``messages`` and ``payments`` included; a payment has no GET or PATCH route, as in Harvest), and
``GET /v2/company`` (the account's settings and module flags) and ``GET /v2/users/me``."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.connectors.harvest.convert import parse_time_ms
from accord.sandboxes.faults import Fault
from accord.sandboxes.harvest.invoices import invoice_filter
from accord.sandboxes.harvest.store import HarvestError
from accord.sandboxes.server import sandboxed

if TYPE_CHECKING:
    from accord.sandboxes.harvest.sandbox import HarvestState

Handler = Callable[[Request], Awaitable[Response]]
INVALID_TOKEN = {"error": "invalid_token", "error_description": "The access token provided is expired, revoked, "
                                                                "malformed or invalid for other reasons."}
_FILTERS = ("client_id", "project_id", "user_id", "task_id")
_BOOL_FILTERS = ("is_active", "is_billed", "is_running")
_SORT_FIELD = {"time_entries": "spent_date", "expenses": "spent_date", "invoices": "issue_date"}  # then id
_PARENTS = {"project_id": "projects", "invoice_id": "invoices"}


def error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def on_fault(fault: Fault) -> Response:
    if fault.kind == "429":
        return error(429, {"message": "Too Many Requests"}, {"Retry-After": str(math.ceil(fault.retry_after))})
    status = 500 if fault.kind == "500" else 503
    return error(status, {"message": "Internal Server Error" if status == 500 else "Service Unavailable"})


def guarded(state: HarvestState, endpoint: str, handler: Handler) -> Handler:
    """Headers, auth and the rate limit, then ``handler``; ``HarvestError`` becomes its JSON answer."""

    async def check(request: Request) -> Response:
        if not request.headers.get("user-agent", "").strip():
            return error(400, {"message": "Missing User-Agent header"})  # [doc: 400; body unverified]
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else request.query_params.get("access_token")
        account = request.headers.get("harvest-account-id") or request.query_params.get("account_id")
        if token not in state.tokens or account != state.account_id:
            return error(401, INVALID_TOKEN)
        refused = state.take_request(token)
        if refused is not None:  # logged by ``sandboxed`` like every other answer
            return error(429, {"message": f"Retry later ({state.rate_limit} requests per {state.rate_period:g} "
                                          f"seconds); retry in {refused.retry_after} seconds"},
                         {"Retry-After": refused.retry_after})
        try:
            return await handler(request)
        except HarvestError as exc:
            return error(exc.status, exc.body)

    return check


def _bool(value: str) -> bool:
    return value.lower() in ("true", "1", "yes")


def _sort_key(resource: str, row: dict[str, Any]) -> tuple[str, int]:
    field = _SORT_FIELD.get(resource)
    return (str(row.get(field) or "") if field else "", row["id"])


def _filter(rows: list[dict[str, Any]], q: Any) -> list[dict[str, Any]]:
    """The list filters every work resource shares (ids, flags, external reference, spent_date range)."""
    for key in _FILTERS:
        if q.get(key):
            rows = [r for r in rows if str(r.get(key)) == q[key]]
    for key in _BOOL_FILTERS:
        if q.get(key):
            rows = [r for r in rows if bool(r.get(key)) == _bool(q[key])]
    if q.get("external_reference_id"):
        rows = [r for r in rows if (r.get("external_reference") or {}).get("id") == q["external_reference_id"]]
    if q.get("from"):
        rows = [r for r in rows if str(r.get("spent_date")) >= q["from"]]
    if q.get("to"):
        rows = [r for r in rows if str(r.get("spent_date")) <= q["to"]]
    return rows


class Resource:
    """List / get / create / update / delete of one resource (optionally nested under the record that
    ``parent``, a path parameter, names: a project, or an invoice)."""

    def __init__(self, state: HarvestState, name: str, parent: str = "project_id") -> None:
        self.state = state
        self.name = name
        self.parent = parent

    def _rows(self, request: Request) -> list[dict[str, Any]]:
        q = request.query_params
        store = self.state.store
        rows = list(store.tables[self.name].values())
        if self.parent in request.path_params:
            store.get(_PARENTS[self.parent], request.path_params[self.parent])
            rows = [r for r in rows if r[self.parent] == int(request.path_params[self.parent])]
        if q.get("updated_since"):
            try:
                since = parse_time_ms(q["updated_since"]) // 1000
            except ValueError:
                raise HarvestError(422, {"message": "Updated since is not a valid date and time"}) from None
            rows = [r for r in rows if r["updated_at"] >= since]
        rows = invoice_filter(rows, q) if self.name == "invoices" else _filter(rows, q)
        return sorted(rows, key=lambda r: _sort_key(self.name, r), reverse=True)

    async def list(self, request: Request) -> Response:
        q = request.query_params
        per_page = _per_page(q.get("per_page", "2000"))
        with self.state.lock:
            rows = self._rows(request)
            total = len(rows)
            start, page = self._start(q, rows, per_page)
            chunk = rows[start:start + per_page]
            items = [self.state.store.render(self.name, r) for r in chunk]
        more = start + per_page < total
        pages = max(1, math.ceil(total / per_page))
        links = _Links(str(request.base_url).rstrip("/") + request.url.path, per_page)
        return JSONResponse({
            self.name: items, "per_page": per_page, "total_pages": pages, "total_entries": total,
            "next_page": page + 1 if page is not None and more else None,
            "previous_page": page - 1 if page is not None and page > 1 else None,
            "page": page if page is not None else (pages if not more else None),
            "links": {"first": links.to(page=1, ref="first"),
                      "next": links.to(cursor=self._cursor_after(chunk[-1]), ref="next_cursor")
                      if more and chunk else None,
                      "previous": links.to(page=page - 1, ref="previous") if page and page > 1 else None,
                      "last": links.to(page=pages, ref="last")}})

    def _start(self, q: Any, rows: Sequence[dict[str, Any]], per_page: int) -> tuple[int, int | None]:
        """Where the page starts in ``rows``, and its page number (None when asked by cursor)."""
        if q.get("cursor"):
            after = json.loads(base64.urlsafe_b64decode(q["cursor"] + "==")).get("after", {})
            last = (str(after.get(_SORT_FIELD.get(self.name, "")) or ""), int(after["id"]))
            return next((i for i, r in enumerate(rows) if _sort_key(self.name, r) < last), len(rows)), None
        page = max(1, int(q.get("page", "1")))
        return (page - 1) * per_page, page

    def _cursor_after(self, row: dict[str, Any]) -> str:
        after = {"id": row["id"]}
        if self.name in _SORT_FIELD:
            after[_SORT_FIELD[self.name]] = row[_SORT_FIELD[self.name]]
        return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")

    async def one(self, request: Request) -> Response:
        rid = request.path_params["id"]
        with self.state.lock:
            row = self.state.store.get(self.name, rid)
            self._check_parent(request, row)
            if request.method == "GET":
                return JSONResponse(self.state.store.render(self.name, row))
            if request.method == "DELETE":
                self.state.store.delete(self.name, rid)
                return Response(status_code=200)
        body = await self._body(request)
        with self.state.lock:
            row = self.state.store.update(self.name, rid, body)
            return JSONResponse(self.state.store.render(self.name, row))

    async def create(self, request: Request) -> Response:
        body = await self._body(request)
        if self.parent in request.path_params:
            body[self.parent] = int(request.path_params[self.parent])
        with self.state.lock:
            row = self.state.store.create(self.name, body)
            return JSONResponse(self.state.store.render(self.name, row), status_code=201)

    def _check_parent(self, request: Request, row: dict[str, Any]) -> None:
        parent = request.path_params.get(self.parent)
        if parent is not None and str(row.get(self.parent)) != str(parent):
            raise HarvestError(404, {"status": 404, "error": "Not Found"})

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise HarvestError(400, {"message": "Invalid JSON Payload"}) from None
        if not isinstance(body, dict):
            raise HarvestError(400, {"message": "Invalid JSON Payload"})
        return body


def api_routes(state: HarvestState) -> list[Route]:
    """Every simulated ``/v2`` route; the fault endpoint name is the resource name (e.g. ``time_entries``)."""

    def route(path: str, endpoint: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, sandboxed(state, endpoint, guarded(state, endpoint, handler), on_fault),
                     methods=methods, name=f"{endpoint}:{path}")

    async def company(_: Request) -> Response:
        with state.lock:
            return JSONResponse(state.company())

    async def me(_: Request) -> Response:
        with state.lock:
            return JSONResponse(state.me())

    routes: list[Route] = [route("/v2/company", "company", company, ["GET"]),
                           route("/v2/users/me", "users", me, ["GET"])]
    for name in ("clients", "contacts", "projects", "tasks", "users", "time_entries", "expenses",
                 "expense_categories"):
        res = Resource(state, name)
        routes += [route(f"/v2/{name}", name, res.list, ["GET"]), route(f"/v2/{name}", name, res.create, ["POST"]),
                   route(f"/v2/{name}/{{id}}", name, res.one, ["GET", "PATCH", "DELETE"])]
    for name in ("task_assignments", "user_assignments"):
        res = Resource(state, name)
        nested = f"/v2/projects/{{project_id:int}}/{name}"
        routes += [route(f"/v2/{name}", name, res.list, ["GET"]), route(nested, name, res.list, ["GET"]),
                   route(nested, name, res.create, ["POST"]),
                   route(f"{nested}/{{id}}", name, res.one, ["GET", "PATCH", "DELETE"])]
    invoices = Resource(state, "invoices")
    routes += [route("/v2/invoices", "invoices", invoices.list, ["GET"]),
               route("/v2/invoices", "invoices", invoices.create, ["POST"]),
               route("/v2/invoices/{id}", "invoices", invoices.one, ["GET", "PATCH", "DELETE"])]
    for name, leaf, methods in (("invoice_messages", "messages", []), ("invoice_payments", "payments", ["DELETE"])):
        res = Resource(state, name, parent="invoice_id")
        nested = f"/v2/invoices/{{invoice_id:int}}/{leaf}"
        routes += [route(nested, name, res.list, ["GET"]), route(nested, name, res.create, ["POST"])]
        if methods:
            routes.append(route(f"{nested}/{{id}}", name, res.one, methods))
    return routes


def _per_page(value: str) -> int:
    try:
        per_page = int(value)
    except ValueError:
        per_page = 0
    if not 1 <= per_page <= 2000:
        raise HarvestError(422, {"message": "per_page must be between 1 and 2000"})
    return per_page


class _Links:
    """The ``links`` of a Harvest list page: the same list with other query parameters."""

    def __init__(self, base: str, per_page: int) -> None:
        self.base = base
        self.per_page = per_page

    def to(self, **params: Any) -> str:
        return f"{self.base}?{urlencode({**params, 'per_page': self.per_page})}"
