"""Salesforce sObject fields ↔ canonical fields: the conversion functions over the tables in ``objects``.

The tables (Account, Contact, Opportunity, Invoice__c, Payment__c) and what each canonical field maps to
are documented in ``accord.connectors.salesforce.objects``; the field kinds and wire helpers live in
``fieldmap`` and are re-exported here. The Accord global id lives in the External ID field named by the settings
(``Accord_Id__c``); the version is ``SystemModstamp`` in epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from accord.connectors.base import SourceRecord, mapped_entity
from accord.connectors.errors import Permanent
from accord.connectors.salesforce.fieldmap import (
    SYSTEM,
    EntityMap,
    FieldMap,
    MappingError,
    format_datetime_ms,
    parse_datetime_ms,
    soql_datetime,
    soql_string,
    text,
)
from accord.connectors.salesforce.objects import (
    ACCOUNT,
    BILLING_MODEL_LABELS,
    CONTACT,
    ENTITIES,
    INVOICE,
    INVOICE_STATUS_LABELS,
    OPPORTUNITY,
    PAYMENT,
    PAYMENT_TERMS_LABELS,
)

__all__ = ["ACCOUNT", "BILLING_MODEL_LABELS", "CONTACT", "ENTITIES", "INVOICE", "INVOICE_STATUS_LABELS",
           "OPPORTUNITY", "PAYMENT", "PAYMENT_TERMS_LABELS",
           "EntityMap", "FieldMap", "MappingError", "entity_map", "format_datetime_ms", "parse_datetime_ms",
           "select_fields", "sent_values", "soql_datetime", "soql_string", "to_canonical", "to_wire", "written_projection"]


def entity_map(entity: str) -> EntityMap:
    """The table of ``entity``; an entity Salesforce does not map is a ``Permanent`` error."""
    return mapped_entity(ENTITIES, entity, system=SYSTEM, name="Salesforce", code="UNMAPPED_ENTITY")


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
    gid = text(wire.get(external_id_field))
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

    Canonical fields Salesforce does not keep (``legal_name``, ``status``...) and fields it derives
    (``is_won``) are ignored: they are never written. An unmappable value raises ``MappingError``.
    """
    out: dict[str, Any] = {}
    for fmap in entity_map(entity).active(multi_currency):
        if fmap.canonical in fields:
            out.update(fmap.write(fields[fmap.canonical]))
    return out


def written_projection(entity: str, fields: Mapping[str, Any], *, multi_currency: bool = True,
                       ) -> dict[str, Any]:
    """The canonical values Salesforce holds after writing ``fields``: the mapped subset of ``fields``,
    normalised the way a later read returns it (e.g. empty address parts dropped, status "active").
    Derived fields (``is_won``) are left out: the write does not set them, the next read reports them."""
    wire = to_wire(entity, fields, multi_currency=multi_currency)
    out: dict[str, Any] = {}
    for fmap in entity_map(entity).active(multi_currency):
        if fmap.canonical in fields and not fmap.read_only:
            out[fmap.canonical] = fmap.read(wire)
    return out


def sent_values(entity: str, names: Sequence[str], wire: Mapping[str, Any]) -> list[str]:
    """What Accord sent in the wire fields ``names`` (those a per-record error points at), in canonical
    terms: ``["payment.invoice = 'a0B5g00000000AAA'"]``, ``"payment.invoice is empty"`` for a null, or
    ``"payment.invoice was not sent"``. Wire fields no table maps (``Id``) are left out."""
    out: list[str] = []
    for name in names:
        fmap = next((f for f in entity_map(entity).fields if name in f.wire), None)
        if fmap is None:
            continue
        label = f"{entity}.{fmap.canonical}"
        value = wire.get(name)
        shown = (f"{label} was not sent" if name not in wire else f"{label} is empty" if value is None
                 else f"{label} = {value!r}")
        if shown not in out:
            out.append(shown)
    return out


class SalesforceMapper:
    """The ``Mapper`` of one org (whether it is multi-currency, which field holds the Accord id)."""

    def __init__(self, *, multi_currency: bool = True, external_id_field: str = "Accord_Id__c") -> None:
        self.multi_currency = multi_currency
        self.external_id_field = external_id_field

    def to_canonical(self, entity: str, wire: Mapping[str, Any]) -> SourceRecord:
        fields, gid, version, deleted = to_canonical(entity, wire, multi_currency=self.multi_currency,
                                                     external_id_field=self.external_id_field)
        return SourceRecord(id=str(wire.get("Id") or ""), version=version, fields=fields, gid=gid, deleted=deleted)

    def to_wire(self, entity: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return to_wire(entity, fields, multi_currency=self.multi_currency)
