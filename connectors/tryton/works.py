"""How the ``TrytonConnector`` reads and writes projects and tasks (``project.work`` of type project or
task) and time entries (``timesheet.line``); the mapping itself is in ``psa``.

A work row is expanded with its status name and, for a task, the nearest ancestor of type project and
the parent task (the ancestors are on its ``path``: one read for their types). A timesheet line points
at a ``timesheet.work`` whose ``origin`` is the ``project.work`` (``reference/tryton.md`` §3.6): a page
of lines costs one read of those timesheet works and one of their project works' tree. Works Accord
creates are available on timesheets (Tryton makes their ``timesheet.work``), and a time entry is
written on the timesheet work of its task, else of its project.

What survives a crash: only what Tryton committed. A work carries its gid on a comment line and a
timesheet line at the end of its description, so a create repeated after a crash finds the record the
first attempt made (the connector's look-up-before-create) instead of making a second one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accord.connectors.base import SourceRecord, WriteOp
from accord.connectors.errors import Permanent
from accord.connectors.tryton import psa
from accord.connectors.tryton.entities import EntityIO, gids_in, locked_write, read_by_id
from accord.connectors.tryton.session import TrytonSession

TREE_FIELDS = ("type", "parent", "path")


async def annotate_tree(session: TrytonSession, works: dict[int, dict[str, Any]]) -> None:
    """Set ``accord_project`` (the work itself when a project, else its nearest project ancestor) and
    ``accord_parent_task`` (its parent when a task) on each of ``works`` (rows with ``TREE_FIELDS``)."""
    def chain(work: dict[str, Any]) -> list[int]:  # self first, then ancestors nearest first
        path = [int(i) for i in str(work.get("path") or "").split("/") if i.isdigit()]
        return list(reversed(path)) or [int(work["id"])]

    missing = {i for w in works.values() for i in chain(w) if i not in works}
    known = {**works, **await read_by_id(session, psa.WORK, list(missing), ["type"])}
    for work in works.values():
        types = [(i, (known.get(i) or {}).get("type")) for i in chain(work)]
        work["accord_project"] = next((i for i, kind in types if kind == "project"), None)
        parent = work.get("parent")
        work["accord_parent_task"] = parent if parent and (known.get(parent) or {}).get("type") == "task" else None


class WorkIO(EntityIO):
    """``project`` or ``task`` ← ``project.work`` of that type."""

    model = psa.WORK
    fields = psa.WORK_FIELDS

    def __init__(self, entity: str, session: TrytonSession) -> None:
        super().__init__(entity, session)
        self._statuses: dict[int, str] | None = None

    def domain(self) -> list[Any]:
        return [["type", "=", self.entity]]

    async def statuses(self) -> dict[int, str]:
        """Work status id → name (read once per connector; statuses are configuration)."""
        if self._statuses is None:
            rows = await self.session.call("model.project.work.status.search_read", [], 0, None, None, ["name"],
                                           context={"active_test": False, "language": "en"})
            self._statuses = {int(r["id"]): str(r["name"]) for r in rows}
        return self._statuses

    async def status_ids(self) -> dict[str, int]:
        by_name = {name: i for i, name in (await self.statuses()).items()}
        return {canonical: by_name[name] for name, canonical in psa.STATUSES.items() if name in by_name}

    async def expand(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        statuses = await self.statuses()
        for row in rows:
            row["accord_status"] = statuses.get(int(row.get("status") or 0))
        if self.entity == "task":
            await annotate_tree(self.session, {int(r["id"]): r for r in rows})
        return rows

    def to_canonical(self, row: dict[str, Any]) -> SourceRecord:
        version = psa.version_of(row)
        return SourceRecord(id=str(row["id"]), version=version, fields=psa.work_fields(self.entity, row),
                            gid=psa.comment_gid(row.get("comment")), modified_ms=version // 1000)

    def gid_domain(self, gids: Sequence[str]) -> list[Any]:
        return [gids_in("comment", [f"accord:{gid}" for gid in gids])]

    async def create(self, op: WriteOp) -> int:
        vals = psa.work_values(self.entity, op.fields, await self.status_ids())
        missing = [] if vals.get("name") else ["name"]
        if self.entity == "task" and not vals.get("parent"):
            missing.append("project")
        if missing:
            raise Permanent(psa.SYSTEM, f"cannot create a Tryton {self.entity} for {op.gid}: {self.entity}."
                                        f"{', '.join(missing)} missing", code="validation")
        return await self._create_one({**vals, "type": self.entity, "timesheet_available": True,
                                       "comment": psa.with_comment_gid(None, op.gid), **op.wire})

    async def update(self, op: WriteOp, current: dict[str, Any]) -> None:
        vals = {**psa.work_values(self.entity, op.fields, await self.status_ids()), **op.wire}
        await locked_write(self.session, self.model, int(current["id"]), current["_timestamp"], vals)


class LineIO(EntityIO):
    """``time_entry`` ← ``timesheet.line``."""

    model = psa.LINE
    fields = psa.LINE_FIELDS

    async def expand(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Line rows with the project work they are logged on (two calls a page)."""
        tworks = await read_by_id(self.session, psa.TIMESHEET_WORK, [int(r["work"]) for r in rows], ["origin"])
        origin = {tid: _work_id(t.get("origin")) for tid, t in tworks.items()}
        works = await read_by_id(self.session, psa.WORK, [w for w in origin.values() if w], TREE_FIELDS)
        await annotate_tree(self.session, works)
        for row in rows:
            work = works.get(origin.get(int(row["work"])) or 0) or {}
            row["accord_project"] = work.get("accord_project")
            row["accord_task"] = work.get("id") if work.get("type") == "task" else None
        return rows

    def to_canonical(self, row: dict[str, Any]) -> SourceRecord:
        version = psa.version_of(row)
        return SourceRecord(id=str(row["id"]), version=version, fields=psa.line_fields(row),
                            gid=psa.description_gid(row.get("description")), modified_ms=version // 1000)

    def gid_domain(self, gids: Sequence[str]) -> list[Any]:
        return [gids_in("description", [f"[accord:{gid}]" for gid in gids])]

    async def timesheet_work(self, work_id: int) -> int:
        """The ``timesheet.work`` of ``project.work`` ``work_id`` (refused when not on timesheets)."""
        found = await read_by_id(self.session, psa.WORK, [work_id], ["timesheet_works"])
        tworks = (found.get(work_id) or {}).get("timesheet_works") or []
        if not tworks:
            raise Permanent(psa.SYSTEM, f"project work {work_id} is not available on timesheets in Tryton: tick "
                                        "\"Available on timesheets\" on it to log time there", code="no_timesheet")
        return int(tworks[0])

    async def create(self, op: WriteOp) -> int:
        vals = psa.line_values(op.fields)
        work = psa.work_of_entry(op.fields)
        missing = [n for n, v in (("resource", vals.get("employee")), ("work_date", vals.get("date")),
                                  ("hours", vals.get("duration")), ("task or project", work)) if v is None]
        if missing:
            raise Permanent(psa.SYSTEM, f"cannot create a Tryton timesheet line for {op.gid}: time_entry."
                                        f"{', '.join(missing)} missing", code="validation")
        assert work is not None
        return await self._create_one({**vals, "work": await self.timesheet_work(work),
                                       "description": psa.with_description_gid(op.fields.get("notes"), op.gid),
                                       **op.wire})

    async def update(self, op: WriteOp, current: dict[str, Any]) -> None:
        vals = psa.line_values(op.fields)
        work = psa.work_of_entry(op.fields)
        if work is not None and work != (current.get("accord_task") or current.get("accord_project")):
            vals["work"] = await self.timesheet_work(work)
        if "notes" in op.fields:
            gid = psa.description_gid(current.get("description")) or op.gid
            vals["description"] = psa.with_description_gid(op.fields["notes"], gid)
        await locked_write(self.session, self.model, int(current["id"]), current["_timestamp"],
                           {**vals, **op.wire})


def _work_id(origin: Any) -> int | None:
    model, _, rid = str(origin or "").partition(",")
    return int(rid) if model == psa.WORK and rid.isdigit() else None
