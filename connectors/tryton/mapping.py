"""Tryton records ↔ Accord canonical fields.

=========== ================ ============================================================ ====================
canonical   Tryton model     fields                                                        Accord gid lives in
=========== ================ ============================================================ ====================
account     party.party      name; status ← active; billing_address ← first address        identifier
                             (street, city, postal_code); website ← the ``website``        ``accord:<gid>``
                             contact mechanism; tax_id ← the first other identifier        (type empty)
resource, project, task, time_entry: see ``psa``; invoice, opportunity: see ``sales``; payment: ``payments``
=========== ================ ============================================================ ====================

The wire shape the mapper reads is a party row with its x2many lists *expanded* to the sub-records
(``addresses``, ``contact_mechanisms``, ``identifiers`` as lists of dicts, as ``client`` assembles
them). The version of a record is ``coalesce(write_date, create_date)`` in epoch microseconds.
Addresses' country and subdivision are not mapped (a fresh Tryton has no countries loaded); a party
has no currency, legal name or payment terms of its own (those live on the company and accounting
modules' properties).

Stateless: nothing to survive a crash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from accord.connectors.base import SourceRecord
from accord.connectors.errors import Permanent
from accord.connectors.tryton.codec import epoch_us

SYSTEM = "tryton"
GID_PREFIX = "accord:"
RESOURCE_MARKER = "accord-resource:"  # an employee's party (``psa``): never read as an account's gid
MARKERS = (GID_PREFIX, RESOURCE_MARKER)
PARTY = "party.party"
PARTY_FIELDS = ("name", "active", "addresses", "contact_mechanisms", "identifiers", "write_date", "create_date")
ADDRESS_FIELDS = ("street", "city", "postal_code")
MECHANISM_FIELDS = ("type", "value")
IDENTIFIER_FIELDS = ("type", "code")
ACCOUNT_FIELDS = ("name", "status", "billing_address", "website", "tax_id")
MODELS = {"account": PARTY, "resource": "company.employee", "project": "project.work", "task": "project.work",
          "time_entry": "timesheet.line", "invoice": "account.invoice", "opportunity": "sale.opportunity",
          "payment": "account.move.line"}


def version_of(wire: Mapping[str, Any]) -> int:
    """``coalesce(write_date, create_date)`` as epoch microseconds (0 when neither is known)."""
    stamp = wire.get("write_date") or wire.get("create_date")
    return epoch_us(stamp) if isinstance(stamp, dt.datetime) else 0


def gid_of(identifiers: list[Mapping[str, Any]]) -> str | None:
    for ident in identifiers:
        code = str(ident.get("code") or "")
        if code.startswith(GID_PREFIX):
            return code[len(GID_PREFIX):]
    return None


def tax_identifier(identifiers: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The identifier holding the tax id: the first that is not one of Accord's markers (``accord:``,
    ``accord-resource:``)."""
    return next((i for i in identifiers if not str(i.get("code") or "").startswith(MARKERS)), None)


def website_mechanism(mechanisms: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((m for m in mechanisms if m.get("type") == "website"), None)


def _address(addresses: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    if not addresses:
        return None
    first = addresses[0]
    out = {key: first[key] for key in ADDRESS_FIELDS if first.get(key)}
    return out or None


def party_fields(wire: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical account fields of an expanded party row."""
    idents = list(wire.get("identifiers") or [])
    site = website_mechanism(list(wire.get("contact_mechanisms") or []))
    tax = tax_identifier(idents)
    return {"name": wire.get("name"), "status": "active" if wire.get("active", True) else "inactive",
            "billing_address": _address(list(wire.get("addresses") or [])),
            "website": site.get("value") if site else None, "tax_id": tax.get("code") if tax else None}


def address_values(value: Any) -> dict[str, Any]:
    """Tryton address values of a canonical ``billing_address`` (street, city, postal_code)."""
    if not isinstance(value, Mapping):
        raise Permanent(SYSTEM, f"account.billing_address {value!r} cannot be written to Tryton: expected a map "
                                "with street, city, postal_code", code="unmappable")
    return {key: value.get(key) or "" for key in ADDRESS_FIELDS}


def scalar_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The party's own columns for canonical ``fields`` (name, active)."""
    out: dict[str, Any] = {}
    if "name" in fields:
        out["name"] = fields["name"]
    if "status" in fields:
        if fields["status"] not in ("active", "inactive", None):
            raise Permanent(SYSTEM, f"account.status {fields['status']!r} cannot be written to Tryton: expected "
                                    "\"active\" or \"inactive\"", code="unmappable")
        out["active"] = fields["status"] != "inactive"
    return out


def create_values(fields: Mapping[str, Any], gid: str | None) -> dict[str, Any]:
    """``party.party.create`` values for a new party with ``fields`` (and Accord's gid marker)."""
    vals = scalar_values(fields)
    if fields.get("billing_address") is not None:
        vals["addresses"] = [["create", [address_values(fields["billing_address"])]]]
    if fields.get("website"):
        vals["contact_mechanisms"] = [["create", [{"type": "website", "value": fields["website"]}]]]
    idents = [{"type": None, "code": f"{GID_PREFIX}{gid}"}] if gid else []
    if fields.get("tax_id"):
        idents.append({"type": None, "code": fields["tax_id"]})
    if idents:
        vals["identifiers"] = [["create", idents]]
    return vals


def x2many(current: Mapping[str, Any] | None, value: Any, build: dict[str, Any] | None) -> list[Any] | None:
    """One x2many operation: write the current sub-record, create one, or delete it (value unset)."""
    if value is None or value == "":
        return [["delete", [current["id"]]]] if current else None
    if current:
        return [["write", [current["id"]], build]]
    return [["create", [build]]]


def update_values(fields: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """``party.party.write`` values that make the expanded party ``current`` hold ``fields``."""
    vals = scalar_values(fields)
    if "billing_address" in fields and fields["billing_address"] is not None:
        addresses = list(current.get("addresses") or [])
        ops = x2many(addresses[0] if addresses else None, fields["billing_address"],
                      address_values(fields["billing_address"]))
        if ops:
            vals["addresses"] = ops
    if "website" in fields:
        site = website_mechanism(list(current.get("contact_mechanisms") or []))
        ops = x2many(site, fields["website"], {"type": "website", "value": fields["website"]})
        if ops:
            vals["contact_mechanisms"] = ops
    if "tax_id" in fields:
        tax = tax_identifier(list(current.get("identifiers") or []))
        ops = x2many(tax, fields["tax_id"], {"code": fields["tax_id"]})
        if ops:
            vals["identifiers"] = ops
    return vals


def to_canonical(entity: str, wire: Mapping[str, Any]) -> SourceRecord:
    """One expanded party row as a ``SourceRecord`` of ``entity`` (``account``)."""
    version = version_of(wire)
    return SourceRecord(id=str(wire["id"]), version=version, fields=party_fields(wire),
                        gid=gid_of(list(wire.get("identifiers") or [])), modified_ms=version // 1000)


class TrytonMapper:
    """The ``Mapper`` of the Tryton plug-in (``accord map``). A PSA row given as read (not expanded by the
    connector) maps without the references it would need another read for (a task's project, a time
    entry's task and project)."""

    def to_canonical(self, entity: str, wire: Mapping[str, Any]) -> SourceRecord:
        model_for(entity)
        if entity == "account":
            return to_canonical(entity, wire)
        from accord.connectors.tryton import psa, sales

        row = dict(wire)
        version = psa.version_of(row)
        if entity == "invoice":
            fields, gid = sales.invoice_fields(row), None
        elif entity == "payment":
            from accord.connectors.tryton.payments import payment_fields

            fields, gid = payment_fields(row), None
        elif entity == "opportunity":
            fields, gid = sales.opportunity_fields(row), psa.comment_gid(row.get("comment"))
        elif entity == "resource":
            fields, gid = psa.employee_fields(row, dt.date.today()), psa.employee_gid(row.get("accord_party") or {})
        elif entity == "time_entry":
            fields, gid = psa.line_fields(row), psa.description_gid(row.get("description"))
        else:
            fields, gid = psa.work_fields(entity, row), psa.comment_gid(row.get("comment"))
        return SourceRecord(id=str(row.get("id")), version=version, fields=fields, gid=gid, modified_ms=version // 1000)

    def to_wire(self, entity: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        model_for(entity)
        from accord.connectors.tryton import psa

        wire: dict[str, Any]
        if entity == "time_entry":
            wire = psa.line_values(fields)
            return wire
        if entity in ("project", "task"):
            wire = psa.work_values(entity, fields, {})
            return wire
        if entity == "resource":
            return {k: v for k, v in fields.items() if k in ("name", "email")}
        if entity == "opportunity":
            from accord.connectors.tryton import sales

            return {**sales.opportunity_values({k: v for k, v in fields.items() if k != "currency"}, {}),
                    **({"state": fields["stage"]} if fields.get("stage") is not None else {})}
        if entity in ("invoice", "payment"):
            raise Permanent(SYSTEM, f"{entity} is read only in Tryton: Accord never writes one", code="read_only")
        return create_values(fields, None)


def model_for(entity: str) -> str:
    try:
        return MODELS[entity]
    except KeyError:
        raise Permanent(SYSTEM, f"entity {entity!r} is not mapped for Tryton; mapped entities are "
                                f"{sorted(MODELS)}", code="unmapped") from None
