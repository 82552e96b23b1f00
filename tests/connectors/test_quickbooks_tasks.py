"""Canonical tasks as QuickBooks service items named "<project> - <task>": many projects may each have
a task "Design" although item names are company-wide. Real HTTP to the sandbox, in-process."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest

from accord.connectors.base import Page, SourceRecord
from accord.connectors.errors import Permanent, Retryable
from accord.connectors.quickbooks.client import QuickBooksConnector
from accord.connectors.quickbooks.mapping import MappingError, to_canonical, to_wire
from accord.connectors.quickbooks.mapping_task import NAME_MAX, item_name
from accord.sandboxes.quickbooks.sandbox import QuickBooksState
from tests.connectors.qbo_rig import op, write1


async def tasks(connector: QuickBooksConnector) -> dict[str, SourceRecord]:
    pages: list[Page] = [await connector.fetch("task", None)]
    while pages[-1].more:
        pages.append(await connector.fetch("task", pages[-1].cursor))
    return {r.id: r for p in pages for r in p.records}


@pytest.fixture
def projects(qbo_state: QuickBooksState) -> dict[str, str]:
    account = qbo_state.user_create("Customer", {"DisplayName": "Northwind"})
    return {"account": account, "erp": qbo_state.user_create_project(account, "Northwind ERP rollout"),
            "crm": qbo_state.user_create_project(account, "Northwind CRM")}


def item(qbo_state: QuickBooksState, item_id: str | None) -> dict[str, Any]:
    found = qbo_state.get("Item", str(item_id))
    assert found is not None
    return found


# ------------------------------------------------------------------------------------------------
# one task name, many projects
# ------------------------------------------------------------------------------------------------

async def test_same_task_on_two_projects_makes_two_items(qbo_state, qbo, projects) -> None:
    results = await qbo.write("task", [
        op("t-erp-design", {"name": "Design", "project": projects["erp"], "code": "DES"}),
        op("t-crm-design", {"name": "Design", "project": projects["crm"]}),
        op("t-erp-build", {"name": "Build", "project": projects["erp"]})])
    assert [r.ok for r in results] == [True, True, True], [r.error for r in results]
    assert qbo_state.requests.count("customer") == 2  # one GET per project, cached for the write call
    erp, crm, build = (item(qbo_state, r.target_id) for r in results)
    assert (erp["Name"], crm["Name"], build["Name"]) == (
        "Northwind ERP rollout - Design", "Northwind CRM - Design", "Northwind ERP rollout - Build")
    assert erp["PurchaseDesc"] == f"project:{projects['erp']} Northwind ERP rollout\naccord:t-erp-design"
    assert results[0].fields == {"name": "Design", "project": projects["erp"], "code": "DES"}
    assert results[1].fields == {"name": "Design", "project": projects["crm"]}

    read = await tasks(qbo)
    assert {i: (read[i].gid, read[i].fields) for i in (erp["Id"], crm["Id"])} == {
        erp["Id"]: ("t-erp-design", {"name": "Design", "project": projects["erp"], "code": "DES"}),
        crm["Id"]: ("t-crm-design", {"name": "Design", "project": projects["crm"], "code": None})}
    assert read["1"].fields == {"name": "Services", "project": None, "code": None}  # QBO's own item


async def test_task_rename_keeps_the_prefix_and_the_markers(qbo_state, qbo, projects) -> None:
    created = await write1(qbo, "task", op("t-1", {"name": "Design", "project": projects["erp"]}))
    renamed = await write1(qbo, "task", op("t-1", {"name": "Solution design"}, target=created.target_id,
                                   version=created.version))
    assert renamed.ok and renamed.fields == {"name": "Solution design"}
    wire = item(qbo_state, created.target_id)
    assert (wire["Name"], wire["SyncToken"]) == ("Northwind ERP rollout - Solution design", "1")
    assert wire["PurchaseDesc"] == f"project:{projects['erp']} Northwind ERP rollout\naccord:t-1"

    # the project is renamed in QuickBooks: the item keeps its old prefix, which still reads right ...
    qbo_state.user_update("Customer", projects["erp"], {"DisplayName": "Northwind ERP phase 2"})
    assert (await tasks(qbo))[created.target_id].fields["name"] == "Solution design"
    # ... until the task's name is next written, which takes the project's new name
    again = await write1(qbo, "task", op("t-1", {"name": "Design"}, target=created.target_id, version=renamed.version))
    assert again.ok and item(qbo_state, created.target_id)["Name"] == "Northwind ERP phase 2 - Design"

    moved = await write1(qbo, "task", op("t-1", {"project": projects["crm"]}, target=created.target_id,
                                 version=again.version))
    assert moved.ok and moved.fields == {"project": projects["crm"]}
    wire = item(qbo_state, created.target_id)
    assert (wire["Name"], wire["PurchaseDesc"]) == (
        "Northwind CRM - Design", f"project:{projects['crm']} Northwind CRM\naccord:t-1")

    coded = await write1(qbo, "task", op("t-1", {"code": "D-2"}, target=created.target_id, version=moved.version))
    assert coded.ok and item(qbo_state, created.target_id)["Name"] == "Northwind CRM - Design"
    assert qbo_state.requests.count("customer") == 4  # one per name/project write; a Sku-only write reads none


async def test_stale_rename_is_retried_reading_the_project_once(qbo_state, qbo, projects) -> None:
    created = await write1(qbo, "task", op("t-1", {"name": "Design", "project": projects["erp"]}))
    qbo_state.user_update("Item", created.target_id, {"Sku": "DES"})  # edited in QuickBooks meanwhile
    reads, batches = qbo_state.requests.count("customer"), qbo_state.requests.count("batch")
    renamed = await write1(qbo, "task", op("t-1", {"name": "Build"}, target=created.target_id, version=created.version))
    assert renamed.ok and renamed.version == 2, renamed.error
    wire = item(qbo_state, created.target_id)
    assert (wire["Name"], wire["Sku"]) == ("Northwind ERP rollout - Build", "DES")
    assert qbo_state.requests.count("batch") == batches + 2  # 5010, then the retry with the fresh SyncToken
    assert qbo_state.requests.count("customer") == reads + 1  # the project read once for both


async def test_item_renamed_in_quickbooks_reads_its_whole_name(qbo_state, qbo, projects) -> None:
    created = await write1(qbo, "task", op("t-1", {"name": "Design", "project": projects["erp"]}))
    qbo_state.user_update("Item", created.target_id, {"Name": "UX design"})
    record = (await tasks(qbo))[created.target_id]
    assert record.fields == {"name": "UX design", "project": projects["erp"], "code": None}


async def test_retried_task_create_does_not_duplicate(qbo_state, qbo, projects) -> None:
    ops = [op("t-9", {"name": "Design", "project": projects["erp"]}, key="change-17")]
    qbo_state.faults.add("batch", "drop")  # the item is created, then the answer is lost
    since_ms = int(qbo_state.clock.now() * 1000)
    with pytest.raises(Retryable):
        await qbo.write("task", ops)
    [result] = await qbo.write("task", ops)  # the same batch again: the same requestid, replayed
    assert result.ok and result.created
    assert [i["Id"] for i in qbo_state.records("Item") if i["Name"].endswith(" - Design")] == [result.target_id]
    first, second = qbo_state.requests.entries("batch")
    assert parse_qs(first.query)["requestid"] == parse_qs(second.query)["requestid"]

    # a create re-sent under another key collides on the name; the daemon finds the first one by its gid
    other = await write1(qbo, "task", op("t-9", {"name": "Design", "project": projects["erp"]}, key="change-18"))
    assert isinstance(other.error, Permanent) and other.error.code == "6240"
    found = await qbo.find_created("task", ["t-9"], since_ms)
    assert found["t-9"].id == result.target_id
    assert found["t-9"].fields == {"name": "Design", "project": projects["erp"], "code": None}
    assert len(qbo_state.records("Item")) == 2  # "Services" and the task's item


# ------------------------------------------------------------------------------------------------
# a task needs its project
# ------------------------------------------------------------------------------------------------

async def test_task_without_a_project_is_a_clear_mapping_error(qbo_state, qbo, projects) -> None:
    orphan = await write1(qbo, "task", op("t-1", {"name": "Design"}))
    assert isinstance(orphan.error, MappingError) and orphan.error.field == "project"
    assert "send the task's project" in orphan.error.message
    account = await write1(qbo, "task", op("t-2", {"name": "Design", "project": projects["account"]}))
    assert isinstance(account.error, MappingError) and "is not a project" in account.error.message
    missing = await write1(qbo, "task", op("t-3", {"name": "Design", "project": "404"}))
    assert isinstance(missing.error, MappingError) and "does not exist" in missing.error.message
    global_id = await write1(qbo, "task", op("t-4", {"name": "Design", "project": "gid-proj-1"}))
    assert isinstance(global_id.error, MappingError) and "numeric Id" in global_id.error.message
    assert qbo_state.requests.count("batch") == 0 and len(qbo_state.records("Item")) == 1

    # an item made in QuickBooks carries no project: naming it through Accord needs one
    legacy = qbo_state.user_create("Item", {"Name": "Advisory", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    rename = await write1(qbo, "task", op("t-5", {"name": "Strategy"}, target=legacy))
    assert isinstance(rename.error, MappingError) and rename.error.field == "project"
    adopted = await write1(qbo, "task", op("t-5", {"project": projects["crm"]}, target=legacy))
    assert adopted.ok and item(qbo_state, legacy)["Name"] == "Northwind CRM - Advisory"


def test_item_names_fit_quickbooks_rules() -> None:
    assert item_name("Acme: Phase 2", "Design:Build") == ("Acme - Phase 2", "Acme - Phase 2 - Design-Build")
    prefix, name = item_name("P" * 120, "Design")
    assert len(name) == NAME_MAX and name == f"{'P' * 91} - Design" and prefix == "P" * 91
    prefix, name = item_name("Project " * 10, "Task " * 30)
    assert len(name) <= NAME_MAX and prefix == "Project Project Project Projec" and ":" not in name
    with pytest.raises(MappingError) as caught:
        to_wire("task", {"name": "Design", "project": "7"})  # no project read: the connector does it
    assert caught.value.field == "project" and "GET /customer" in caught.value.message
    wire = {"Id": "9", "SyncToken": "0", "Type": "Service", "Name": "Acme - Phase 2 - Design-Build",
            "PurchaseDesc": "project:7 Acme - Phase 2\naccord:g-1"}
    record = to_canonical("task", wire)
    assert (record.gid, record.fields) == ("g-1", {"name": "Design-Build", "project": "7", "code": None})


def test_sandbox_refuses_colons_and_long_item_names(qbo_state) -> None:
    body = {"Type": "Service", "IncomeAccountRef": {"value": "1"}}
    with pytest.raises(Exception, match="sub-item"):
        qbo_state.user_create("Item", {**body, "Name": "Acme:Design"})
    with pytest.raises(Exception, match="at most 100"):
        qbo_state.user_create("Item", {**body, "Name": "x" * 101})
    assert qbo_state.user_create("Item", {**body, "Name": "x" * 100})
