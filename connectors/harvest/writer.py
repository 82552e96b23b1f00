"""Writes to Harvest: one request per op (Harvest has no batch endpoint), ops run concurrently and
are paced by the account limiter in the session.

* Create: **look-up-before-create** (Harvest has no idempotency key) when ``WriteOp.lookup`` asks for it
  (the writers ask only for creates that may have been sent before). Time entries are looked up with
  ``external_reference_id=<gid>``; clients, contacts, projects and expenses by their ``accord:<gid>``
  marker among records updated within ``lookup_window``; users by email and task assignments by
  (project, task name), which Harvest keeps unique. A record found is PATCHed, not created again.
* Update: ``PATCH`` with only the op's fields (the gid marker is re-stamped when its field is written).
* Delete: ``DELETE`` for contacts, time entries and expenses; archive (``is_active: false``) for clients,
  projects, users and task assignments. Deleting what is already gone succeeds.
* Invoices and payments: see ``billing_writer.BillingWriter``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from accord.connectors.base import WriteOp, WriteResult, deep_merge
from accord.connectors.errors import ConnectorError, Gone, Permanent
from accord.connectors.harvest.billing_writer import BillingWriter
from accord.connectors.harvest.mapping import (
    SYSTEM,
    TASK,
    EntitySpec,
    MappingError,
    format_time,
    gid_body,
    gid_of,
    parse_time_ms,
    projection,
    to_wire,
    unref,
    with_marker,
)
from accord.connectors.harvest.session import HarvestSession

_DELETED_BY_DELETE = {"contact", "time_entry", "expense"}
_BILLING = {"invoice", "payment"}


def correlation_header(ops: Sequence[WriteOp]) -> dict[str, str]:
    ids = ",".join(dict.fromkeys(op.correlation_id for op in ops if op.correlation_id))[:512]
    return {"X-Correlation-ID": ids} if ids else {}


class HarvestWriter:
    """Turns ``WriteOp``s into Harvest requests and answers into ``WriteResult``s."""

    def __init__(self, session: HarvestSession, now: Callable[[], float]) -> None:
        self._session = session
        self._now = now
        self._billing = BillingWriter(session)

    async def write(self, spec: EntitySpec, ops: Sequence[WriteOp]) -> list[WriteResult]:
        return list(await asyncio.gather(*(self._one(spec, op) for op in ops)))

    async def _one(self, spec: EntitySpec, op: WriteOp) -> WriteResult:
        headers = correlation_header([op])
        try:
            if spec.entity in _BILLING:
                return await self._billing.write(spec, op, headers)
            if op.kind == "delete":
                return await self._delete(spec, op, headers)
            wire = deep_merge(to_wire(spec, op.fields), op.wire)
            if "expense_category" in wire:
                wire["expense_category_id"] = await self._category_id(wire.pop("expense_category"))
            if op.target_id is None:
                return await self._create(spec, op, wire, headers)
            return await self._update(spec, op, op.target_id, wire, headers, created=False)
        except ConnectorError as exc:
            return WriteResult(gid=op.gid, ok=False, target_id=op.target_id, error=exc)

    # -- results -------------------------------------------------------------------------------------

    def _ok(self, spec: EntitySpec, op: WriteOp, wire: dict[str, Any], created: bool) -> WriteResult:
        return WriteResult(gid=op.gid, ok=True, target_id=spec.record_id(wire), created=created,
                           version=parse_time_ms(wire.get("updated_at")),
                           fields=projection(spec, wire, set(op.fields)))

    def _path(self, spec: EntitySpec, target_id: str) -> str:
        return f"/v2/{spec.path}/{target_id}"

    # -- update / create -----------------------------------------------------------------------------

    async def _update(self, spec: EntitySpec, op: WriteOp, target_id: str, wire: dict[str, Any],
                      headers: dict[str, str], *, created: bool) -> WriteResult:
        if spec.entity == "task":
            return await self._update_task(op, target_id, wire, headers, created=created)
        if spec.gid_field in wire and spec.gid_field != "external_reference":
            wire[str(spec.gid_field)] = with_marker(wire[str(spec.gid_field)], op.gid)
        path = self._path(spec, target_id)
        answer = await self._session.record("PATCH", path, wire, headers) if wire else await self._session.record(
            "GET", path, None, {})
        return self._ok(spec, op, answer, created)

    async def _create(self, spec: EntitySpec, op: WriteOp, wire: dict[str, Any],
                      headers: dict[str, str]) -> WriteResult:
        if spec.entity == "task":
            return await self._create_task(op, headers)
        existing = await self._lookup(spec, op, wire) if op.lookup else None
        if existing is not None:
            return await self._update(spec, op, existing, wire, headers, created=False)
        body = {**spec.create_defaults, **wire, **gid_body(spec, op.gid, wire.get(spec.gid_field or ""))}
        missing = [name for name in spec.required if body.get(name) is None]
        if missing:
            raise Permanent(SYSTEM, f"cannot create a Harvest {spec.path[:-1]} for {op.gid}: {', '.join(missing)} "
                                    f"missing; map the canonical field that fills it", code="validation")
        return self._ok(spec, op, await self._session.record("POST", f"/v2/{spec.path}", body, headers), True)

    async def _lookup(self, spec: EntitySpec, op: WriteOp, wire: dict[str, Any]) -> str | None:
        """The id of a record an earlier attempt of this create left behind (or the natural-key match)."""
        def carries_gid(item: dict[str, Any]) -> bool:
            return gid_of(spec, item) == op.gid

        if spec.gid_field == "external_reference":
            params = {"external_reference_id": op.gid}
            return await self._first_id(spec, f"/v2/{spec.path}", spec.key, params, carries_gid)
        if spec.entity == "resource":
            email = str(wire.get("email") or "").casefold()

            def same_email(item: dict[str, Any]) -> bool:
                return bool(email) and str(item.get("email") or "").casefold() == email

            return await self._first_id(spec, "/v2/users", "users", None, same_email)
        since = format_time(self._now() - float(self._session.settings.lookup_window))
        return await self._first_id(spec, f"/v2/{spec.path}", spec.key, {"updated_since": since}, carries_gid)

    async def _first_id(self, spec: EntitySpec, path: str, key: str, params: dict[str, Any] | None,
                        matches: Callable[[dict[str, Any]], bool]) -> str | None:
        """The id of the first listed record that ``matches`` (every page is read until one does)."""
        async for body in self._session.pages(path, key, params):
            for item in body[key]:
                if matches(item):
                    return spec.record_id(item)
        return None

    async def _category_id(self, name: Any) -> int:
        async for body in self._session.pages("/v2/expense_categories", "expense_categories"):
            for item in body["expense_categories"]:
                if str(item.get("name", "")).casefold() == str(name).casefold():
                    return int(item["id"])
        raise MappingError("expense", "category", name, "no Harvest expense category has this name; create it "
                                                        "in Harvest (Manage → Expense categories) or map the name")

    # -- tasks (project task assignments) ------------------------------------------------------------

    async def _assignment(self, project_id: str, task_id: str) -> dict[str, Any] | None:
        async for body in self._session.pages(f"/v2/projects/{project_id}/task_assignments", "task_assignments"):
            for item in body["task_assignments"]:
                if str((item.get("task") or {}).get("id")) == task_id:
                    return dict(item)
        return None

    def _split(self, target_id: str) -> tuple[str, str]:
        project_id, _, task_id = target_id.partition(":")
        if not (project_id.isdigit() and task_id.isdigit()):
            raise Permanent(SYSTEM, f"task id {target_id!r} is not \"<project_id>:<task_id>\"; relink the task")
        return project_id, task_id

    async def _update_task(self, op: WriteOp, target_id: str, wire: dict[str, Any], headers: dict[str, str],
                           *, created: bool) -> WriteResult:
        project_id, task_id = self._split(target_id)
        current = await self._assignment(project_id, task_id)
        if current is None:
            raise Gone(SYSTEM, f"task {task_id} is no longer assigned to project {project_id}", code="not_found")
        name = op.fields.get("name")
        if name is not None and name != (current.get("task") or {}).get("name"):
            raise Permanent(SYSTEM, f"task {target_id}: cannot rename {current['task']['name']!r} to {name!r}: "
                                    "Harvest task names are account-wide; rename the task in Harvest",
                            code="validation")
        if wire:
            current = await self._session.record("PATCH", f"/v2/projects/{project_id}/task_assignments/{current['id']}",
                                       wire, headers)
        return self._ok(TASK, op, current, created)

    async def _create_task(self, op: WriteOp, headers: dict[str, str]) -> WriteResult:
        name = op.fields.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MappingError("task", "name", name, "a task needs a name")
        project_id = unref("task", "project", op.fields.get("project"))
        task_id = None
        async for body in self._session.pages("/v2/tasks", "tasks"):
            for item in body["tasks"]:
                if str(item.get("name", "")).casefold() == name.casefold():
                    task_id = str(item["id"])
        if task_id is None:
            task_id = str((await self._session.record("POST", "/v2/tasks", {"name": name}, headers))["id"])
        wire = to_wire(TASK, op.fields)
        if await self._assignment(project_id, task_id) is not None:
            return await self._update_task(op, f"{project_id}:{task_id}", {**wire, "is_active": True}, headers,
                                           created=False)
        answer = await self._session.record("POST", f"/v2/projects/{project_id}/task_assignments",
                                  {"task_id": int(task_id), **wire}, headers)
        return self._ok(TASK, op, answer, True)

    # -- delete ----------------------------------------------------------------------------------------

    async def _delete(self, spec: EntitySpec, op: WriteOp, headers: dict[str, str]) -> WriteResult:
        if op.target_id is None:
            return WriteResult(gid=op.gid, ok=True)  # never written: nothing to delete
        try:
            if spec.entity == "task":
                result = await self._update_task(op, op.target_id, {"is_active": False}, headers, created=False)
                return WriteResult(gid=op.gid, ok=True, target_id=op.target_id, version=result.version)
            if spec.entity in _DELETED_BY_DELETE:
                await self._session.request("DELETE", self._path(spec, op.target_id), headers=headers)
                return WriteResult(gid=op.gid, ok=True, target_id=op.target_id)
            answer = await self._session.record("PATCH", self._path(spec, op.target_id), {"is_active": False}, headers)
            return WriteResult(gid=op.gid, ok=True, target_id=op.target_id,
                               version=parse_time_ms(answer.get("updated_at")))
        except Gone:
            return WriteResult(gid=op.gid, ok=True, target_id=op.target_id)  # already gone: done
