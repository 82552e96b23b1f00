"""Building blocks of the QuickBooks mapping: the per-entity ``EntitySpec``, ``MappingError`` and the
value converters every entity shares (text, ids and references, money and hours as decimal strings,
dates, the ``accord:<gid>`` marker line and other ``<key>:<value>`` marker lines).

Canonical conventions: decimals travel as strings (money quantized to cents, ``"150.00"``; hours
normalized, ``"7.5"``), dates as ``YYYY-MM-DD``, references as the referenced record's QBO ``Id``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from accord.connectors.errors import Permanent

SYSTEM = "quickbooks"
DELETED_VERSION = 2**62  # a CDC "Deleted" stub has no SyncToken; it outranks every live version
CENT = Decimal("0.01")
SALES = "SalesItemLineDetail"  # the DetailType (and the detail's key) of a transaction's sales line

_GID_LINE = re.compile(r"^accord:(\S+)\s*$", re.MULTILINE)
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class MappingError(Permanent):
    """A value that has no counterpart on the other side (e.g. a payment term Accord does not know)."""

    def __init__(self, field: str, value: Any, fix: str):
        super().__init__(SYSTEM, f"cannot map {field} value {value!r}: {fix}", code="mapping")
        self.field = field
        self.value = value


class _NotHeld:
    def __repr__(self) -> str:
        return "NOT_HELD"


# What a reader returns when this record holds no value for its field: ``to_canonical`` leaves the field
# out of ``fields``, so the other systems' value stands (``None`` would clear it there). An open estimate
# says nothing about the opportunity's stage, for example.
NOT_HELD: Any = _NotHeld()

Reader = Callable[[Mapping[str, Any]], Any]  # a canonical value, None (cleared) or NOT_HELD
Writer = Callable[[Any, dict[str, Any], Mapping[str, Any]], None]  # (value, out, current wire)
Accepts = Callable[[Mapping[str, Any]], bool]
Lookup = tuple[str, str]  # (QBO entity name, Id) of a record a write reads first: ("Customer", "7")
Found = Mapping[Lookup, Mapping[str, Any] | None]  # what those reads returned (None: no such record)
Lookups = Callable[[Mapping[str, Any], Mapping[str, Any]], set[Lookup]]  # (fields, current) → to read
Composer = Callable[[Mapping[str, Any], dict[str, Any], Mapping[str, Any], Found], None]  # (fields, out, current, found)


def customer_lookup(ident: str | None) -> set[Lookup]:
    """The Customer a write reads first, when ``ident`` is its QBO Id (a global id is not read: the
    account writer reports it)."""
    return {("Customer", ident)} if ident is not None and ident.isdigit() else set()


def looked_up(found: Found, key: Lookup, field: str, value: Any, why: str) -> Mapping[str, Any] | None:
    """What the write's read of ``key`` returned (``None``: QuickBooks has no such record). A key the
    entity's ``lookups`` did not name is a MappingError saying ``why`` the record is read."""
    if key not in found:
        raise MappingError(field, value, f"{why}, which the connector reads before it writes "
                                         f"(GET /{key[0].lower()}/<id>)")
    return found[key]


def _no_lookups(_fields: Mapping[str, Any], _current: Mapping[str, Any]) -> set[Lookup]:
    return set()


def _always(_: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class EntitySpec:
    """How one canonical entity lives in QBO.

    ``where`` narrows every query (e.g. ``Job = false``: accounts are customers that are not projects)
    and ``accepts`` applies the same test to CDC objects, which cannot be filtered server-side (a CDC
    ``Deleted`` stub is always accepted). ``on_create`` is the wire every create starts from (keys are
    settings-dependent account ids, so it receives the create defaults the connector was configured
    with). ``active_field`` is the canonical field that reads ``Active`` (what deactivating a name-list
    record changes). A write that depends on other records (a task's Item Name starts with its
    project's DisplayName) names them in ``lookups``; the writer reads them (once per write call) and
    ``compose`` finishes the body with them, after the per-field ``writers``.
    """

    canonical: str
    qbo: str  # entity name in JSON bodies, queries and webhooks
    path: str  # REST path segment: /v3/company/{realm}/{path}
    cdc: str  # name in /cdc?entities=
    name_list: bool  # name lists (Customer, Employee, Item) cannot be deleted: deactivate with Active=false
    gid_field: str  # free-text field that carries the ``accord:<gid>`` marker line
    readers: Mapping[str, Reader]
    writers: Mapping[str, Writer]
    needs_current: frozenset[str] = frozenset()  # canonical fields whose write merges into the current value
    where: str | None = None
    accepts: Accepts = _always
    on_create: Callable[[Mapping[str, str]], dict[str, Any]] = lambda _: {}
    active_field: str | None = None
    lookups: Lookups = _no_lookups
    compose: Composer | None = None


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------

def text(value: Any) -> str | None:
    if value is None:
        return None
    out = str(value).strip()
    return out or None


def ref_value(wire: Mapping[str, Any], name: str) -> str | None:
    ref = wire.get(name)
    return text(ref.get("value")) if isinstance(ref, Mapping) else None


def parse_gid(notes: Any) -> str | None:
    """The Accord gid from a Notes/PrivateNote text (a line ``accord:<gid>``), if present."""
    if not isinstance(notes, str):
        return None
    match = _GID_LINE.search(notes)
    return match.group(1) if match else None


def with_gid(notes: str | None, gid: str) -> str:
    """``notes`` with its marker line set to ``gid`` (other note text is kept)."""
    kept = [line for line in (notes or "").splitlines() if not _GID_LINE.match(line)]
    return "\n".join([*kept, f"accord:{gid}"])


def without_gid(notes: Any) -> str | None:
    """A free-text field as the user wrote it: the Accord marker line removed."""
    if not isinstance(notes, str):
        return None
    return text("\n".join(line for line in notes.splitlines() if not _GID_LINE.match(line)))


def marker(notes: Any, key: str) -> str | None:
    """The value of a ``<key>:<value>`` marker line in a free-text field, if present."""
    if not isinstance(notes, str):
        return None
    prefix = f"{key}:"
    for line in notes.splitlines():
        if line.startswith(prefix):
            return text(line[len(prefix):])
    return None


def with_marker(notes: str | None, key: str, value: str) -> str:
    """``notes`` with its ``<key>:`` marker line set to ``value`` (in place; appended when absent)."""
    lines = (notes or "").splitlines()
    line = f"{key}:{value}"
    at = next((i for i, x in enumerate(lines) if x.startswith(f"{key}:")), None)
    if at is None:
        return "\n".join([*lines, line])
    return "\n".join([*lines[:at], line, *(x for x in lines[at + 1:] if not x.startswith(f"{key}:"))])


def sales_lines(wire: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The sales lines of a transaction (its subtotal and other lines left out)."""
    return [x for x in wire.get("Line") or [] if isinstance(x, Mapping) and x.get("DetailType") == SALES]


def is_project(wire: Mapping[str, Any]) -> bool:
    """A Customer that is a sub-customer (job) or a QBO project."""
    return bool(wire.get("Job")) or bool(wire.get("IsProject"))


def parse_time_ms(value: Any) -> int:
    """Epoch milliseconds of a QBO timestamp such as ``2026-04-01T09:10:00-07:00`` (0 if absent)."""
    if not isinstance(value, str) or not value:
        return 0
    stamp = dt.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp() * 1000)


def money(name: str, value: Any) -> str | None:
    """A QBO amount as a canonical decimal string in cents (``3000`` → ``"3000.00"``)."""
    amount = _decimal(name, value)
    return None if amount is None else str(amount.quantize(CENT))


def plain_decimal(amount: Decimal) -> str:
    """``7.50`` → ``"7.5"``, ``8.00`` → ``"8"`` (never an exponent)."""
    out = format(amount.normalize(), "f")
    return "0" if out in ("-0", "") else out


def date(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise MappingError(name, value, "expected a date YYYY-MM-DD (fix the date in QuickBooks)") from None


def _decimal(name: str, value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise MappingError(name, value, "expected a decimal number such as \"150.00\"") from None
    if not amount.is_finite():
        raise MappingError(name, value, "expected a finite decimal number")
    return amount


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------

def number(name: str, value: Any) -> float | int | None:
    """A canonical decimal as a JSON number for QBO (``"8"`` → ``8``, ``"150.5"`` → ``150.5``)."""
    amount = _decimal(name, value)
    if amount is None:
        return None
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def wire_date(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise MappingError(name, value, "send a date as YYYY-MM-DD") from None


def currency_code(value: Any) -> str | None:
    """An ISO 4217 currency code (``None``: none sent); anything else is a MappingError."""
    code = text(value)
    if code is not None and not _CURRENCY.match(code):
        raise MappingError("currency", value, "send an ISO 4217 code such as \"USD\"")
    return code


def ref(name: str, value: Any) -> dict[str, str] | None:
    """A reference to another QBO record: the canonical field holds its native ``Id`` (digits)."""
    ident = text(value)
    if ident is None:
        return None
    if not ident.isdigit():
        raise MappingError(name, value, "a QuickBooks reference is the record's numeric Id; the daemon must "
                                        "translate the global id through its xref before writing")
    return {"value": ident}


def _setter(qbo: str, convert: Callable[[Any], Any]) -> Writer:
    """A writer of the wire field ``qbo``: the canonical value, converted."""
    def write(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
        out[qbo] = convert(value)
    return write


def set_plain(qbo: str) -> Writer:
    return _setter(qbo, text)


def set_ref(qbo: str, name: str) -> Writer:
    return _setter(qbo, lambda value: ref(name, value))


def set_number(qbo: str, name: str) -> Writer:
    return _setter(qbo, lambda value: number(name, value))


def set_date(qbo: str, name: str) -> Writer:
    return _setter(qbo, lambda value: wire_date(name, value))


def set_bool(qbo: str, name: str) -> Writer:
    def write(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
        if not isinstance(value, bool):
            raise MappingError(name, value, "send true or false")
        out[qbo] = value
    return write


def set_note_keeping_gid(qbo: str) -> Writer:
    """Write a free-text field that also carries the Accord marker line (the marker survives)."""
    def write(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
        gid = parse_gid(current.get(qbo))
        note = text(value)
        out[qbo] = with_gid(note, gid) if gid else note
    return write


def reads_active(wire: Mapping[str, Any]) -> bool:
    return bool(wire.get("Active", True))

