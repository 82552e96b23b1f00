"""Harvest invoices and invoice payments ↔ canonical ``invoice`` and ``payment``.

The ERP owns invoices and payments; Accord writes them into Harvest so delivery sees what was billed and
paid. References are plain Harvest ids; amounts are canonical decimal strings without padding.

========= ================= ================================================================= ============
canonical Harvest           fields (← read only, ↔ read and written)                           Accord gid
========= ================= ================================================================= ============
invoice   invoice           account ↔ client.id (written on create only); project ↔ the first  line in
                            line item's project.id (create only: it names the project whose    ``notes``
                            time is imported); number ↔ number; issue_date ↔ issue_date;
                            due_date ↔ due_date; currency ↔ currency; period_start /
                            period_end ↔ period_start / period_end (create only: the import's
                            from / to); total ← amount; tax ← tax_amount; balance ← due_amount;
                            status ↔ state (draft → "draft", open → "open", paid → "paid",
                            closed → "void"; changed through ``messages`` events)
payment   invoice payment   id ``<invoice_id>:<payment_id>``; invoice ← the parent invoice;    line in
                            account ← the invoice's client.id; currency ← the invoice's         ``notes``
                            currency; amount ↔ amount; paid_date ↔ paid_date; notes ↔ notes
                            (without the gid line); reference ← transaction_id (set by
                            payment gateways; the API cannot write it)
========= ================= ================================================================= ============

Not held: the invoice's ``lines`` and ``subtotal`` (Harvest's line items are its own breakdown of the
imported time and expenses), a payment's ``method``. ``total``, ``tax`` and ``balance`` are derived by
Harvest and never written; a payment cannot be edited at all (Harvest has no update for payments).

Creating an invoice *imports* the project's unbilled time and expenses of the period
(``line_items_import``): that is the only way the Harvest API marks time entries and expenses billed
(``is_billed``, ``invoice {id, number}``, the invoiced lock); free-form line items bill nothing.

A payment list answer carries no reference to its invoice: the connector adds the parent invoice as
``invoice {id, number, currency, client}`` to each payment before mapping it (``with_invoice``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from accord.connectors.errors import Permanent
from accord.connectors.harvest.convert import (
    SYSTEM,
    EntitySpec,
    MappingError,
    date,
    int_id,
    number,
    ref,
    ref_writer,
    setter,
    strip_marker,
    text,
    to_wire,
    unref,
)

STATUS = {"draft": "draft", "open": "open", "paid": "paid", "closed": "void"}  # Harvest state → canonical
STATUSES = frozenset(STATUS.values())
INVOICE_UPDATABLE = ("number", "issue_date", "due_date", "currency")  # what a PATCH writes
PAYMENT_HELD = ("invoice", "amount", "paid_date", "notes")  # what a payment holds and cannot change


def money(entity: str, name: str, value: Any) -> str | None:
    """A wire amount as a canonical decimal without padding (``1575.50`` → ``"1575.5"``)."""
    if value is None or value == "":
        return None
    try:
        out = format(Decimal(str(value)).normalize(), "f")
    except InvalidOperation:
        raise MappingError(entity, name, value, "expected a decimal amount") from None
    return "0" if out in ("-0", "") else out


def _status(wire: Mapping[str, Any]) -> str:
    state = wire.get("state")
    if state not in STATUS:
        raise MappingError("invoice", "status", state, "expected a Harvest state draft, open, paid or closed")
    return STATUS[str(state)]


def _project(wire: Mapping[str, Any]) -> str | None:
    for item in wire.get("line_items") or []:
        if isinstance(item, Mapping) and ref(item.get("project")) is not None:
            return ref(item.get("project"))
    return None


def _number_write(value: Any, out: dict[str, Any]) -> None:
    if value is not None and not str(value).strip():
        raise MappingError("invoice", "number", value, "an invoice number cannot be blank")
    if value is not None:
        out["number"] = str(value)


def _currency_write(value: Any, out: dict[str, Any]) -> None:
    if value is not None and not (isinstance(value, str) and len(value) == 3 and value.isalpha()):
        raise MappingError("invoice", "currency", value, "expected an ISO 4217 code such as \"USD\"")
    if value is not None:
        out["currency"] = value.upper()


INVOICE = EntitySpec(
    "invoice", "invoices", "invoices",
    readers={"account": lambda w: ref(w.get("client")), "project": _project,
             "number": lambda w: text(w.get("number")),
             "issue_date": lambda w: date("invoice", "issue_date", w.get("issue_date")),
             "due_date": lambda w: date("invoice", "due_date", w.get("due_date")),
             "period_start": lambda w: date("invoice", "period_start", w.get("period_start")),
             "period_end": lambda w: date("invoice", "period_end", w.get("period_end")),
             "currency": lambda w: text(w.get("currency")),
             "total": lambda w: money("invoice", "total", w.get("amount")),
             # no tax rate means no tax (Harvest still reports tax_amount 0.0): absent, as the ERP has it
             "tax": lambda w: money("invoice", "tax", w.get("tax_amount")) if w.get("tax") else None,
             "balance": lambda w: money("invoice", "balance", w.get("due_amount")), "status": _status},
    writers={"account": ref_writer("invoice", "account", "client_id"), "number": _number_write,
             "issue_date": setter("issue_date", lambda v: date("invoice", "issue_date", v)),
             "due_date": setter("due_date", lambda v: date("invoice", "due_date", v)),
             "currency": _currency_write},
    gid_field="notes", required=("client_id",))


def _invoice_of(wire: Mapping[str, Any]) -> Mapping[str, Any]:
    invoice = wire.get("invoice")
    return invoice if isinstance(invoice, Mapping) else {}


PAYMENT = EntitySpec(
    "payment", "payments", "invoice_payments",
    readers={"invoice": lambda w: ref(w.get("invoice")), "account": lambda w: ref(_invoice_of(w).get("client")),
             "amount": lambda w: money("payment", "amount", w.get("amount")),
             "paid_date": lambda w: date("payment", "paid_date",
                                         w.get("paid_date") or str(w.get("paid_at") or "")[:10]),
             "currency": lambda w: text(_invoice_of(w).get("currency")),
             "reference": lambda w: text(w.get("transaction_id")), "notes": lambda w: strip_marker(w.get("notes"))},
    writers={"amount": setter("amount", lambda v: number("payment", "amount", v)),
             "paid_date": setter("paid_date", lambda v: date("payment", "paid_date", v)),
             "notes": setter("notes")},
    gid_field="notes", required=("amount",), parent="invoices",
    id_of=lambda w: f"{ref(w.get('invoice'))}:{w['id']}")


# -- helpers the connector uses ------------------------------------------------------------------------

def with_invoice(payment: Mapping[str, Any], invoice: Mapping[str, Any]) -> dict[str, Any]:
    """A payment wire object with its parent invoice attached (what ``PAYMENT`` reads)."""
    return {**payment, "invoice": {"id": invoice.get("id"), "number": invoice.get("number"),
                                   "currency": invoice.get("currency"), "client": invoice.get("client")}}


def has_payments(invoice: Mapping[str, Any]) -> bool:
    """Whether an invoice has payments recorded (its due amount is below its amount); an answer without
    the amounts counts as yes, so a payment is never missed."""
    try:
        return Decimal(str(invoice["due_amount"])) != Decimal(str(invoice["amount"]))
    except (KeyError, InvalidOperation):
        return True


def split_payment_id(target_id: str) -> tuple[str, str]:
    invoice_id, _, payment_id = target_id.partition(":")
    if not (invoice_id.isdigit() and payment_id.isdigit()):
        raise Permanent(SYSTEM, f"payment id {target_id!r} is not \"<invoice_id>:<payment_id>\"; relink the "
                                "payment", code="validation")
    return invoice_id, payment_id


def wanted_status(value: Any) -> str | None:
    if value is not None and value not in STATUSES:
        raise MappingError("invoice", "status", value, f"expected one of {sorted(STATUSES)}")
    return None if value is None else str(value)


def events_for(gid: str, state: Any, wanted: str | None) -> list[str]:
    """The ``messages`` event types that take an invoice from Harvest ``state`` to canonical ``wanted``
    ("paid" is reached by payments: it asks only that the invoice be issued)."""
    if wanted is None or STATUS.get(str(state)) == wanted:
        return []
    if state == "paid" and wanted in ("draft", "void"):
        raise Permanent(SYSTEM, f"invoice {gid}: Harvest holds it as paid, so it cannot become {wanted!r}; "
                                "delete its payments in Harvest (or in the ERP) first, then retry",
                        code="validation")
    steps = {("draft", "open"): ["send"], ("draft", "paid"): ["send"], ("draft", "void"): ["send", "close"],
             ("open", "draft"): ["draft"], ("open", "void"): ["close"], ("closed", "open"): ["re-open"],
             ("closed", "paid"): ["re-open"], ("closed", "draft"): ["re-open", "draft"]}
    return steps.get((str(state), wanted), [])


def create_body(gid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /v2/invoices``: the client, number, dates and currency, a subject, the gid line in ``notes``
    and ``line_items_import`` of the project's time and expenses over the period (all unbilled ones when
    the period is open-ended)."""
    if fields.get("account") is None:
        raise MappingError("invoice", "account", None, "an invoice needs the Harvest client it bills")
    project = int_id("invoice", "project", unref("invoice", "project", fields.get("project")))
    body = to_wire(INVOICE, {k: v for k, v in fields.items() if k in ("account", *INVOICE_UPDATABLE)})
    span = {key: day for key, name in (("from", "period_start"), ("to", "period_end"))
            if (day := date("invoice", name, fields.get(name)))}
    body.update({k: v for k, v in (("subject", f"Invoice {body['number']}" if body.get("number") else None),
                                   ("notes", f"accord:{gid}")) if v is not None})
    body["line_items_import"] = {"project_ids": [project], "time": {"summary_type": "detailed", **span},
                                 "expenses": {"summary_type": "detailed", **span}}
    return {k: v for k, v in body.items() if v is not None}
