"""TinyLedger customers ↔ canonical accounts (its wire names are the canonical ones, plus ``accord_id``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accord.connectors.base import SourceRecord

FIELDS = ("name", "currency", "tax_id")


class TinyLedgerMapper:
    def to_canonical(self, entity: str, wire: Mapping[str, Any]) -> SourceRecord:
        assert entity == "account", entity
        fields = {} if wire.get("deleted") else {name: wire.get(name) for name in FIELDS}
        return SourceRecord(id=str(wire["id"]), version=int(wire.get("version", 0)), deleted=bool(wire.get("deleted")),
                            fields=fields, gid=wire.get("accord_id"), modified_ms=int(wire.get("updated_ms", 0)))

    def to_wire(self, entity: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in fields.items() if name in FIELDS}
