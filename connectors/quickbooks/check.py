"""The QuickBooks Online connection check (``accord check --connect``): refresh the access token with the
configured app credentials and the newest refresh token, read ``CompanyInfo``, then query what the
settings and mappings name in the company: the chart-of-accounts Ids of new service Items
(``income_account_id``) and expenses (``expense_account_id``, ``payment_account_id``), the standard
terms ``payment_terms`` maps to (``mapping.TERMS``), and the "Services" item that lines without an
ItemRef are booked to.

QBO replaces the refresh token on every refresh, so the check renews through the daemon's token store
(the newest refresh token is saved there at once); without it, the check refreshes nothing and says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from accord.connectors.base import CallStats, TokenCache
from accord.connectors.check import CheckContext, Finding, Report, with_timeout
from accord.connectors.quickbooks.api import QboApi
from accord.connectors.quickbooks.mapping import TERMS
from accord.connectors.quickbooks.settings import QuickBooksSettings

INCOME = ("Income", "Other Income")
EXPENSE = ("Expense", "Other Expense", "Cost of Goods Sold")
PAYMENT = ("Bank", "Credit Card")
TERM_DAYS = {"due_on_receipt": 0, "net_15": 15, "net_30": 30, "net_60": 60}
DEFAULT_ITEM = "Services"


async def check_connection(settings: QuickBooksSettings, context: CheckContext) -> Report:
    """The company's answer to the checks above."""
    cache = await context.token_cache()
    if cache is None:
        return Report(findings=[_no_token_store()])
    api = QboApi(with_timeout(settings, context.timeout), system=context.name, token_cache=cache, budget=None,
                 transport=context.transport, stats=CallStats(), now=time.time)
    try:
        await _refresh(api, cache)
        info = (await api.call("GET", f"/companyinfo/{settings.realm_id}")).get("CompanyInfo") or {}
        findings = [*await _accounts(api, settings, context), *await _terms(api, context),
                    *await _default_item(api, context)]
    finally:
        await api.aclose()
    return Report(about=f"{info.get('CompanyName', '?')} (realm {settings.realm_id})", findings=findings)


def _no_token_store() -> Finding:
    return Finding(kind="unreachable", what="token store", value="the daemon's Redis cannot be reached",
                   fix="QuickBooks replaces the refresh token on every refresh and Accord keeps the newest in "
                       "the daemon's Redis: start it (or point redis.url at it) and check again")


async def _refresh(api: QboApi, cache: TokenCache) -> None:
    """A new access token, proving the client credentials and the refresh token (saved in ``cache``)."""
    cached = await cache.load()
    await api.tokens.renew(str(cached.get("access_token")) if cached else None)


async def _rows(api: QboApi, entity: str, where: str) -> list[dict[str, Any]]:
    body = await api.query(f"SELECT * FROM {entity} WHERE {where} MAXRESULTS 1000")
    rows = (body.get("QueryResponse") or {}).get(entity) or []
    return [row for row in rows if isinstance(row, dict)]


def _ids(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in sorted(set(values)))


async def _accounts(api: QboApi, settings: QuickBooksSettings, context: CheckContext) -> list[Finding]:
    """Each account setting the configured entities use exists, is active and of a fitting type."""
    wanted: dict[str, tuple[str, tuple[str, ...]]] = {}  # setting -> (account Id, allowed types)
    if "task" in context.entities:
        wanted["income_account_id"] = (settings.income_account_id, INCOME)
    if "expense" in context.entities:
        wanted["expense_account_id"] = (settings.expense_account_id, EXPENSE)
        wanted["payment_account_id"] = (settings.payment_account_id, PAYMENT)
    if not wanted:
        return []
    found = {str(r.get("Id")): r for r in await _rows(api, "Account", f"Id IN ({_ids(i for i, _ in wanted.values())})")}
    return [f for setting, (account_id, types) in wanted.items()
            for f in _account(setting, account_id, types, found.get(account_id))]


def _account(setting: str, account_id: str, types: tuple[str, ...], row: dict[str, Any] | None) -> list[Finding]:
    what = f"{setting} = {account_id!r}"
    fix = f"set {setting} to the Id of an active {' or '.join(types)} account of this company"
    if row is None:
        return [Finding(kind="missing", what=what, value="no such account in the chart of accounts", fix=fix)]
    name, kind = row.get("Name"), row.get("AccountType")
    if row.get("Active") is False:
        return [Finding(kind="missing", what=what, value=f"account {name!r} is inactive", fix=fix)]
    if kind not in types:
        return [Finding(kind="missing", what=what, value=f"account {name!r} is of type {kind!r}", fix=fix)]
    return []


async def _terms(api: QboApi, context: CheckContext) -> list[Finding]:
    """The terms ``payment_terms`` maps to exist with the due days their codes say."""
    if "account" not in context.entities or "payment_terms" in context.excluded("account"):
        return []
    found = {str(r.get("Id")): r for r in await _rows(api, "Term", f"Id IN ({_ids(TERMS)})")}
    out = []
    for term_id, code in TERMS.items():
        row, days = found.get(term_id), TERM_DAYS[code]
        if row is None or row.get("Active") is False or int(row.get("DueDays") or 0) != days:
            seen = "missing or inactive" if row is None or row.get("Active") is False else \
                f"{row.get('Name')!r}, due in {row.get('DueDays')} days"
            out.append(Finding(kind="missing", what=f"Term {term_id}", value=f"{seen}; Accord reads it as {code}",
                               fix=f"make term {term_id} an active term due in {days} days, or leave payment_terms "
                                   f"out: add \"payment_terms\" to entities.account.exclude.{context.name}"))
    return out


async def _default_item(api: QboApi, context: CheckContext) -> list[Finding]:
    """Estimate and invoice lines Accord writes carry no ItemRef: QBO books them to "Services"."""
    used = [e for e in ("opportunity", "invoice") if e in context.entities]
    if not used or await _rows(api, "Item", f"Name = '{DEFAULT_ITEM}' AND Active = true"):
        return []
    return [Finding(kind="missing", what=f"Item {DEFAULT_ITEM!r}", value=f"no active item of that name ({', '.join(used)} "
                    "lines are booked to it)", fix=f"create or reactivate a service item named {DEFAULT_ITEM!r}")]
