"""The canonical model: one versioned msgspec Struct per entity (DESIGN §4).

Every field is optional and defaulted: a change record carries only the fields that changed, and the
model evolves by adding defaulted fields only, never by changing a field's type. Money is ``Decimal``
plus an ISO currency; dates are ``datetime.date``; timestamps are UTC-aware; references to other
records are global ids (strings).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec


class Canonical(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Base of every canonical entity. ``schema`` names the entity and its version."""


class Address(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


AccountStatus = Literal["active", "inactive"]


class Account(Canonical, tag="account/1"):
    name: str | None = None
    legal_name: str | None = None
    website: str | None = None
    billing_address: Address | None = None
    country: str | None = None
    currency: str | None = None
    tax_id: str | None = None
    payment_terms: str | None = None
    legal_entity: str | None = None
    status: AccountStatus | None = None
    parent: str | None = None


class Contact(Canonical, tag="contact/1"):
    account: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    title: str | None = None


class Opportunity(Canonical, tag="opportunity/1"):
    account: str | None = None
    name: str | None = None
    stage: str | None = None
    is_won: bool | None = None
    amount: Decimal | None = None
    currency: str | None = None
    close_date: dt.date | None = None
    service_line: str | None = None
    billing_model: str | None = None
    delivery_region: str | None = None
    project: str | None = None
    project_ref: str | None = None  # the project's id in the delivery system (PSA), written back on closed-won
    customer_ref: str | None = None  # the account's id in the billing system (ERP), written back on closed-won


class Project(Canonical, tag="project/1"):
    account: str | None = None
    opportunity: str | None = None
    name: str | None = None
    code: str | None = None
    status: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    billing_model: str | None = None
    contract_value: Decimal | None = None
    currency: str | None = None
    legal_entity: str | None = None
    manager: str | None = None
    budget_hours: Decimal | None = None


class Task(Canonical, tag="task/1"):
    project: str | None = None
    parent: str | None = None
    name: str | None = None
    code: str | None = None
    billable: bool | None = None
    budget_hours: Decimal | None = None


class Resource(Canonical, tag="resource/1"):
    name: str | None = None
    email: str | None = None
    role: str | None = None
    cost_rate: Decimal | None = None
    bill_rate: Decimal | None = None
    currency: str | None = None
    legal_entity: str | None = None
    active: bool | None = None


Approval = Literal["draft", "submitted", "approved", "rejected"]


class TimeEntry(Canonical, tag="time_entry/1"):
    project: str | None = None
    task: str | None = None
    resource: str | None = None
    work_date: dt.date | None = None
    hours: Decimal | None = None
    billable: bool | None = None
    bill_rate: Decimal | None = None
    currency: str | None = None
    notes: str | None = None
    approval: Approval | None = None
    locked: bool | None = None
    invoice: str | None = None


class Expense(Canonical, tag="expense/1"):
    project: str | None = None
    resource: str | None = None
    spent_date: dt.date | None = None
    amount: Decimal | None = None
    currency: str | None = None
    category: str | None = None
    billable: bool | None = None
    approval: Approval | None = None
    locked: bool | None = None
    invoice: str | None = None


class InvoiceLine(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    description: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    amount: Decimal | None = None
    source: str | None = None  # deprecated (model v1 kept it ambiguous): use time_entry / expense
    time_entry: str | None = None  # global id of the time entry billed on this line
    expense: str | None = None  # global id of the expense billed on this line
    service_date: dt.date | None = None


class Invoice(Canonical, tag="invoice/1"):
    account: str | None = None
    project: str | None = None
    number: str | None = None
    issue_date: dt.date | None = None
    due_date: dt.date | None = None
    period_start: dt.date | None = None  # first and last service date billed
    period_end: dt.date | None = None
    currency: str | None = None
    lines: list[InvoiceLine] | None = None
    subtotal: Decimal | None = None
    tax: Decimal | None = None
    total: Decimal | None = None
    balance: Decimal | None = None
    status: str | None = None


class Payment(Canonical, tag="payment/1"):
    invoice: str | None = None
    account: str | None = None
    paid_date: dt.date | None = None
    amount: Decimal | None = None
    currency: str | None = None
    method: str | None = None
    reference: str | None = None
    notes: str | None = None


ENTITY_TYPES: Final[dict[str, type[Canonical]]] = {
    "account": Account,
    "contact": Contact,
    "opportunity": Opportunity,
    "project": Project,
    "task": Task,
    "resource": Resource,
    "time_entry": TimeEntry,
    "expense": Expense,
    "invoice": Invoice,
    "payment": Payment,
}

ENTITY_NAMES: Final[tuple[str, ...]] = tuple(ENTITY_TYPES)

# Billing documents and the entities their ``lines`` bill (an invoice line names the time entry or expense
# it bills by the field of that entity's name). A record on a live document (status not ``void``) is
# locked: the locked-record policies decide what a later change of it does.
BILLS: Final[dict[str, tuple[str, ...]]] = {"invoice": ("time_entry", "expense")}
VOID_STATUS: Final = "void"


def entity_fields(entity: str) -> tuple[str, ...]:
    """The canonical field names of ``entity`` (raises KeyError for an unknown entity)."""
    return ENTITY_TYPES[entity].__struct_fields__


def validate_fields(entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Check a partial field map against the entity's Struct and return it in wire-neutral form.

    Raises ``msgspec.ValidationError`` naming the bad field (``... - at `$.amount```). The result holds
    only msgpack-native values (Decimal and dates as strings), so it can travel in a change record.
    """
    typed = msgspec.convert(fields, ENTITY_TYPES[entity], strict=False)
    return to_wire(typed, keep=fields.keys())


def _plain(value: Any) -> Any:
    """Builtins with one spelling per value: ``Decimal("2.50")`` and ``Decimal("2.5")`` both become
    ``"2.5"``, so a system that pads decimals never looks like it changed a field."""
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "") else text
    return value


def to_wire(value: Canonical, keep: Any = None) -> dict[str, Any]:
    """A canonical Struct as plain builtins; with ``keep``, only those keys (``None`` values kept)."""
    raw: dict[str, Any] = msgspec.to_builtins(value, enc_hook=None, builtin_types=(Decimal,))
    raw = {k: _plain(v) if not isinstance(v, list) else [
        {lk: _plain(lv) for lk, lv in item.items()} if isinstance(item, dict) else item for item in v]
        for k, v in raw.items()}
    if keep is None:
        return raw
    return {name: raw.get(name) for name in keep}


def normalise_fields(entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` in canonical spelling (decimals without padding, dates as ISO strings); raises
    ``msgspec.ValidationError`` naming the first bad field."""
    return validate_fields(entity, fields)


REFERENCES: Final[dict[str, dict[str, str]]] = {
    # entity -> {reference field: referenced entity}; values are global ids in change records
    "account": {"parent": "account"},
    "contact": {"account": "account"},
    "opportunity": {"account": "account", "project": "project"},
    "project": {"account": "account", "opportunity": "opportunity", "manager": "resource"},
    "task": {"project": "project", "parent": "task"},
    "resource": {},
    "time_entry": {"project": "project", "task": "task", "resource": "resource", "invoice": "invoice"},
    "expense": {"project": "project", "resource": "resource", "invoice": "invoice"},
    "invoice": {"account": "account", "project": "project"},
    "payment": {"invoice": "invoice", "account": "account"},
}

LINE_REFERENCES: Final[dict[str, dict[str, dict[str, str]]]] = {
    # entity -> {list field: {reference field of each item: referenced entity}}
    "invoice": {"lines": {"time_entry": "time_entry", "expense": "expense"}},
}
