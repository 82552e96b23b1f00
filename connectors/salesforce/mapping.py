"""Salesforce sObject fields ↔ canonical fields, one table per entity.

Each entity is an ``EntityMap``: the sObject it lives in, that object's id prefix, and one ``FieldMap``
per canonical field (which wire fields it reads, how to read them, how to write them). Adding Contact or
Opportunity means adding a table, not changing the functions below.

Account:

=================  ===============================================================  ====================
canonical          Salesforce                                                       note
=================  ===============================================================  ====================
name               Name
website            Website
billing_address    BillingStreet / BillingCity / BillingState / BillingPostalCode   None when all empty
country            BillingCountryCode                                               state/country picklists
currency           CurrencyIsoCode                                                  multi-currency orgs only
tax_id             Tax_Id__c
payment_terms      Payment_Terms__c ("Net 30" ↔ "net_30")                           unknown label: error
status             (none: a live record is "active"; a deleted one is a tombstone)  not written
=================  ===============================================================  ====================

``legal_name`` is not kept in Salesforce. The Accord global id lives in the External ID field named by
the settings (``Accord_Id__c``); the version is ``SystemModstamp`` in epoch milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from accord.connectors.errors import Permanent

SYSTEM = "salesforce"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


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
# Field tables
# ------------------------------------------------------------------------------------------------

Reader = Callable[[Mapping[str, Any]], Any]
Writer = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class FieldMap:
    """One canonical field: the wire fields it is read from, and how to read and write it."""

    canonical: str
    wire: tuple[str, ...]
    read: Reader
    write: Writer
    multi_currency_only: bool = False


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


def _text(value: Any) -> Any:
    return None if value == "" else value


def _plain(canonical: str, wire: str, *, multi_currency_only: bool = False) -> FieldMap:
    return FieldMap(canonical, (wire,), lambda w: _text(w.get(wire)), lambda v: {wire: v},
                    multi_currency_only=multi_currency_only)


_ADDRESS_PARTS = (("street", "BillingStreet"), ("city", "BillingCity"), ("state", "BillingState"),
                  ("postal_code", "BillingPostalCode"))


def _read_address(wire: Mapping[str, Any]) -> dict[str, Any] | None:
    address = {part: _text(wire.get(name)) for part, name in _ADDRESS_PARTS}
    address = {part: value for part, value in address.items() if value is not None}
    return address or None


def _write_address(value: Any) -> dict[str, Any]:
    if value is None:
        return {name: None for _, name in _ADDRESS_PARTS}
    if not isinstance(value, Mapping):
        raise MappingError("account", "billing_address", value,
                           "expected a map with street, city, state, postal_code")
    return {name: _text(value.get(part)) for part, name in _ADDRESS_PARTS}


PAYMENT_TERMS_LABELS: dict[str, str] = {
    "Due on receipt": "due_on_receipt",
    "Net 15": "net_15",
    "Net 30": "net_30",
    "Net 60": "net_60",
}
_PAYMENT_TERMS_VALUES = {value: label for label, value in PAYMENT_TERMS_LABELS.items()}


def _read_terms(wire: Mapping[str, Any]) -> str | None:
    label = _text(wire.get("Payment_Terms__c"))
    if label is None:
        return None
    try:
        return PAYMENT_TERMS_LABELS[label]
    except KeyError:
        raise MappingError("account", "payment_terms", label,
                           f"Payment_Terms__c label must be one of {sorted(PAYMENT_TERMS_LABELS)}; "
                           "rename the picklist value in Salesforce or extend PAYMENT_TERMS_LABELS") from None


def _write_terms(value: Any) -> dict[str, Any]:
    if value is None:
        return {"Payment_Terms__c": None}
    try:
        return {"Payment_Terms__c": _PAYMENT_TERMS_VALUES[value]}
    except (KeyError, TypeError):
        raise MappingError("account", "payment_terms", value,
                           f"expected one of {sorted(_PAYMENT_TERMS_VALUES)}") from None


ACCOUNT = EntityMap(
    entity="account",
    sobject="Account",
    id_prefix="001",
    fields=(
        _plain("name", "Name"),
        _plain("website", "Website"),
        FieldMap("billing_address", tuple(name for _, name in _ADDRESS_PARTS), _read_address, _write_address),
        _plain("country", "BillingCountryCode"),
        _plain("currency", "CurrencyIsoCode", multi_currency_only=True),
        _plain("tax_id", "Tax_Id__c"),
        FieldMap("payment_terms", ("Payment_Terms__c",), _read_terms, _write_terms),
        # No status field in Salesforce: a live record is active; status is never written.
        FieldMap("status", (), lambda _: "active", lambda _: {}),
    ),
)

ENTITIES: dict[str, EntityMap] = {ACCOUNT.entity: ACCOUNT}


def entity_map(entity: str) -> EntityMap:
    """The table of ``entity``; an entity Salesforce does not map is a ``Permanent`` error."""
    try:
        return ENTITIES[entity]
    except KeyError:
        raise Permanent(SYSTEM, f"entity {entity!r} is not mapped for Salesforce; mapped entities: "
                                f"{sorted(ENTITIES)}", code="UNMAPPED_ENTITY") from None


def select_fields(entity: str, *, multi_currency: bool = True, external_id_field: str = "Accord_Id__c",
                  ) -> list[str]:
    """The fields a read of ``entity`` selects: ``Id``, the mapped fields and the external id field."""
    names = ["Id", *entity_map(entity).wire_fields(multi_currency)]
    return [*names, external_id_field] if external_id_field not in names else names


# ------------------------------------------------------------------------------------------------
# Conversion
# ------------------------------------------------------------------------------------------------

def to_canonical(
    entity: str,
    wire: Mapping[str, Any],
    *,
    multi_currency: bool = True,
    external_id_field: str = "Accord_Id__c",
    on_error: Callable[[MappingError], None] | None = None,
) -> tuple[dict[str, Any], str | None, int, bool]:
    """Map one queried record to ``(fields, gid, version, deleted)``.

    ``fields`` holds every mapped canonical field (None when empty). A deleted row is a tombstone: its
    fields are empty. A value that cannot be mapped raises ``MappingError``, or, when ``on_error`` is
    given, is reported to it and left out of ``fields`` (so one odd picklist value cannot stall a feed).
    """
    emap = entity_map(entity)
    modstamp = wire.get("SystemModstamp")
    if not isinstance(modstamp, str):
        raise Permanent(SYSTEM, f"{emap.sobject} {wire.get('Id')!r} has no SystemModstamp; select it in "
                                "every query", code="MAPPING_ERROR")
    version = parse_datetime_ms(modstamp)
    deleted = bool(wire.get("IsDeleted", False))
    gid = _text(wire.get(external_id_field))
    if deleted:
        return {}, gid, version, True
    fields: dict[str, Any] = {}
    for fmap in emap.active(multi_currency):
        try:
            fields[fmap.canonical] = fmap.read(wire)
        except MappingError as exc:
            if on_error is None:
                raise
            on_error(exc)
    return fields, gid, version, False


def to_wire(entity: str, fields: Mapping[str, Any], *, multi_currency: bool = True) -> dict[str, Any]:
    """The sObject fields that write exactly the canonical ``fields`` given (a sparse update).

    Canonical fields Salesforce does not keep (``legal_name``, ``status``...) are ignored. An unmappable
    value raises ``MappingError``.
    """
    out: dict[str, Any] = {}
    for fmap in entity_map(entity).active(multi_currency):
        if fmap.canonical in fields:
            out.update(fmap.write(fields[fmap.canonical]))
    return out


def written_projection(entity: str, fields: Mapping[str, Any], *, multi_currency: bool = True,
                       ) -> dict[str, Any]:
    """The canonical values Salesforce holds after writing ``fields``: the mapped subset of ``fields``,
    normalised the way a later read returns it (e.g. empty address parts dropped, status "active")."""
    wire = to_wire(entity, fields, multi_currency=multi_currency)
    out: dict[str, Any] = {}
    for fmap in entity_map(entity).active(multi_currency):
        if fmap.canonical in fields:
            out[fmap.canonical] = fmap.read(wire)
    return out
