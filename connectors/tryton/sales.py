"""Tryton's customer invoices and CRM opportunities ↔ Accord canonical fields.

=========== ================ ============================================================ =====================
canonical   Tryton model     fields (← read, → written)                                    Accord gid lives in
=========== ================ ============================================================ =====================
invoice     account.invoice  account ← party; number ← number (set when posted);           none: invoices are
            (type ``out``)   issue_date ← invoice_date; due_date ← the latest maturity     made in Tryton
            read only        date of its lines to pay (posted); currency ← currency.code;  (``project.work.
                             subtotal ← untaxed_amount; tax ← tax_amount; total ←          invoice``), never
                             total_amount; balance ← amount_to_pay once posted (draft:     written by Accord
                             the total; cancelled: 0); status ← state (draft and
                             validated → ``draft``, posted → ``open``, paid → ``paid``,
                             cancelled → ``void``); lines ← its lines of type ``line``
                             (description, quantity, unit_price, amount; time_entry ←
                             the timesheet line it bills when it bills exactly one;
                             service_date ← that line's date); period_start/period_end ←
                             the first/last date of the timesheet lines billed; project
                             ← the project of the works billed when there is one
opportunity sale.opportunity account ↔ party; name ↔ description; stage ↔ state (verbatim:   a line
                             lead, opportunity, converted, won, lost, cancelled; written   ``accord:<gid>`` in
                             by the workflow buttons); is_won ← state converted or won;    ``comment``
                             amount ↔ amount; currency ↔ currency (by ISO code);
                             close_date ↔ end_date
=========== ================ ============================================================ =====================

Not held: an opportunity's ``conversion_probability`` (the canonical model has no probability field),
its service_line, billing_model, delivery_region, project, project_ref and customer_ref (no Tryton
counterpart: ignored on write). Payments are not an entity here: an invoice's paid and open amounts are
its ``status`` and ``balance``. Money travels as decimal strings without padding, dates as ISO strings.

Stateless: nothing to survive a crash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from accord.connectors.tryton.psa import MappingError, iso_date, ref, unref

INVOICE = "account.invoice"
INVOICE_LINE = "account.invoice.line"
MOVE_LINE = "account.move.line"
OPPORTUNITY = "sale.opportunity"
INVOICE_FIELDS = ("type", "number", "party", "invoice_date", "state", "currency.code", "lines", "untaxed_amount",
                  "tax_amount", "total_amount", "amount_to_pay", "lines_to_pay", "write_date", "create_date")
INVOICE_LINE_FIELDS = ("type", "description", "quantity", "unit_price", "amount")
OPPORTUNITY_FIELDS = ("number", "party", "description", "amount", "currency.code", "conversion_probability",
                      "end_date", "state", "comment", "write_date", "create_date")
INVOICE_STATUS = {"draft": "draft", "validated": "draft", "posted": "open", "paid": "paid", "cancelled": "void"}
STAGES = ("lead", "opportunity", "converted", "won", "lost", "cancelled")
OPEN_STAGES = ("lead", "opportunity")  # the states whose fields Tryton lets one edit
WON_STAGES = ("converted", "won")
# state → {state reachable in one step: the button that takes it there}: the transitions of sale_opportunity
# 8.2 whose button is offered in that state (a transition without a visible button is refused: "You can not
# call convert"); ``won`` is reached only by Tryton itself, from the state of the sales a conversion made.
# Moving to ``opportunity`` needs an employee on the record (the session's user's, by default).
TRANSITIONS: dict[str, dict[str, str]] = {
    "lead": {"opportunity": "opportunity", "lost": "lost", "cancelled": "cancel"},
    "opportunity": {"lead": "lead", "converted": "convert", "lost": "lost", "cancelled": "cancel"},
    "converted": {},
    "lost": {"lead": "lead"},
    "cancelled": {"lead": "lead"},
    "won": {},
}


def dec(value: Any) -> str | None:
    """A Tryton ``Decimal`` (or float) as a canonical decimal string without padding."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float):
        return None
    text = format(Decimal(str(value)).normalize(), "f")
    return "0" if text in ("-0", "") else text


def iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else None


def code_of(row: Mapping[str, Any], field: str = "currency") -> str | None:
    """The ``code`` of the dotted read ``<field>.code`` (Tryton answers it as the ``"<field>."`` object)."""
    value = (row.get(f"{field}.") or {}).get("code")
    return str(value) if value else None


# -- invoice ← account.invoice ------------------------------------------------------------------------------

def invoice_line_fields(line: Mapping[str, Any], billed: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A canonical invoice line of an invoice line row and the timesheet lines it bills."""
    one = billed[0] if len(billed) == 1 else None
    out = {"description": line.get("description") or None, "quantity": dec(line.get("quantity")),
           "unit_price": dec(line.get("unit_price")), "amount": dec(line.get("amount")),
           "time_entry": ref(one.get("id")) if one else None, "service_date": iso(one.get("date")) if one else None}
    return {k: v for k, v in out.items() if v is not None}


def invoice_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical invoice fields of an invoice row expanded with ``accord_lines`` (each with
    ``accord_billed``, its timesheet lines), ``accord_projects`` and ``accord_due``."""
    lines = [x for x in row.get("accord_lines") or [] if x.get("type", "line") == "line"]
    days = sorted(d for x in lines for b in x.get("accord_billed") or [] if isinstance(d := b.get("date"), dt.date))
    projects = sorted(set(row.get("accord_projects") or []))
    state = str(row.get("state") or "")
    total = row.get("total_amount")
    balance = row.get("amount_to_pay") if state in ("posted", "paid") else (
        Decimal(0) if state == "cancelled" else total)
    return {"account": ref(row.get("party")), "project": ref(projects[0]) if len(projects) == 1 else None,
            "number": row.get("number") or None, "issue_date": iso(row.get("invoice_date")),
            "due_date": iso(row.get("accord_due")), "period_start": iso(days[0]) if days else None,
            "period_end": iso(days[-1]) if days else None, "currency": code_of(row),
            "lines": [invoice_line_fields(x, list(x.get("accord_billed") or [])) for x in lines] or None,
            "subtotal": dec(row.get("untaxed_amount")), "tax": dec(row.get("tax_amount")), "total": dec(total),
            "balance": dec(balance), "status": INVOICE_STATUS.get(state, state or None)}


# -- opportunity ↔ sale.opportunity ---------------------------------------------------------------------------

def opportunity_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    state = row.get("state")
    return {"account": ref(row.get("party")), "name": row.get("description") or None, "stage": state,
            "is_won": state in WON_STAGES, "amount": dec(row.get("amount")), "currency": code_of(row),
            "close_date": iso(row.get("end_date"))}


def _money(entity: str, name: str, value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise MappingError(entity, name, value, "expected a decimal amount such as \"15000.00\"") from None
    if not amount.is_finite():
        raise MappingError(entity, name, value, "expected a finite decimal amount")
    return amount


def opportunity_values(fields: Mapping[str, Any], currencies: Mapping[str, int]) -> dict[str, Any]:
    """``sale.opportunity`` values of the canonical ``fields`` (``currencies``: ISO code → currency id);
    the stage is not a value (``stage_path``)."""
    vals: dict[str, Any] = {}
    if "name" in fields:
        vals["description"] = fields["name"]
    if "account" in fields:
        vals["party"] = None if fields["account"] is None else unref("opportunity", "account", fields["account"])
    if "amount" in fields:
        vals["amount"] = _money("opportunity", "amount", fields["amount"])
    if "close_date" in fields:
        vals["end_date"] = iso_date("opportunity", "close_date", fields["close_date"])
    if fields.get("currency") is not None:
        code = str(fields["currency"]).upper()
        if code not in currencies:
            raise MappingError("opportunity", "currency", fields["currency"],
                               f"the currency is not in Tryton (known: {sorted(currencies)}): add it there")
        vals["currency"] = currencies[code]
    return vals


def stage_path(current: str, target: Any) -> list[str]:
    """The workflow buttons taking an opportunity from state ``current`` to ``target`` (fewest first)."""
    if target not in STAGES:
        raise MappingError("opportunity", "stage", target, f"expected one of {list(STAGES)} (Tryton's states)")
    paths: dict[str, list[str]] = {current: []}
    todo = [current]
    while todo:
        state = todo.pop(0)
        for nxt, button in TRANSITIONS.get(state, {}).items():
            if nxt not in paths:
                paths[nxt] = [*paths[state], button]
                todo.append(nxt)
    if target not in paths:
        raise MappingError("opportunity", "stage", target,
                           f"Tryton cannot move an opportunity from {current!r} to {target!r}"
                           + (" (won follows from the sales a conversion made)" if target == "won" else ""))
    return paths[target]
