"""The Salesforce sandbox's record routes: sObject rows, upsert by external id, and sObject Collections
(create, update, upsert and delete up to 200 records per call, with ``allOrNone`` rollback).

Per-record results use ``statusCode``; whole-request errors raise ``RecordError`` and are rendered by the
guard in ``routes.py`` as ``[{"message","errorCode","fields"}]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from accord.sandboxes.salesforce.store import RecordError, SObjectType

if TYPE_CHECKING:
    from accord.sandboxes.salesforce.sandbox import SalesforceState

MAX_COLLECTION = 200
_ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because "
                "not all records were valid and the request was using AllOrNone header", "fields": []}


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise RecordError("JSON_PARSER_ERROR", f"Unexpected character in request body: {exc}") from None


Op = tuple[str | None, Callable[[], dict[str, Any]]]


class RowRoutes:
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
            {"name": t.name, "keyPrefix": t.prefix, "label": t.label or t.name, "custom": t.custom,
             "queryable": True, "createable": True, "updateable": True, "deletable": True}
            for t in self.store.types.values()]})

    def _describe(self, sobject: SObjectType) -> Response:
        with self.state.lock:
            types = self.store.field_types(sobject)
            fields = [self._describe_field(sobject, name, ftype) for name, ftype in types.items()]
        children = [{"childSObject": child.name, "field": name, "cascadeDelete": child.deletes_with(name)}
                    for child in self.store.types.values() for name, target in child.lookups.items()
                    if target == sobject.name]
        return JSONResponse({"name": sobject.name, "label": sobject.label or sobject.name, "custom": sobject.custom,
                             "keyPrefix": sobject.prefix, "fields": fields, "childRelationships": children})

    def _describe_field(self, sobject: SObjectType, name: str, ftype: str) -> dict[str, Any]:
        """One field's describe entry: type, External ID, nillable, createable/updateable, calculated (roll-up
        summaries), lookups' ``referenceTo`` (master-detail: ``cascadeDelete``) and restricted picklists'
        values (``StageName``: the org's stage table)."""
        values = (list(self.store.stages) if sobject.name == "Opportunity" and name == "StageName"
                  else self.store.picklists.get((sobject.name, name)))
        lookup = sobject.lookups.get(name)
        writable = name in sobject.fields or name == "CurrencyIsoCode"
        return {"name": name, "type": ftype, "custom": name.endswith("__c"), "externalId": name in sobject.external_ids,
                "unique": sobject.external_ids.get(name, False), "nillable": name not in sobject.required,
                "createable": writable, "updateable": writable,
                "calculated": any(r.field == name for r in sobject.rollups), "autoNumber": (
                    name == "Name" and sobject.auto_name is not None),
                "cascadeDelete": name in sobject.masters, "relationshipOrder": (
                    sobject.masters.index(name) if name in sobject.masters else None),
                "referenceTo": [lookup] if lookup else [], "restrictedPicklist": values is not None,
                "picklistValues": [{"value": v, "label": v, "active": True} for v in values or []]}

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
            raise RecordError("MISSING_ARGUMENT", "ids parameter is required: ?ids=001...,001...")
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
