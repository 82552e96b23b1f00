"""Before Harvest imports an ERP invoice's period, check that the import bills exactly that invoice.

The Harvest API marks time and expenses billed only by importing *all* of a project's unbilled, approved,
billable items of a date range into a new invoice. When the ERP invoice lists its lines' time entries and
expenses (``lines[].time_entry`` / ``lines[].expense``, as Harvest ids here), the writer lists what the
import would take and refuses (``Permanent``, so the exception desk shows it) when the two differ:
importing would bill work the ERP has not billed, or leave billed work unbilled in the PSA.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accord.connectors.errors import Permanent
from accord.connectors.harvest.convert import SYSTEM
from accord.connectors.harvest.session import HarvestSession

RESOURCES = (("time_entry", "time_entries"), ("expense", "expenses"))


def billed_by_lines(lines: Any) -> dict[str, set[str]] | None:
    """The Harvest ids of the time entries and expenses an invoice's lines bill (``None``: the lines do
    not say, so nothing can be checked)."""
    if not isinstance(lines, list) or not lines:
        return None
    out: dict[str, set[str]] = {"time_entry": set(), "expense": set()}
    linked = False
    for line in lines:
        if not isinstance(line, Mapping):
            continue
        for key in out:
            if line.get(key):
                out[key].add(str(line[key]))
                linked = True
    return out if linked else None


async def import_candidates(session: HarvestSession, body: Mapping[str, Any]) -> dict[str, set[str]]:
    """What ``line_items_import`` of ``body`` would bill: the project's unbilled, approved, billable items
    of the period."""
    spec = body["line_items_import"]
    params: dict[str, Any] = {"project_id": spec["project_ids"][0], "is_billed": "false"}
    params.update({k: v for k, v in spec.get("time", {}).items() if k in ("from", "to")})
    out: dict[str, set[str]] = {}
    for entity, resource in RESOURCES:
        found: set[str] = set()
        async for page in session.pages(f"/v2/{resource}", resource, params):
            found |= {str(item["id"]) for item in page[resource]
                      if item.get("billable") and item.get("is_closed") and not item.get("is_billed")}
        out[entity] = found
    return out


def check_exact(number: Any, billed: dict[str, set[str]], candidates: dict[str, set[str]],
                body: Mapping[str, Any]) -> None:
    """Raise ``Permanent`` naming the items when the import would not bill exactly ``billed``."""
    extra = {e: sorted(candidates[e] - billed[e]) for e, _ in RESOURCES if candidates[e] - billed[e]}
    missing = {e: sorted(billed[e] - candidates[e]) for e, _ in RESOURCES if billed[e] - candidates[e]}
    if not extra and not missing:
        return
    span = body["line_items_import"].get("time", {})
    where = f"project {body['line_items_import']['project_ids'][0]} from {span.get('from', 'the start')} to " \
            f"{span.get('to', 'now')}"
    parts = [f"would also bill {e} {', '.join(ids)} (approved in Harvest, not on the ERP invoice)"
             for e, ids in extra.items()]
    parts += [f"cannot bill {e} {', '.join(ids)} (on the ERP invoice, not unbilled and approved in Harvest)"
              for e, ids in missing.items()]
    raise Permanent(SYSTEM, f"invoice {number}: Harvest marks work billed only by importing a period, and "
                            f"importing {where} {'; '.join(parts)}; bill or un-approve those items so the "
                            "period matches the ERP invoice, then retry this exception", code="validation")
