"""The Salesforce sandbox's HTTP surface: OAuth token, versions, limits, query/queryAll, sObject rows,
upsert by external id and sObject Collections, answered in Salesforce's own shapes.

Every ``/services/data/vNN.N/...`` call is checked in Salesforce's order: a version below 46.0 → 404
``NOT_FOUND``; a missing or expired session → 401 ``INVALID_SESSION_ID``; the daily limit used up (over
the last 24 h, see ``sandbox``) → 403 ``REQUEST_LIMIT_EXCEEDED``. Every response carries
``Sforce-Limit-Info: api-usage=n/N``. Top-level errors are arrays of ``{"message","errorCode","fields"}``;
per-record results use ``statusCode``. Fault endpoint names: ``token``, ``query``, ``sobject``, ``composite``, ``limits``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.sandboxes.faults import Fault
from accord.sandboxes.salesforce import plan, soql
from accord.sandboxes.salesforce.rows import RowRoutes
from accord.sandboxes.salesforce.store import RecordError, SObjectType
from accord.sandboxes.server import Handler, sandboxed

if TYPE_CHECKING:
    from accord.sandboxes.salesforce.sandbox import SalesforceState

Render = Callable[[dict[str, Any]], dict[str, Any]]
_VERSION = re.compile(r"^v(\d+)\.(\d+)$")
_BATCH = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


def _error(status: int, code: str, message: str, fields: list[str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields:
        body["fields"] = fields
    return JSONResponse([body], status_code=status)


def _record_error(exc: RecordError) -> JSONResponse:
    return JSONResponse([exc.rest_json()], status_code=exc.http)


def _season(version: int) -> str:
    cycle, step = divmod(version - 48, 3)  # v48.0 = Spring '20; three releases a year
    season, year = (("Spring", 20 + cycle), ("Summer", 20 + cycle), ("Winter", 21 + cycle))[step]
    return f"{season} '{year:02d}"


def api_routes(state: SalesforceState) -> list[Route]:
    """Every simulated Salesforce route, wrapped with fault injection, logging and the limit header."""
    route = _Wrapper(state).route
    query = _QueryRoutes(state)
    rows = RowRoutes(state)
    data = "/services/data/{version}"
    return [
        route("/services/oauth2/token", "token", _token_handler(state), ["POST"], api=False),
        route("/services/data", "versions", _versions_handler(state), ["GET"], api=False),
        route("/services/data/", "versions", _versions_handler(state), ["GET"], api=False),
        route(f"{data}/limits", "limits", _limits_handler(state), ["GET"]),
        route(f"{data}/query", "query", query.start, ["GET"]),
        route(f"{data}/queryAll", "query", query.start, ["GET"]),
        route(f"{data}/query/{{locator}}", "query", query.more, ["GET"]),
        route(f"{data}/queryAll/{{locator}}", "query", query.more, ["GET"]),
        route(f"{data}/sobjects", "sobject", rows.describe_global, ["GET"]),
        route(f"{data}/sobjects/{{obj}}", "sobject", rows.create, ["POST"]),
        route(f"{data}/sobjects/{{obj}}/{{rid}}", "sobject", rows.row, ["GET", "PATCH", "DELETE"]),
        route(f"{data}/sobjects/{{obj}}/{{field}}/{{value}}", "sobject", rows.external, ["GET", "PATCH"]),
        route(f"{data}/composite/sobjects", "composite", rows.collection, ["POST", "PATCH", "DELETE"]),
        route(f"{data}/composite/sobjects/{{obj}}", "composite", rows.collection_get, ["GET"]),
        route(f"{data}/composite/sobjects/{{obj}}/{{field}}", "composite", rows.collection_upsert, ["PATCH"]),
    ]


class _Wrapper:
    """What every route of the org does around its handler: fault injection and the request log, the
    ``Sforce-Limit-Info`` header, and (for API routes) the version, session and daily-limit checks."""

    def __init__(self, state: SalesforceState) -> None:
        self.state = state

    def route(self, path: str, endpoint: str, handler: Handler, methods: list[str], *, api: bool = True) -> Route:
        inner = self._guarded(handler) if api else handler

        async def with_header(request: Request) -> Response:
            return self._limit_header(await inner(request))

        return Route(path, sandboxed(self.state, endpoint, with_header, self._on_fault), methods=methods,
                     name=endpoint)

    def _limit_header(self, response: Response) -> Response:
        used, limit = self.state.usage()
        response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{limit}"
        return response

    def _on_fault(self, fault: Fault) -> Response:
        if fault.kind == "429":  # Salesforce rarely answers 429: its quota refusal is a 403
            return self._limit_header(_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
        status = 500 if fault.kind == "500" else 503
        return self._limit_header(_error(status, "SERVER_UNAVAILABLE", "Server temporarily unavailable"))

    def _guarded(self, handler: Handler) -> Handler:
        async def check(request: Request) -> Response:
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
            try:
                return await handler(request)
            except RecordError as exc:
                return _record_error(exc)
        return check

    def _refusal(self, request: Request) -> Response | None:
        """Why the org refuses this API call before reading it (unknown version, bad session, daily limit)."""
        match = _VERSION.match(request.path_params.get("version", ""))
        if match is None or float(f"{match[1]}.{match[2]}") < 46.0:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not self.state.token_valid(auth[7:].strip()):
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if not self.state.count_call():
            return _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return None


def _token_handler(state: SalesforceState) -> Handler:
    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = client_secret = None
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type", "error_description": "grant type not supported"},
                                status_code=400)
        if client_id != state.client_id or client_secret != state.client_secret:
            return JSONResponse({"error": "invalid_client", "error_description": "invalid client credentials"},
                                status_code=400)
        return JSONResponse(state.issue_token(str(request.base_url).rstrip("/")))
    return token


def _versions_handler(state: SalesforceState) -> Handler:
    async def versions(_: Request) -> Response:
        latest = int(float(state.latest_version))
        return JSONResponse([{"label": _season(v), "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                             for v in range(46, latest + 1)])
    return versions


def _limits_handler(state: SalesforceState) -> Handler:
    async def limits(_: Request) -> Response:
        used, limit = state.usage()
        return JSONResponse({
            "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DataStorageMB": {"Max": 5, "Remaining": 5},
            "SingleEmail": {"Max": 15, "Remaining": 15},
        })
    return limits


class _QueryRoutes:
    """``query`` / ``queryAll``: run SOQL, snapshot the result in a cursor, page with locators."""

    def __init__(self, state: SalesforceState) -> None:
        self.state = state

    def _batch(self, request: Request) -> int:
        match = _BATCH.search(request.headers.get("sforce-query-options", ""))
        asked = int(match[1]) if match else 2000
        return max(1, min(asked, 2000, self.state.max_batch))

    async def start(self, request: Request) -> Response:
        query_all = request.url.path.endswith("/queryAll")
        text = request.query_params.get("q")
        if not text:
            return _error(400, "MALFORMED_QUERY", "A query string has to be specified (q=SELECT ...)")
        try:
            rows, render = self._run(text, query_all, request.path_params["version"])
        except soql.SoqlError as exc:
            return _error(400, exc.code, exc.message)
        return self._page(request, rows, render, None, 0, query_all)

    async def more(self, request: Request) -> Response:
        query_all = "/queryAll/" in request.url.path
        cursor_id, _, offset = request.path_params["locator"].rpartition("-")
        cursor = self.state.cursor(cursor_id, query_all) if offset.isdigit() else None
        if cursor is None:
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(request, cursor.rows, cursor.render, cursor_id, int(offset), query_all)

    def _run(self, text: str, query_all: bool, version: str) -> tuple[list[dict[str, Any]], Render]:
        """The rows a query selects (a snapshot: rows are replaced, never changed) and how to render one;
        rendering waits for the page that returns the row, so a large result costs per page read."""
        parsed = soql.parse(text)
        with self.state.lock:
            try:
                sobject = self.state.store.sobject(parsed.sobject)
            except RecordError:
                raise soql.SoqlError("INVALID_TYPE", f"sObject type '{parsed.sobject}' is not supported. If you "
                                                     "are attempting to use a custom object, be sure to append "
                                                     "the '__c' after the entity name.") from None
            bound = soql.bind(parsed, self.state.store.field_types(sobject))
            live = [row for row in self._candidates(sobject, bound, query_all) if query_all or not row["IsDeleted"]]
            fields = list(bound.fields)
            return soql.select(bound, live), lambda row: self.state.store.render(
                sobject, row, fields, version=version.lstrip("v"))

    def _candidates(self, sobject: SObjectType, bound: soql.Query, query_all: bool) -> Iterable[dict[str, Any]]:
        """The rows a query has to look at (``plan``): those an indexed key names, else those changed in
        its ``SystemModstamp`` range (when it is ordered: the index's own order is then moot), else all."""
        store = self.state.store
        for lookup in plan.key_lookups(bound):
            keyed = store.by_key(sobject, lookup.field, lookup.values, include_deleted=query_all)
            if keyed is not None:
                return keyed
        rows = store.rows[sobject.name]
        floor = plan.modstamp_floor(bound) if bound.order else None
        if floor is None:
            return rows.values()
        keyset = plan.keyset(bound)
        return map(rows.__getitem__, store.recency[sobject.name].since(
            floor, plan.modstamp_ceiling(bound), skip=(keyset.until_ms, keyset.key) if keyset else None))

    def _page(self, request: Request, rows: list[dict[str, Any]], render: Render, cursor_id: str | None,
              offset: int, query_all: bool) -> Response:
        end = offset + self._batch(request)
        done = end >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done}
        if done and cursor_id is not None:
            self.state.close_cursor(cursor_id)
        if not done:
            cursor_id = cursor_id or self.state.open_cursor(rows, render, query_all)
            kind = "queryAll" if query_all else "query"
            body["nextRecordsUrl"] = f"/services/data/{request.path_params['version']}/{kind}/{cursor_id}-{end}"
        body["records"] = [render(row) for row in rows[offset:end]]
        return JSONResponse(body)
