"""Canonical ``task`` ↔ a QBO service Item named after its project.

QBO item names are unique in the whole company (6240 on a duplicate), at most 100 characters and
without ':' (the sub-item separator), while a canonical task belongs to one project and many projects
have a task of the same name (Harvest task assignments: "Design" on many projects). So a task's Item
is named ``"<project DisplayName> - <task name>"``:

========  =============================================================================================
task      Item (``Type: "Service"``, created with the configured income account)
========  =============================================================================================
name      ↔ Name. Written as ``"<project> - <name>"``: ':' becomes " - " before a space and "-" otherwise,
          and a name longer than 100 characters is cut, the project part first (down to 30
          characters), then the task part. Read as the part after ``"<prefix> - "`` when Name starts
          with the prefix stored in the project marker, else the whole Name (an item made or renamed
          in QuickBooks without the prefix).
project   ↔ a marker line ``project:<Customer Id> <prefix>`` in PurchaseDesc, next to the ``accord:<gid>``
          line; ``prefix`` is the project name as written into Name, so the task part still reads
          right after the project is renamed (the prefix changes on the task's next name write).
code      ↔ Sku.
========  =============================================================================================

Not held: parent, billable (QBO items have no such flag), budget_hours. Writing ``name`` or
``project`` writes both Name and the marker, so it needs the other half (from the fields, else from the
current item) and the project's DisplayName: ``lookups`` asks the writer to read the project Customer
(one GET per project and write call) and ``compose`` builds the Name. A task without a project, a
project id that is not a QBO project, or one that does not exist is a ``MappingError`` on ``project``.
The pure ``to_wire`` (no reads) refuses a name write for the same reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from accord.connectors.quickbooks.mapping_base import (
    EntitySpec,
    Found,
    Lookup,
    MappingError,
    customer_lookup,
    is_project,
    looked_up,
    marker,
    ref,
    set_plain,
    text,
    with_marker,
)

NAME_MAX = 100  # QBO's limit on Item.Name
SEP = " - "
PROJECT_KEEP = 30  # a cut project part keeps at least this many characters
PROJECT_MARKER = "project"
MISSING_PROJECT = ("QuickBooks item names are company-wide, so a task's item is named \"<project> - <task>\": "
                   "send the task's project (the project's QuickBooks Customer Id), or assign the task to a "
                   "project in the PSA")


def clean(value: str) -> str:
    """``value`` fit for an item name: no ':' (``"Phase 2: Build"`` → ``"Phase 2 - Build"``), one space."""
    return " ".join(re.sub(r":\s+", SEP, value).replace(":", "-").split())


def item_name(project: str, task: str) -> tuple[str, str]:
    """``(prefix, Name)`` of a task's item: ``Name`` is ``prefix + " - " + task``, at most 100 chars."""
    prefix, part = clean(project), clean(task)
    room = NAME_MAX - len(SEP)
    if len(prefix) + len(part) > room:
        prefix = prefix[:max(min(len(prefix), PROJECT_KEEP), room - len(part))].rstrip()
        part = part[:room - len(prefix)].rstrip()
    return prefix, f"{prefix}{SEP}{part}"


def stored_project(wire: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(project Customer Id, Name prefix)`` from the item's marker line (``None``s when absent)."""
    value = marker(wire.get("PurchaseDesc"), PROJECT_MARKER)
    if value is None:
        return None, None
    ident, _, prefix = value.partition(" ")
    return (ident if ident.isdigit() else None), text(prefix)


def task_part(wire: Mapping[str, Any]) -> str | None:
    """The task's own name: Name without the stored project prefix (the whole Name when it lacks it)."""
    name = text(wire.get("Name"))
    _, prefix = stored_project(wire)
    if name is not None and prefix is not None and name.startswith(prefix + SEP):
        return text(name[len(prefix) + len(SEP):]) or name
    return name


def _project_of(fields: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    return text(fields["project"]) if "project" in fields else stored_project(current)[0]


def _names_item(fields: Mapping[str, Any]) -> bool:
    return "name" in fields or "project" in fields


def _lookups(fields: Mapping[str, Any], current: Mapping[str, Any]) -> set[Lookup]:
    return customer_lookup(_project_of(fields, current) if _names_item(fields) else None)


def _project_name(project: str, found: Found) -> str:
    customer = looked_up(found, ("Customer", project), "project", project,
                         "the item's Name starts with the project's DisplayName")
    if customer is None:
        raise MappingError("project", project, f"Customer {project} does not exist in QuickBooks: sync the "
                                               "project before its tasks")
    name = text(customer.get("DisplayName"))
    if not is_project(customer) or name is None:
        raise MappingError("project", project, f"Customer {project} ({name}) is not a project: send the Id of "
                                               "the task's project (a sub-customer), not of its account")
    return name


def _compose(fields: Mapping[str, Any], out: dict[str, Any], current: Mapping[str, Any], found: Found) -> None:
    """Name and the project marker, from the task name, the project and the project's DisplayName."""
    if not _names_item(fields):
        return
    project = _project_of(fields, current)
    if project is None:
        raise MappingError("project", fields.get("project"), MISSING_PROJECT)
    ref("project", project)  # a native Customer Id, else the fix is the xref's
    task = text(fields["name"]) if "name" in fields else task_part(current)
    if task is None:
        raise MappingError("name", fields.get("name"), "QuickBooks requires an item Name; send a non-empty name")
    prefix, name = item_name(_project_name(project, found), task)
    out["Name"] = name
    out["PurchaseDesc"] = with_marker(current.get("PurchaseDesc"), PROJECT_MARKER, f"{project} {prefix}")


def _check_name(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    if text(value) is None:
        raise MappingError("name", value, "QuickBooks requires an item Name; send a non-empty name")


def _check_project(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    if text(value) is None:
        raise MappingError("project", value, MISSING_PROJECT)
    ref("project", value)


TASK = EntitySpec(
    canonical="task", qbo="Item", path="item", cdc="Item", name_list=True, gid_field="PurchaseDesc",
    readers={"name": task_part, "project": lambda w: stored_project(w)[0], "code": lambda w: text(w.get("Sku"))},
    writers={"name": _check_name, "project": _check_project, "code": set_plain("Sku")},  # Name: ``_compose``
    needs_current=frozenset({"name", "project"}), where="Type = 'Service'",
    accepts=lambda w: w.get("Type") == "Service",
    on_create=lambda accounts: {"Type": "Service", "IncomeAccountRef": {"value": accounts["income_account"]}},
    lookups=_lookups, compose=_compose)
