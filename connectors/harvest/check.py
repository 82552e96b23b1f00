"""The Harvest connection check (``accord check --connect``): one ``GET /v2/company`` with the configured
token and account id (it needs an Administrator, as Accord's writes do), then the company's feature
flags the configured entities rely on: expenses, invoices, and timesheet approval when a ``when``
condition names ``approval``. A refused token (401) or a token of a user who is no Administrator (403)
is reported as refused credentials by the caller.
"""

from __future__ import annotations

from typing import Any

from accord.connectors.base import CallStats
from accord.connectors.check import CheckContext, Finding, Report, with_timeout
from accord.connectors.harvest.session import HarvestSession
from accord.connectors.harvest.settings import HarvestSettings

# company flag -> (the entities that need it, what to turn on in Harvest)
FEATURES: dict[str, tuple[tuple[str, ...], str]] = {
    "expense_feature": (("expense",), "turn on Expenses (Settings → Modules)"),
    "invoice_feature": (("invoice", "payment"), "turn on Invoices (Settings → Modules)"),
}


async def check_connection(settings: HarvestSettings, context: CheckContext) -> Report:
    """The account's answer to the checks above."""
    session = HarvestSession(with_timeout(settings, context.timeout), system=context.name, budget=None,
                             transport=context.transport, stats=CallStats())
    try:
        company = await session.request_json("GET", "/v2/company")
    finally:
        await session.aclose()
    if not isinstance(company, dict):
        company = {}
    about = f"{company.get('name', '?')} ({company.get('full_domain', settings.base_url)}), account " \
            f"{settings.account_id.strip()}"
    return Report(about=about, findings=[*_inactive(company), *_features(company, context), *_approval(company, context)])


def _inactive(company: dict[str, Any]) -> list[Finding]:
    if company.get("is_active", True):
        return []
    return [Finding(kind="missing", what="company", value="the Harvest account is archived (is_active false)",
                    fix="reactivate the account, or point account_id at the live one")]


def _features(company: dict[str, Any], context: CheckContext) -> list[Finding]:
    out = []
    for flag, (entities, fix) in FEATURES.items():
        used = [e for e in entities if e in context.entities]
        if used and company.get(flag) is False:
            out.append(Finding(kind="missing", what=f"company.{flag}", value=f"false, but {', '.join(used)} "
                               f"sync with {context.name}",
                               fix=f"{fix}, or remove `{context.name}` from entities.{used[0]}.systems"))
    return out


def _approval(company: dict[str, Any], context: CheckContext) -> list[Finding]:
    """Time and expenses wait for an approval that never comes when approvals are off."""
    waiting = [e for e in ("time_entry", "expense") if e in context.entities
               and "approval" in context.entities[e].conditions]
    if not waiting or company.get("approval_feature") is not False:
        return []
    return [Finding(kind="missing", what="company.approval_feature",
                    value=f"false, but entities {', '.join(waiting)} flow only when approved",
                    fix="turn on Timesheet Approval in Harvest, or drop `approval` from their `when` conditions")]
