"""Canonical ``opportunity`` ↔ QuickBooks ``Estimate``: a won deal becomes an accepted estimate, the
signed quote finance invoices against.

===============  ==========================================================================================
opportunity      Estimate (← read, → write; references are native QBO ids)
===============  ==========================================================================================
account          ↔ CustomerRef (the account's Customer; required: a create without it, or a ``None``, is a
                 MappingError)
name             ↔ CustomerMemo.value (the memo printed on the estimate); → also the Description of its
                 single line (an estimate with several lines keeps them: only the memo changes)
amount           ← TotalAmt; → the Amount of the estimate's single SalesItemLineDetail line (without ItemRef:
                 QBO books it to its "Services" item; Qty and UnitPrice are dropped when they no longer
                 multiply to it). Required on create. Writing it to an estimate with several lines is a
                 MappingError (merge them in QuickBooks); read as an unpadded decimal ("1575.5").
currency         ← CurrencyRef (QBO copies the customer's on every write). Read only: a write that names
                 another currency than the customer's is a MappingError (the connector reads the customer
                 once per write call to check, and a customer it cannot find is a MappingError on account);
                 the same currency writes nothing.
close_date       ↔ ExpirationDate
stage, is_won    → TxnStatus (stage names compared case-insensitively): is_won true or stage "Closed
                 Won" → Accepted, stage "Closed Lost" → Rejected, any other stage → Pending; is_won false
                 alone → Pending when the estimate is Accepted or Closed, else left as it is. Accepted also
                 writes AcceptedDate (close_date, else the estimate's ExpirationDate, else today; a
                 close_date written to an accepted estimate moves it too); leaving Accepted clears
                 AcceptedDate and AcceptedBy. A Closed estimate (invoiced) is never set back to Accepted.
                 ← stage: Accepted or Closed → "Closed Won", Rejected → "Closed Lost"; Pending holds no
                 stage (``NOT_HELD``: left out, the CRM's stage stands). is_won ← TxnStatus is Accepted
                 or Closed.
gid              a line ``accord:<gid>`` in PrivateNote
not held         service_line, billing_model, delivery_region, project (QBO's ProjectRef is left alone)
===============  ==========================================================================================

An estimate is a transaction: a canonical delete is a real ``operation=delete``. Every write to an
existing estimate starts from the estimate as QBO holds it (``needs_current``: one query per batch), which
the line, the status and AcceptedDate are merged into. A create starts from ``on_create`` (a Pending
estimate without Id), which is how ``compose`` tells it from an update of an estimate QBO no longer
has (``current`` is empty: the update goes out and QBO answers 610).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from accord.connectors.quickbooks.mapping_base import (
    CENT,
    NOT_HELD,
    SALES,
    EntitySpec,
    Found,
    Lookup,
    MappingError,
    Reader,
    Writer,
    currency_code,
    customer_lookup,
    looked_up,
    money,
    number,
    plain_decimal,
    ref,
    ref_value,
    sales_lines,
    set_date,
    text,
    wire_date,
)
from accord.connectors.quickbooks.mapping_base import date as read_date

PENDING, ACCEPTED, CLOSED, REJECTED = "Pending", "Accepted", "Closed", "Rejected"
WON, LOST = "Closed Won", "Closed Lost"
STAGES = {ACCEPTED: WON, CLOSED: WON, REJECTED: LOST, PENDING: NOT_HELD}  # TxnStatus → canonical stage
NO_ACCOUNT = ("a QuickBooks estimate is made out to a customer: send the opportunity's account "
              "(its QuickBooks Customer Id)")


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------

def _status(wire: Mapping[str, Any]) -> str:
    status = text(wire.get("TxnStatus")) or PENDING
    if status not in STAGES:
        raise MappingError("stage", status, f"TxnStatus is one of {', '.join(STAGES)}; fix the estimate's status "
                                            "in QuickBooks")
    return status


def _read_amount(wire: Mapping[str, Any]) -> str | None:
    amount = money("amount", wire.get("TotalAmt"))
    return None if amount is None else plain_decimal(Decimal(amount))


ESTIMATE_READERS: dict[str, Reader] = {
    "account": lambda w: ref_value(w, "CustomerRef"),
    "name": lambda w: text((w.get("CustomerMemo") or {}).get("value")),
    "stage": lambda w: STAGES[_status(w)],
    "is_won": lambda w: _status(w) in (ACCEPTED, CLOSED),
    "amount": _read_amount,
    "currency": lambda w: ref_value(w, "CurrencyRef"),
    "close_date": lambda w: read_date("close_date", w.get("ExpirationDate")),
}


# ------------------------------------------------------------------------------------------------
# writing: per field
# ------------------------------------------------------------------------------------------------

def _line(out: dict[str, Any], current: Mapping[str, Any], field: str, value: Any, *,
          strict: bool = True) -> dict[str, Any] | None:
    """The single sales line being written, started from the current one (QBO replaces ``Line`` whole).
    An estimate with several lines: a MappingError, or ``None`` when not ``strict``."""
    if "Line" not in out:
        lines = [copy.deepcopy(dict(x)) for x in sales_lines(current)]
        if not lines and not current.get("Id"):  # a create (or an estimate QBO no longer has: 610)
            lines = [{"DetailType": SALES, SALES: {}}]
        if len(lines) != 1:
            if not strict:
                return None
            raise MappingError(field, value, f"the Estimate has {len(lines)} lines; Accord maps an opportunity "
                                             "to a single-line estimate: merge its lines in QuickBooks")
        out["Line"] = lines
    line: dict[str, Any] = out["Line"][0]
    return line


def _write_account(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    customer = ref("account", value)
    if customer is None:
        raise MappingError("account", value, NO_ACCOUNT)
    out["CustomerRef"] = customer


def _write_name(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    name = text(value)
    out["CustomerMemo"] = {"value": name} if name else None
    line = _line(out, current, "name", value, strict=False)
    if line is None:
        return
    if name:
        line["Description"] = name
    else:
        line.pop("Description", None)


def _write_amount(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    amount = number("amount", value)
    if amount is None or amount < 0:
        raise MappingError("amount", value, "send the opportunity amount as a decimal of 0 or more: a QuickBooks "
                                            "estimate needs an amount on its line")
    line = _line(out, current, "amount", value)
    assert line is not None  # strict
    line["Amount"] = amount
    detail = line.setdefault(SALES, {})
    qty, price = detail.get("Qty"), detail.get("UnitPrice")
    if qty is not None and price is not None and (
            Decimal(str(qty)) * Decimal(str(price))).quantize(CENT) != Decimal(str(amount)).quantize(CENT):
        detail.pop("Qty")
        detail.pop("UnitPrice")


def _check_currency(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    currency_code(value)


def _check_stage(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    if value is not None and not isinstance(value, str):
        raise MappingError("stage", value, "send the stage name, such as \"Closed Won\"")


def _check_won(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    if value is not None and not isinstance(value, bool):
        raise MappingError("is_won", value, "send true or false")


ESTIMATE_WRITERS: dict[str, Writer] = {  # TxnStatus, AcceptedDate and the currency check: ``_compose``
    "account": _write_account, "name": _write_name, "amount": _write_amount, "currency": _check_currency,
    "close_date": set_date("ExpirationDate", "close_date"), "stage": _check_stage, "is_won": _check_won,
}


# ------------------------------------------------------------------------------------------------
# writing: status, currency and what a create needs
# ------------------------------------------------------------------------------------------------

def _wanted_status(fields: Mapping[str, Any], now: str | None) -> str | None:
    """The TxnStatus the stage and is_won being written ask for (``None``: leave it as it is)."""
    if "stage" not in fields and "is_won" not in fields:
        return None
    stage = (text(fields.get("stage")) or "").casefold()
    if fields.get("is_won") is True or stage == WON.casefold():
        wanted = ACCEPTED
    elif stage == LOST.casefold():
        wanted = REJECTED
    elif "stage" in fields or now in (ACCEPTED, CLOSED):
        wanted = PENDING
    else:
        return None  # is_won false alone: an open or rejected estimate stays as it is
    return None if wanted == ACCEPTED and now == CLOSED else wanted  # invoiced: it stays closed


def _write_status(fields: Mapping[str, Any], out: dict[str, Any], current: Mapping[str, Any]) -> None:
    now = (text(current.get("TxnStatus")) or PENDING) if current.get("Id") else None
    wanted = _wanted_status(fields, now)
    if wanted is not None:
        out["TxnStatus"] = wanted
    if (wanted or now) == ACCEPTED:
        closing = fields.get("close_date")
        if closing is not None:
            out["AcceptedDate"] = wire_date("close_date", closing)
        elif wanted == ACCEPTED and now != ACCEPTED:
            expires = fields["close_date"] if "close_date" in fields else current.get("ExpirationDate")
            out["AcceptedDate"] = read_date("close_date", expires) or dt.date.today().isoformat()
    elif wanted is not None:
        out.update({k: None for k in ("AcceptedDate", "AcceptedBy") if current.get(k) is not None})


def _customer_id(fields: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    return text(fields["account"]) if "account" in fields else ref_value(current, "CustomerRef")


def _lookups(fields: Mapping[str, Any], current: Mapping[str, Any]) -> set[Lookup]:
    return customer_lookup(_customer_id(fields, current) if text(fields.get("currency")) else None)


def _check_customer_currency(fields: Mapping[str, Any], current: Mapping[str, Any], found: Found) -> None:
    code = text(fields.get("currency"))
    customer = _customer_id(fields, current)
    if code is None or customer is None or not customer.isdigit():
        return  # no currency to check; a missing or global account id is the account writer's error
    record = looked_up(found, ("Customer", customer), "currency", code,
                       "an estimate takes its customer's currency")
    if record is None:
        raise MappingError("account", customer, f"Customer {customer} does not exist in QuickBooks: sync the "
                                                "account before its opportunities")
    theirs = ref_value(record, "CurrencyRef")
    if theirs is not None and theirs != code:
        raise MappingError("currency", code, f"a QuickBooks estimate is in its customer's currency, and Customer "
                                             f"{customer} ({text(record.get('DisplayName'))}) bills in {theirs}: "
                                             f"quote the opportunity in {theirs}, or link the account to a "
                                             f"QuickBooks customer that bills in {code}")


def _is_create(current: Mapping[str, Any]) -> bool:
    return "Id" not in current and current.get("TxnStatus") == PENDING  # the ``on_create`` start


def _compose(fields: Mapping[str, Any], out: dict[str, Any], current: Mapping[str, Any], found: Found) -> None:
    _check_customer_currency(fields, current, found)
    _write_status(fields, out, current)
    if not _is_create(current):
        return
    if out.get("CustomerRef") is None:
        raise MappingError("account", fields.get("account"), NO_ACCOUNT)
    if any(line.get("Amount") is None for line in out.get("Line") or [{}]):
        raise MappingError("amount", fields.get("amount"), "a QuickBooks estimate needs an amount on its line: "
                                                           "set the opportunity's amount before it is quoted")


ESTIMATE = EntitySpec(
    canonical="opportunity", qbo="Estimate", path="estimate", cdc="Estimate", name_list=False,
    gid_field="PrivateNote", readers=ESTIMATE_READERS, writers=ESTIMATE_WRITERS,
    needs_current=frozenset(ESTIMATE_WRITERS),  # status and line writes start from the estimate QBO holds
    on_create=lambda _: {"TxnStatus": PENDING}, lookups=_lookups, compose=_compose)

ESTIMATE_SPECS = (ESTIMATE,)
