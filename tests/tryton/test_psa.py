"""The Tryton connector against a real trytond server: employees ↔ resources, project works ↔ projects and
tasks, timesheet lines ↔ time entries."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from accord.connectors.base import SourceRecord, WriteOp
from accord.connectors.errors import Permanent, Retryable, StaleVersion
from accord.connectors.tryton.client import TrytonConnector
from accord.sandboxes.tryton.bootstrap import Rpc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # the first test may build the template
DAY = dt.date(2026, 3, 2)


async def drain(connector: TrytonConnector, entity: str, cursor: str | None) -> tuple[list[SourceRecord], str]:
    records: list[SourceRecord] = []
    while True:
        page = await connector.fetch(entity, cursor)
        records += page.records
        cursor = page.cursor
        if not page.more:
            return records, cursor


def make(rpc: Rpc, model: str, **vals: Any) -> int:
    made: int = rpc.call(f"model.{model}.create", [vals])[0]
    return made


def employee(rpc: Rpc, name: str, email: str | None = None) -> int:
    mechs = [["create", [{"type": "email", "value": email}]]] if email else []
    party = make(rpc, "party.party", name=name, contact_mechanisms=mechs)
    return make(rpc, "company.employee", party=party, company=rpc.context["company"])


def timesheet_work(rpc: Rpc, work: int) -> int:
    tworks: list[int] = rpc.call("model.project.work.read", [work], ["timesheet_works"])[0]["timesheet_works"]
    return tworks[0]


def log(rpc: Rpc, emp: int, work: int, seconds: int, text: str) -> int:
    return make(rpc, "timesheet.line", employee=emp, work=timesheet_work(rpc, work), date=DAY,
                duration=dt.timedelta(seconds=seconds), description=text)


async def test_reads_a_project_its_tasks_people_and_time_made_in_tryton(connector: TrytonConnector,
                                                                       rpc: Rpc) -> None:
    customer = make(rpc, "party.party", name="ACME Corp")
    project = make(rpc, "project.work", name="ACME Website", type="project", party=customer,
                   timesheet_available=True, effort_duration=dt.timedelta(hours=40))
    design = make(rpc, "project.work", name="Design", type="task", parent=project, timesheet_available=True,
                  effort_duration=dt.timedelta(hours=8))
    mockups = make(rpc, "project.work", name="Mock-ups", type="task", parent=design, timesheet_available=True)
    jane = employee(rpc, "Jane Consultant", "jane@acme.test")
    line = log(rpc, jane, mockups, 9000, "Wireframes")
    on_project = log(rpc, jane, project, 1200, "Kick-off")

    projects, _ = await drain(connector, "project", None)
    p, = [r for r in projects if r.id == str(project)]
    assert p.fields == {"name": "ACME Website", "code": p.fields["code"], "budget_hours": "40",
                        "account": str(customer), "status": "active"} and p.fields["code"]
    tasks = {r.id: r.fields for r in (await drain(connector, "task", None))[0]}
    assert str(project) not in tasks  # a project is not a task
    assert tasks[str(design)] | {"code": None} == {"name": "Design", "project": str(project), "parent": None,
                                                   "budget_hours": "8", "code": None}
    assert (tasks[str(mockups)]["project"], tasks[str(mockups)]["parent"]) == (str(project), str(design))
    people = {r.id: r for r in (await drain(connector, "resource", None))[0]}
    assert people[str(jane)].fields == {"name": "Jane Consultant", "email": "jane@acme.test", "active": True,
                                        "cost_rate": "0"}  # no cost price: Tryton says 0
    entries = {r.id: r.fields for r in (await drain(connector, "time_entry", None))[0]}
    assert entries[str(line)] == {"resource": str(jane), "project": str(project), "task": str(mockups),
                                  "work_date": "2026-03-02", "hours": "2.5", "notes": "Wireframes",
                                  "locked": False}
    assert (entries[str(on_project)]["project"], entries[str(on_project)]["task"],
            entries[str(on_project)]["hours"]) == (str(project), None, "0.333333")


async def test_creates_a_project_a_task_a_person_and_time_once(connector: TrytonConnector, rpc: Rpc) -> None:
    customer = make(rpc, "party.party", name="Globex")

    async def one(entity: str, gid: str, fields: dict[str, Any]) -> Any:
        result, = await connector.write(entity, [WriteOp(gid=gid, kind="upsert", key=gid, fields=fields,
                                                         lookup=False)])
        assert result.ok and result.created, result.error
        return result

    project = await one("project", "g-p", {"account": str(customer), "name": "Globex ERP", "budget_hours": "100",
                                           "status": "active"})
    task = await one("task", "g-t", {"project": project.target_id, "name": "Data migration", "budget_hours": "12.5"})
    person = await one("resource", "g-r", {"name": "Hank Scorpio", "email": "hank@globex.test", "active": True})
    entry = await one("time_entry", "g-e", {"resource": person.target_id, "project": project.target_id,
                                            "task": task.target_id, "work_date": "2026-03-03", "hours": "1.75",
                                            "notes": "Mapping the ledger"})
    assert entry.fields == {"resource": person.target_id, "project": project.target_id, "task": task.target_id,
                            "work_date": "2026-03-03", "hours": "1.75", "notes": "Mapping the ledger"}
    work, = rpc.call("model.project.work.read", [int(task.target_id)], ["parent", "type", "effort_duration"])
    assert (work["parent"], work["type"], work["effort_duration"]) == (int(project.target_id), "task",
                                                                        dt.timedelta(hours=12.5))
    row, = rpc.call("model.timesheet.line.read", [int(entry.target_id)], ["work", "duration", "description"])
    assert row["work"] == timesheet_work(rpc, int(task.target_id))  # the task's timesheet work, not its id
    assert row["duration"] == dt.timedelta(minutes=105)
    for entity, made in (("project", project), ("task", task), ("resource", person), ("time_entry", entry)):
        again, = await connector.write(entity, [WriteOp(gid=made.gid, kind="upsert", key="k2",
                                                        fields={"name": "x"} if entity != "time_entry" else {})])
        assert again.ok and again.target_id == made.target_id, (entity, again.error)  # found, not made twice
    assert len(rpc.call("model.party.party.search", [["name", "=", "x"]], 0, None, None)) == 1  # the employee's
    missing, = await connector.write("task", [WriteOp(gid="g-orphan", kind="upsert", key="k", fields={"name": "t"})])
    assert not missing.ok and isinstance(missing.error, Permanent) and "task.project missing" in str(missing.error)


async def test_updates_a_time_entry_under_the_lock_tryton_gives(connector: TrytonConnector, rpc: Rpc,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    project = make(rpc, "project.work", name="Initech", type="project", timesheet_available=True)
    emp = employee(rpc, "Peter Gibbons")
    line = log(rpc, emp, project, 3600, "TPS reports")
    op = WriteOp(gid="g-l", kind="upsert", key="k", target_id=str(line), fields={"hours": "3", "notes": "TPS"})
    updated, = await connector.write("time_entry", [op])
    assert updated.ok and updated.fields == {"hours": "3", "notes": "TPS"}, updated.error
    row, = rpc.call("model.timesheet.line.read", [line], ["duration", "description"])
    assert (row["duration"], row["description"]) == (dt.timedelta(hours=3), "TPS [accord:g-l]")
    read = connector.read

    async def read_then_someone_edits(*args: Any) -> Any:
        rows = await read(*args)
        monkeypatch.setattr(connector, "read", read)  # once
        rpc.call("model.timesheet.line.write", [line], {"duration": dt.timedelta(hours=4)})
        return rows

    monkeypatch.setattr(connector, "read", read_then_someone_edits)
    refused, = await connector.write("time_entry", [op])
    assert not refused.ok and isinstance(refused.error, Retryable) and isinstance(refused.error, StaleVersion)
    retried, = await connector.write("time_entry", [op])
    assert retried.ok and retried.fields["hours"] == "3"


async def test_incremental_reads_return_only_later_changes(connector: TrytonConnector, rpc: Rpc) -> None:
    project = make(rpc, "project.work", name="Umbrella", type="project", timesheet_available=True)
    emp = employee(rpc, "Alice Abernathy")
    old = log(rpc, emp, project, 600, "old")
    _, lines = await drain(connector, "time_entry", None)
    _, people = await drain(connector, "resource", None)
    assert (await drain(connector, "time_entry", lines))[0] == []
    new = log(rpc, emp, project, 900, "new")
    rpc.call("model.timesheet.line.write", [old], {"duration": dt.timedelta(minutes=30)})
    later, lines = await drain(connector, "time_entry", lines)
    assert sorted((r.id, r.fields["hours"]) for r in later) == [(str(old), "0.5"), (str(new), "0.25")]
    assert (await drain(connector, "time_entry", lines))[0] == []
    party = rpc.call("model.company.employee.read", [emp], ["party"])[0]["party"]
    rpc.call("model.party.party.write", [party], {"name": "Alice (renamed)"})  # the employee's stamp stays
    renamed, people = await drain(connector, "resource", people)
    assert [(r.id, r.fields["name"]) for r in renamed] == [(str(emp), "Alice (renamed)")]
    assert (await drain(connector, "resource", people))[0] == []


async def test_a_deleted_timesheet_line_is_found_by_the_id_scan(connector: TrytonConnector, rpc: Rpc) -> None:
    project = make(rpc, "project.work", name="Short", type="project", timesheet_available=True)
    line = log(rpc, employee(rpc, "Temp Worker"), project, 60, "one minute")
    assert str(line) in await connector.scan_ids("time_entry")
    assert str(project) in await connector.scan_ids("project") and str(project) not in await connector.scan_ids("task")
    rpc.call("model.timesheet.line.delete", [line])
    assert str(line) not in await connector.scan_ids("time_entry")
