"""The building blocks of the Salesforce field tables: wire timestamps and literals, ``FieldMap`` /
``EntityMap``, and the field kinds the tables are made of (plain text, picklist by label, native
reference, date, money).

A reader takes the queried record and returns the canonical value (None when empty); a writer takes the
canonical value and returns the sObject fields that store it. Both raise ``MappingError`` for a value
with no counterpart, naming the entity, the field, the value and the fix.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from accord.connectors.errors import Permanent

SYSTEM = "salesforce"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)
_CENT = Decimal("0.01")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class MappingError(Permanent):
    """A value with no counterpart on the other side. Names the entity, the field and the value."""

    def __init__(self, entity: str, field: str, value: Any, fix: str) -> None:
        super().__init__(SYSTEM, f"{entity}.{field}: cannot map {value!r}; {fix}", code="MAPPING_ERROR")
        self.entity = entity
        self.field = field
        self.value = value


# ------------------------------------------------------------------------------------------------
# Timestamps: "2026-04-02T10:15:30.000+0000" on the wire, epoch milliseconds in Accord
# ------------------------------------------------------------------------------------------------

def parse_datetime_ms(value: str) -> int:
    """Epoch milliseconds of a Salesforce dateTime (``2026-04-02T10:15:30.000+0000``; ``Z`` also taken)."""
    try:
        parsed = dt.datetime.fromisoformat(value)  # C-fast; takes ".000+0000" and "Z" (Python 3.11+)
    except ValueError as exc:
        raise ValueError(f"not a Salesforce dateTime: {value!r} "
                         f"(expected e.g. \"2026-04-02T10:15:30.000+0000\")") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"not a Salesforce dateTime: {value!r} has no UTC offset "
                         f"(expected e.g. \"2026-04-02T10:15:30.000+0000\")")
    return (parsed - _EPOCH) // _MS


@functools.lru_cache(maxsize=1 << 14)  # rows written together share a stamp: the sandbox renders it for each
def format_datetime_ms(ms: int) -> str:
    """The wire form of epoch milliseconds: ``2026-04-02T10:15:30.000+0000``."""
    moment = _EPOCH + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


def soql_datetime(ms: int) -> str:
    """A SOQL dateTime literal for ``ms`` floored to the second (the documented literal has no fraction)."""
    moment = _EPOCH + dt.timedelta(seconds=ms // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_string(value: str) -> str:
    """A quoted SOQL string literal: backslash escapes, as SOQL requires."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------

Reader = Callable[[Mapping[str, Any]], Any]
Writer = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class FieldMap:
    """One canonical field: the wire fields it is read from, and how to read and write it.

    ``read_only``: Salesforce derives the value (e.g. ``IsWon``); it is read, never written, and a write
    result does not claim a value for it.
    """

    canonical: str
    wire: tuple[str, ...]
    read: Reader
    write: Writer
    multi_currency_only: bool = False
    read_only: bool = False


@dataclass(frozen=True)
class EntityMap:
    """One canonical entity stored in one sObject type."""

    entity: str
    sobject: str
    id_prefix: str
    fields: tuple[FieldMap, ...]

    def active(self, multi_currency: bool) -> tuple[FieldMap, ...]:
        """The field maps in use for an org with or without multi-currency."""
        return tuple(f for f in self.fields if multi_currency or not f.multi_currency_only)

    def wire_fields(self, multi_currency: bool) -> list[str]:
        """Every wire field the mapping reads, in a stable order, without duplicates."""
        out: list[str] = []
        for fmap in self.active(multi_currency):
            out.extend(name for name in fmap.wire if name not in out)
        return out


def text(value: Any) -> Any:
    """Salesforce returns empty text as null, but a client may send ""; both are None in Accord."""
    return None if value == "" else value


def plain(canonical: str, wire: str, *, multi_currency_only: bool = False) -> FieldMap:
    """A value stored as is (text, email, phone, a picklist kept verbatim, an opaque global id)."""
    return FieldMap(canonical, (wire,), lambda w: text(w.get(wire)), lambda v: {wire: text(v)},
                    multi_currency_only=multi_currency_only)


def reference(canonical: str, wire: str) -> FieldMap:
    """A lookup holding the native 18-character id of a record in this org (e.g. ``AccountId``)."""
    return FieldMap(canonical, (wire,), lambda w: text(w.get(wire)),
                    lambda v: {wire: None if v in (None, "") else str(v)})


def derived(canonical: str, wire: str) -> FieldMap:
    """A read-only field Salesforce computes (``IsWon``): read, never written."""
    return FieldMap(canonical, (wire,), lambda w: w.get(wire), lambda _: {}, read_only=True)


def picklist(entity: str, canonical: str, wire: str, labels: Mapping[str, str]) -> FieldMap:
    """A picklist whose labels (``"Net 30"``) stand for canonical codes (``"net_30"``); an unknown label or
    code is a ``MappingError`` naming the table to extend."""
    codes = {code: label for label, code in labels.items()}

    def read(w: Mapping[str, Any]) -> Any:
        label = text(w.get(wire))
        if label is None:
            return None
        try:
            return labels[label]
        except KeyError:
            raise MappingError(entity, canonical, label,
                               f"{wire} label must be one of {sorted(labels)}; rename the picklist value in "
                               f"Salesforce or add it to the {entity} {canonical} table in "
                               "accord.connectors.salesforce.objects") from None

    def write(value: Any) -> dict[str, Any]:
        if value is None:
            return {wire: None}
        try:
            return {wire: codes[value]}
        except (KeyError, TypeError):
            raise MappingError(entity, canonical, value, f"expected one of {sorted(codes)}") from None

    return FieldMap(canonical, (wire,), read, write)


def date(entity: str, canonical: str, wire: str) -> FieldMap:
    """A date field: ``"YYYY-MM-DD"`` on both sides (canonical dates travel as ISO strings)."""

    def parse(value: Any, fix: str) -> str | None:
        if value in (None, ""):
            return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, str) and _DATE.fullmatch(value):
            try:
                return dt.date.fromisoformat(value).isoformat()
            except ValueError:
                pass
        raise MappingError(entity, canonical, value, fix)

    return FieldMap(canonical, (wire,),
                    lambda w: parse(w.get(wire), f"Salesforce {wire} should be a date like \"2026-03-31\"; "
                                                 "correct the record in Salesforce"),
                    lambda v: {wire: parse(v, "expected a date like \"2026-03-31\"")})


def money(entity: str, canonical: str, wire: str) -> FieldMap:
    """A currency field: a JSON number on the wire, a two-decimal string (``"125000.00"``) in Accord."""

    def read(w: Mapping[str, Any]) -> str | None:
        value = w.get(wire)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MappingError(entity, canonical, value, f"Salesforce {wire} should be a number; check the "
                                                         "field type in Setup")
        return str(Decimal(str(value)).quantize(_CENT))

    def write(value: Any) -> dict[str, Any]:
        if value is None or value == "":
            return {wire: None}
        try:
            if isinstance(value, bool):
                raise TypeError
            amount = Decimal(str(value)).quantize(_CENT)
            if not amount.is_finite():
                raise InvalidOperation
        except (InvalidOperation, TypeError, ValueError):
            raise MappingError(entity, canonical, value, "expected a decimal amount like \"125000.00\"") from None
        return {wire: float(amount)}

    return FieldMap(canonical, (wire,), read, write)
