"""The Salesforce sandbox's HTTP surface: OAuth token, versions, limits, query/queryAll, sObject rows,
upsert by external id and sObject Collections, answered in Salesforce's own shapes.

Every ``/services/data/vNN.N/...`` call is checked in Salesforce's order: a version below 46.0 → 404
``NOT_FOUND``; a missing or expired session → 401 ``INVALID_SESSION_ID``; the daily limit used up → 403
``REQUEST_LIMIT_EXCEEDED``. Every response carries ``Sforce-Limit-Info: api-usage=n/N``. Top-level errors
are arrays of ``{"message","errorCode","fields"}``; per-record results use ``statusCode``.
Fault endpoint names: ``token``, ``query``, ``sobject``, ``composite``, ``limits``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.connectors.salesforce import soql
from accord.connectors.salesforce.store import RecordError, SObjectType
from accord.connectors.sandbox import Fault, Handler, sandboxed

if TYPE_CHECKING:
    from accord.connectors.salesforce.sandbox import SalesforceState

_VERSION = re.compile(r"^v(\d+)\.(\d+)$")
_BATCH = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)
_ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because "
                "not all records were valid and the request was using AllOrNone header", "fields": []}
MAX_COLLECTION = 200


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


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise RecordError("JSON_PARSER_ERROR", f"Unexpected character in request body: {exc}") from None


def api_routes(state: SalesforceState) -> list[Route]:
    """Every simulated Salesforce route, wrapped with fault injection, logging and the limit header."""

    def limit_header(response: Response) -> Response:
        used, limit = state.usage()
        response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{limit}"
        return response

    def on_fault(fault: Fault) -> Response:
        if fault.kind == "429":  # Salesforce rarely answers 429: its quota refusal is a 403
            return limit_header(_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
        status = 500 if fault.kind == "500" else 503
        return limit_header(_error(status, "SERVER_UNAVAILABLE", "Server temporarily unavailable"))

    def guarded(handler: Handler) -> Handler:
        async def check(request: Request) -> Response:
            match = _VERSION.match(request.path_params.get("version", ""))
            if match is None or float(f"{match[1]}.{match[2]}") < 46.0:
                return _error(404, "NOT_FOUND", "The requested resource does not exist")
            auth = request.headers.get("authorization", "")
            if not auth.lower().startswith("bearer ") or not state.token_valid(auth[7:].strip()):
                return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if not state.count_call():
                return _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            try:
                return await handler(request)
            except RecordError as exc:
                return _record_error(exc)
        return check

    def route(path: str, endpoint: str, handler: Handler, methods: list[str], *, api: bool = True) -> Route:
        inner = guarded(handler) if api else handler

        async def with_header(request: Request) -> Response:
            return limit_header(await inner(request))

        return Route(path, sandboxed(state, endpoint, with_header, on_fault), methods=methods, name=endpoint)

    query = _QueryRoutes(state)
    rows = _RowRoutes(state)
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
            rows = self._run(text, query_all, request.path_params["version"])
        except soql.SoqlError as exc:
            return _error(400, exc.code, exc.message)
        return self._page(request, rows, None, 0, query_all)

    async def more(self, request: Request) -> Response:
        query_all = "/queryAll/" in request.url.path
        cursor_id, _, offset = request.path_params["locator"].rpartition("-")
        cursor = self.state.cursor(cursor_id, query_all) if offset.isdigit() else None
        if cursor is None:
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(request, cursor.rows, cursor_id, int(offset), query_all)

    def _run(self, text: str, query_all: bool, version: str) -> list[dict[str, Any]]:
        parsed = soql.parse(text)
        with self.state.lock:
            try:
                sobject = self.state.store.sobject(parsed.sobject)
            except RecordError:
                raise soql.SoqlError("INVALID_TYPE", f"sObject type '{parsed.sobject}' is not supported. If you "
                                                     "are attempting to use a custom object, be sure to append "
                                                     "the '__c' after the entity name.") from None
            bound = soql.bind(parsed, self.state.store.field_types(sobject))
            live = [row for row in self.state.store.rows[sobject.name].values() if query_all or not row["IsDeleted"]]
            return soql.run(bound, live, lambda row: self.state.store.render(
                sobject, row, list(bound.fields), version=version.lstrip("v")))

    def _page(self, request: Request, rows: list[dict[str, Any]], cursor_id: str | None, offset: int,
              query_all: bool) -> Response:
        end = offset + self._batch(request)
        done = end >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done}
        if done and cursor_id is not None:
            self.state.close_cursor(cursor_id)
        if not done:
            cursor_id = cursor_id or self.state.open_cursor(rows, query_all)
            kind = "queryAll" if query_all else "query"
            body["nextRecordsUrl"] = f"/services/data/{request.path_params['version']}/{kind}/{cursor_id}-{end}"
        body["records"] = rows[offset:end]
        return JSONResponse(body)


Op = tuple[str | None, Callable[[], dict[str, Any]]]


class _RowRoutes:
    """Single-record sObject routes, upsert by external id, and sObject Collections."""

    def __init__(self, state: SalesforceState) -> None:
        self.state = state
        self.store = state.store

    def _version(self, request: Request) -> str:
        return str(request.path_params["version"]).lstrip("v")

    def _ext_field(self, sobject: SObjectType, name: str) -> str:
        for declared in sobject.external_ids:
            if declared.casefold() == name.casefold():
                return declared
        raise RecordError("NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}",
                          http=404)

    async def describe_global(self, _: Request) -> Response:
        return JSONResponse({"encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION, "sobjects": [
            {"name": t.name, "keyPrefix": t.prefix, "label": t.name, "queryable": True, "createable": True,
             "updateable": True, "deletable": True} for t in self.store.types.values()]})

    def _describe(self, sobject: SObjectType) -> Response:
        types = self.store.field_types(sobject)
        return JSONResponse({"name": sobject.name, "keyPrefix": sobject.prefix, "fields": [
            {"name": name, "type": ftype, "externalId": name in sobject.external_ids,
             "unique": sobject.external_ids.get(name, False), "nillable": name not in sobject.required,
             "updateable": name in sobject.fields or name == "CurrencyIsoCode"} for name, ftype in types.items()]})

    async def create(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["obj"])
        body = await _json_body(request)
        with self.state.lock, self.store.transaction():
            rid = self.store.insert(sobject, body if isinstance(body, dict) else {})
        return JSONResponse({"id": rid, "success": True, "errors": []}, status_code=201)

    async def row(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["obj"])
        rid = request.path_params["rid"]
        if rid == "describe" and request.method == "GET":
            return self._describe(sobject)
        if request.method == "GET":
            fields = request.query_params.get("fields")
            with self.state.lock:
                row = self.store.find(sobject, rid)
                names = [f.strip() for f in fields.split(",")] if fields else None
                return JSONResponse(self.store.render(sobject, row, names, version=self._version(request)))
        body = await _json_body(request) if request.method == "PATCH" else None
        with self.state.lock, self.store.transaction():
            if request.method == "DELETE":
                self.store.delete(sobject, rid)
            else:
                self.store.update(sobject, rid, body if isinstance(body, dict) else {})
        return Response(status_code=204)

    async def external(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["obj"])
        field = self._ext_field(sobject, request.path_params["field"])
        value = request.path_params["value"]
        version = self._version(request)
        with self.state.lock:
            found = self.store.by_external_id(sobject, field, value)
            if len(found) > 1:
                return JSONResponse([f"/services/data/v{version}/sobjects/{sobject.name}/{r['Id']}" for r in found],
                                    status_code=300)
            if request.method == "GET":
                if not found:
                    raise RecordError("NOT_FOUND", "The requested resource does not exist", http=404)
                return JSONResponse(self.store.render(sobject, found[0], version=version))
        if not found and request.query_params.get("updateOnly") == "true":
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http=404)
        body = await _json_body(request)
        with self.state.lock, self.store.transaction():
            result = self._upsert(sobject, field, value, body if isinstance(body, dict) else {})
        return JSONResponse(result, status_code=201 if result["created"] else 200)

    def _upsert(self, sobject: SObjectType, field: str, value: Any, body: dict[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in body.items() if k.casefold() != field.casefold()}
        found = self.store.by_external_id(sobject, field, value)
        if len(found) > 1:
            raise RecordError("DUPLICATE_EXTERNAL_ID", f"{field}: more than one record found for external id "
                                                       f"field: {[r['Id'] for r in found]}", [field])
        if found:
            return {"id": self.store.update(sobject, found[0]["Id"], values), "success": True, "errors": [],
                    "created": False}
        return {"id": self.store.insert(sobject, {**values, field: value}), "success": True, "errors": [],
                "created": True}

    # -- sObject Collections -------------------------------------------------------------------

    def _apply(self, ops: list[Op], all_or_none: bool) -> Response:
        """Run ``ops`` in one transaction; each failure is that record's result; allOrNone rolls back."""
        results: list[dict[str, Any]] = []
        with self.state.lock, self.store.transaction():
            for ident, op in ops:
                try:
                    results.append(op())
                except RecordError as exc:
                    results.append({**({"id": ident} if ident else {}), "success": False,
                                    "errors": [exc.record_json()]})
            if all_or_none and not all(r["success"] for r in results):
                self.store.rollback()
                results = [r if not r["success"] else {**({"id": ident} if ident else {}), "success": False,
                                                       "errors": [_ROLLED_BACK]}
                           for r, (ident, _) in zip(results, ops, strict=True)]
        return JSONResponse(results)

    async def _records(self, request: Request) -> tuple[list[dict[str, Any]], bool]:
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise RecordError("JSON_PARSER_ERROR", "Expected a body {\"allOrNone\": bool, \"records\": [...]}")
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            raise RecordError("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records "
                                                   "into this call")
        return [r if isinstance(r, dict) else {} for r in records], bool(body.get("allOrNone", False))

    def _typed(self, record: dict[str, Any]) -> SObjectType:
        kind = (record.get("attributes") or {}).get("type")
        if not kind:
            raise RecordError("INVALID_TYPE", "Must specify a type in the attributes of every record")
        return self.store.sobject(kind)

    async def collection(self, request: Request) -> Response:
        if request.method == "DELETE":
            return self._delete_many(request)
        records, all_or_none = await self._records(request)
        ops: list[Op] = []
        for record in records:
            rid = str(record.get("id") or record.get("Id") or "")
            if request.method == "POST":
                ops.append((None, partial(self._create_one, record)))
            else:
                ops.append((rid or None, partial(self._update_one, record, rid)))
        return self._apply(ops, all_or_none)

    def _create_one(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.store.insert(self._typed(record), record), "success": True, "errors": []}

    def _update_one(self, record: dict[str, Any], rid: str) -> dict[str, Any]:
        values = {k: v for k, v in record.items() if k not in ("id", "Id")}
        return {"id": self.store.update(self._typed(record), rid, values), "success": True, "errors": []}

    def _delete_one(self, rid: str) -> dict[str, Any]:
        return {"id": self.store.delete(self._by_prefix(rid), rid), "success": True, "errors": []}

    def _delete_many(self, request: Request) -> Response:
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not ids:
            return _error(400, "MISSING_ARGUMENT", "ids parameter is required: ?ids=001...,001...")
        if len(ids) > MAX_COLLECTION:
            raise RecordError("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records "
                                                   "into this call")
        ops: list[Op] = [(rid, partial(self._delete_one, rid)) for rid in ids]
        return self._apply(ops, request.query_params.get("allOrNone") == "true")

    def _by_prefix(self, rid: str) -> SObjectType:
        for sobject in self.store.types.values():
            if rid.startswith(sobject.prefix):
                return sobject
        raise RecordError("MALFORMED_ID", f"malformed id {rid}", ["Id"])

    async def collection_upsert(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["obj"])
        field = self._ext_field(sobject, request.path_params["field"])
        records, all_or_none = await self._records(request)
        seen: set[str] = set()

        def upsert(record: dict[str, Any]) -> dict[str, Any]:
            if self._typed(record).name != sobject.name:
                raise RecordError("INVALID_TYPE", f"every record must be of type {sobject.name}")
            value = next((v for k, v in record.items() if k.casefold() == field.casefold()), None)
            if value in (None, ""):
                raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field}]", [field])
            if str(value).casefold() in seen:
                raise RecordError("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [field])
            seen.add(str(value).casefold())
            return self._upsert(sobject, field, value, record)

        return self._apply([(None, partial(upsert, record)) for record in records], all_or_none)

    async def collection_get(self, request: Request) -> Response:
        sobject = self.store.sobject(request.path_params["obj"])
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        fields = [f for f in request.query_params.get("fields", "").split(",") if f] or None
        out: list[dict[str, Any] | None] = []
        with self.state.lock:
            for rid in ids[:MAX_COLLECTION]:
                try:
                    out.append(self.store.render(sobject, self.store.find(sobject, rid), fields,
                                                 version=self._version(request)))
                except RecordError:
                    out.append(None)
        return JSONResponse(out)
