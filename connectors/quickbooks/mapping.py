"""QuickBooks Online wire shapes ↔ Accord canonical fields: the registry ``ENTITIES`` and the
conversions the connector uses (``to_canonical``, ``to_wire``, ``project``).

``ENTITIES`` is the per-entity table (QBO entity name, REST path, CDC name, whether it is a name list
that can only be deactivated, which field carries the Accord gid, query filter, field converters).

=========== ===================================== =========================================================
canonical   QuickBooks object                     module (field table in its docstring)
=========== ===================================== =========================================================
account     Customer that is not a job/project    here
project     Customer with Job or IsProject true   ``mapping_work``
resource    Employee                              ``mapping_work``
task        Item of Type "Service"                ``mapping_task`` (table row in ``mapping_work``)
time_entry  TimeActivity (NameOf "Employee")      ``mapping_work``
expense     Purchase (PaymentType "Cash")         ``mapping_work``
invoice     Invoice                               ``mapping_billing``
payment     Payment                               ``mapping_billing``
opportunity Estimate                              ``mapping_estimate``
=========== ===================================== =========================================================

References between records (``project.account``, ``time_entry.project`` ...) are native QBO ids.
Accounts and projects share the Customer table: account queries add ``Job = false``, project queries
``Job = true``, and CDC objects (unfiltered server-side) are split by ``EntitySpec.accepts``.

Canonical ``account`` ↔ ``Customer``::

    name            DisplayName                     legal_name     CompanyName
    website         WebAddr.URI                     currency       CurrencyRef.value
    billing_address BillAddr.Line1/City/CountrySubDivisionCode/PostalCode → street/city/state/postal_code
    country         BillAddr.Country (ISO alpha-2; names and alpha-3 codes are read too)
    tax_id          PrimaryTaxIdentifier            payment_terms  SalesTermRef.value via TERMS
    status          Active (true → "active")        gid            a line ``accord:<gid>`` in Notes

Currency (a multicurrency company, as the sandbox is): a Customer's ``CurrencyRef`` is set when it is
created and never changes (QBO refuses another one with 6000, so a changed account currency is an
exception, not a silent difference); sales forms and payments take their customer's; an expense's
Purchase is written in the expense's currency. A company without multicurrency holds its home currency
only: there, leave ``currency`` out for the ERP (``entities.<name>.exclude``) rather than have every
foreign value read back as the home currency (a false governance violation).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from accord.connectors.base import SourceRecord, mapped_entity
from accord.connectors.quickbooks.mapping_base import (
    DELETED_VERSION,
    NOT_HELD,
    SYSTEM,
    EntitySpec,
    Found,
    MappingError,
    Reader,
    Writer,
    is_project,
    parse_gid,
    parse_time_ms,
    with_gid,
)
from accord.connectors.quickbooks.mapping_base import ref_value as _ref_value
from accord.connectors.quickbooks.mapping_base import text as _text
from accord.connectors.quickbooks.mapping_billing import BILLING_SPECS
from accord.connectors.quickbooks.mapping_estimate import ESTIMATE_SPECS
from accord.connectors.quickbooks.mapping_work import WORK_SPECS

__all__ = ["DELETED_VERSION", "ENTITIES", "NOT_HELD", "SYSTEM", "EntitySpec", "MappingError", "parse_gid",
           "project", "spec_for", "to_canonical", "to_wire", "with_gid"]

# QBO term id → canonical payment terms (the ids a new company is created with)
TERMS: dict[str, str] = {"1": "due_on_receipt", "2": "net_15", "3": "net_30", "4": "net_60"}
TERM_IDS: dict[str, str] = {v: k for k, v in TERMS.items()}

# ISO alpha-2 → (alpha-3, English names a user may type in QBO's free-text Country field)
COUNTRIES: dict[str, tuple[str, ...]] = {
    "US": ("USA", "United States", "United States of America", "U.S.", "U.S.A."),
    "CA": ("CAN", "Canada"), "MX": ("MEX", "Mexico"), "BR": ("BRA", "Brazil"), "AR": ("ARG", "Argentina"),
    "GB": ("GBR", "United Kingdom", "UK", "Great Britain", "England", "Scotland", "Wales"),
    "IE": ("IRL", "Ireland"), "FR": ("FRA", "France"), "DE": ("DEU", "Germany", "Deutschland"),
    "NL": ("NLD", "Netherlands", "The Netherlands", "Holland"), "BE": ("BEL", "Belgium"),
    "LU": ("LUX", "Luxembourg"), "CH": ("CHE", "Switzerland"), "AT": ("AUT", "Austria"),
    "ES": ("ESP", "Spain"), "PT": ("PRT", "Portugal"), "IT": ("ITA", "Italy"), "DK": ("DNK", "Denmark"),
    "SE": ("SWE", "Sweden"), "NO": ("NOR", "Norway"), "FI": ("FIN", "Finland"), "PL": ("POL", "Poland"),
    "CZ": ("CZE", "Czech Republic", "Czechia"), "AU": ("AUS", "Australia"), "NZ": ("NZL", "New Zealand"),
    "SG": ("SGP", "Singapore"), "HK": ("HKG", "Hong Kong"), "JP": ("JPN", "Japan"), "IN": ("IND", "India"),
    "CN": ("CHN", "China"), "ZA": ("ZAF", "South Africa"), "AE": ("ARE", "United Arab Emirates", "UAE"),
    "IL": ("ISR", "Israel"), "KR": ("KOR", "South Korea", "Korea"),
}
_COUNTRY_LOOKUP: dict[str, str] = {
    re.sub(r"[.\s]", "", alias).casefold(): code
    for code, aliases in COUNTRIES.items() for alias in (code, *aliases)
}

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def country_code(value: Any) -> str | None:
    """ISO alpha-2 for a QBO Country text: an alpha-2 or alpha-3 code or a known English name."""
    text = _text(value)
    if text is None:
        return None
    code = _COUNTRY_LOOKUP.get(re.sub(r"[.\s]", "", text).casefold())
    if code is None and re.fullmatch(r"[A-Za-z]{2}", text):
        code = text.upper()
    if code is None:
        raise MappingError("country", text, "use an ISO 3166 alpha-2 code (e.g. \"US\") in BillAddr.Country")
    return code


# ------------------------------------------------------------------------------------------------
# Customer ↔ account
# ------------------------------------------------------------------------------------------------

_ADDRESS_PARTS = (("street", "Line1"), ("city", "City"), ("state", "CountrySubDivisionCode"),
                  ("postal_code", "PostalCode"))


def _read_address(wire: Mapping[str, Any]) -> dict[str, str] | None:
    bill = wire.get("BillAddr") or {}
    parts = {key: _text(bill.get(qbo)) for key, qbo in _ADDRESS_PARTS}
    address = {k: v for k, v in parts.items() if v is not None}
    return address or None


def _read_terms(wire: Mapping[str, Any]) -> str | None:
    term_id = _ref_value(wire, "SalesTermRef")
    if term_id is None:
        return None
    if term_id not in TERMS:
        raise MappingError("payment_terms", term_id,
                           f"SalesTermRef {term_id!r} is not one of the known terms {sorted(TERMS)}; "
                           "add it to quickbooks.mapping.TERMS or pick a standard term in QuickBooks")
    return TERMS[term_id]


CUSTOMER_READERS: dict[str, Reader] = {
    "name": lambda w: _text(w.get("DisplayName")),
    "legal_name": lambda w: _text(w.get("CompanyName")),
    "website": lambda w: _text((w.get("WebAddr") or {}).get("URI")),
    "billing_address": _read_address,
    "country": lambda w: country_code((w.get("BillAddr") or {}).get("Country")),
    "currency": lambda w: _ref_value(w, "CurrencyRef"),
    "tax_id": lambda w: _text(w.get("PrimaryTaxIdentifier")),
    "payment_terms": _read_terms,
    "status": lambda w: "active" if w.get("Active", True) else "inactive",
}


def _bill_addr(out: dict[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The BillAddr being written, started from the current one: QBO replaces the whole aggregate."""
    if "BillAddr" not in out:
        out["BillAddr"] = dict(current.get("BillAddr") or {})
    bill: dict[str, Any] = out["BillAddr"]
    return bill


def _write_name(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    name = _text(value)
    if name is None:
        raise MappingError("name", value, "QuickBooks requires a Customer DisplayName; send a non-empty name")
    out["DisplayName"] = name


def _write_address(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise MappingError("billing_address", value, "send a dict with street/city/state/postal_code")
    bill = _bill_addr(out, current)
    for key, qbo in _ADDRESS_PARTS:
        part = _text((value or {}).get(key))
        if part is None:
            bill.pop(qbo, None)
        else:
            bill[qbo] = part


def _write_country(value: Any, out: dict[str, Any], current: Mapping[str, Any]) -> None:
    bill = _bill_addr(out, current)
    code = _text(value)
    if code is None:
        bill.pop("Country", None)
    elif re.fullmatch(r"[A-Z]{2}", code):
        bill["Country"] = code
    else:
        raise MappingError("country", value, "send an ISO 3166 alpha-2 code such as \"US\"")


def _write_currency(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    code = _text(value)
    if code is not None and not _CURRENCY.match(code):
        raise MappingError("currency", value, "send an ISO 4217 code such as \"USD\"")
    out["CurrencyRef"] = {"value": code} if code else None


def _write_terms(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    if value is None:
        out["SalesTermRef"] = None
        return
    if value not in TERM_IDS:
        raise MappingError("payment_terms", value, f"use one of {sorted(TERM_IDS)}")
    out["SalesTermRef"] = {"value": TERM_IDS[value]}


def _write_status(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
    if value not in ("active", "inactive"):
        raise MappingError("status", value, "use \"active\" or \"inactive\"")
    out["Active"] = value == "active"


def _plain(qbo: str) -> Writer:
    def write(value: Any, out: dict[str, Any], _: Mapping[str, Any]) -> None:
        out[qbo] = _text(value)
    return write


CUSTOMER_WRITERS: dict[str, Writer] = {
    "name": _write_name,
    "legal_name": _plain("CompanyName"),
    "website": lambda v, out, _: out.__setitem__("WebAddr", {"URI": _text(v)} if _text(v) else None),
    "billing_address": _write_address,
    "country": _write_country,
    "currency": _write_currency,
    "tax_id": _plain("PrimaryTaxIdentifier"),
    "payment_terms": _write_terms,
    "status": _write_status,
}

ACCOUNT = EntitySpec(canonical="account", qbo="Customer", path="customer", cdc="Customer", name_list=True,
                     gid_field="Notes", readers=CUSTOMER_READERS, writers=CUSTOMER_WRITERS,
                     needs_current=frozenset({"billing_address", "country"}), where="Job = false",
                     accepts=lambda wire: not is_project(wire), active_field="status")

ENTITIES: dict[str, EntitySpec] = {
    spec.canonical: spec for spec in (ACCOUNT, *WORK_SPECS, *BILLING_SPECS, *ESTIMATE_SPECS)}


def spec_for(entity: str) -> EntitySpec:
    return mapped_entity(ENTITIES, entity, system=SYSTEM, name="QuickBooks")


# ------------------------------------------------------------------------------------------------
# public conversions
# ------------------------------------------------------------------------------------------------

def to_canonical(entity: str, wire: Mapping[str, Any],
                 on_error: Callable[[MappingError], None] | None = None) -> SourceRecord:
    """A QBO object (or a CDC ``"status":"Deleted"`` stub) as a ``SourceRecord``. A field whose reader
    answers ``NOT_HELD`` is left out of ``fields``.

    An unmappable field raises ``MappingError``; with ``on_error`` it is reported there instead, left out
    of ``fields`` (so it neither propagates nor clears the value elsewhere) and named in ``error``.
    """
    spec = spec_for(entity)
    meta = wire.get("MetaData") or {}
    modified = parse_time_ms(meta.get("LastUpdatedTime"))
    if wire.get("status") == "Deleted":
        return SourceRecord(id=str(wire["Id"]), version=DELETED_VERSION, deleted=True, modified_ms=modified)
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for name, read in spec.readers.items():
        try:
            value = read(wire)
            if value is not NOT_HELD:
                fields[name] = value
        except MappingError as exc:
            if on_error is None:
                raise
            on_error(exc)
            problems.append(exc.message)
    return SourceRecord(id=str(wire["Id"]), version=int(wire.get("SyncToken", 0)), fields=fields, raw=dict(wire),
                        gid=parse_gid(wire.get(spec.gid_field)), modified_ms=modified,
                        error=f"{spec.qbo} {wire['Id']}: {'; '.join(problems)}" if problems else None)


def to_wire(entity: str, fields: Mapping[str, Any], current: Mapping[str, Any] | None = None,
            found: Found | None = None) -> dict[str, Any]:
    """The QBO body parts for ``fields`` (only those; a ``None`` value clears the field).

    ``current`` is the record as QBO holds it now; writers of aggregates QBO replaces whole (BillAddr)
    start from it so parts Accord does not own survive. Canonical fields QBO does not map are ignored.
    ``found`` holds the records the entity's ``lookups`` asked for (a task's project Customer), read by
    the connector before it writes.
    """
    spec = spec_for(entity)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        writer = spec.writers.get(name)
        if writer is not None:
            writer(value, out, current or {})
    if spec.compose is not None:
        spec.compose(fields, out, current or {}, found or {})
    if out.get("BillAddr") == {}:
        out["BillAddr"] = None
    return out


def project(entity: str, wire: Mapping[str, Any], names: set[str] | frozenset[str]) -> dict[str, Any]:
    """The canonical values of ``names`` as ``wire`` holds them (what a write left in the target)."""
    record = to_canonical(entity, wire, on_error=lambda _: None)
    return {k: v for k, v in record.fields.items() if k in names}


class QuickBooksMapper:
    """The ``Mapper`` of QuickBooks Online (the same for every company)."""

    def to_canonical(self, entity: str, wire: Mapping[str, Any]) -> SourceRecord:
        return to_canonical(entity, wire)

    def to_wire(self, entity: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return to_wire(entity, fields)
