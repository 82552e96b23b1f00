"""Field maps from configuration, applied on top of each connector's default mapping.

Each connector ships a default map for its standard objects (in code, per connector). Configuration
overrides or adds canonical fields per system and entity, and lists the wire fields it expects so
schema drift (new or vanished source fields) is counted, or refused in strict mode::

    [mappings.crm.account]
    strict = false
    expect = ["Name", "Website", "Legal_Entity__c"]          # wire fields this map knows
    [mappings.crm.account.fields]
    legal_entity = { path = "Legal_Entity__c", lookup = "legal_entities" }
    currency     = { path = "CurrencyIsoCode", default = "USD" }
    website      = { path = "Website", transform = "lower" }
    status       = { path = "Status__c", enum = { "Active" = "active", "Dormant" = "inactive" } }
    [lookups.legal_entities]
    "Acme Inc." = "US01"
    "Acme Ltd"  = "GB01"

A rule reads ``path`` (dotted for nested objects) from the wire record, then maps it through ``enum`` or
``lookup`` (wire value → canonical value; reversed on write), applies ``transform``, ``type`` conversion
(``decimal``, ``int``, ``bool``, ``date``, ``datetime`` normalised to UTC, ``str``), falls back to
``default``, or is the constant ``const``. On write the reverse applies and the result is merged into
the connector's payload at ``path``; ``write = false`` makes a field read-only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

Transform = Literal["lower", "upper", "strip", "title"]
FieldType = Literal["str", "decimal", "int", "bool", "date", "datetime"]


class FieldRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: str | None = None
    const: Any = None
    default: Any = None
    enum: dict[str, str] | None = None
    lookup: str | None = None
    transform: Transform | None = None
    type: FieldType | None = None
    write: bool = True


class EntityMap(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    fields: dict[str, FieldRule] = {}
    strict: bool = False
    expect: list[str] = []


class MapError(ValueError):
    """A value the configured map cannot convert: names the field, the value and the fix."""


def _get(wire: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = wire
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _set(out: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        out = out.setdefault(part, {})
    out[parts[-1]] = value


def _convert(name: str, rule: FieldRule, value: Any) -> Any:
    if value is None or rule.type is None:
        return value
    try:
        if rule.type == "decimal":
            return format(Decimal(str(value)).normalize(), "f")
        if rule.type == "int":
            return int(value)
        if rule.type == "bool":
            return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "y")
        if rule.type == "date":
            return dt.date.fromisoformat(str(value)[:10]).isoformat()
        if rule.type == "datetime":
            stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
            return stamp.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return str(value)
    except (ValueError, InvalidOperation) as exc:
        raise MapError(f"{name}: cannot convert {value!r} to {rule.type}; fix the source value or the "
                       f"map's `type`") from exc


_TRANSFORMS: dict[Transform, Callable[[str], str]] = {
    "lower": str.lower, "upper": str.upper, "strip": str.strip, "title": str.title}


def _transform(rule: FieldRule, value: Any) -> Any:
    if rule.transform is None or not isinstance(value, str):
        return value
    return _TRANSFORMS[rule.transform](value)


def read_field(name: str, rule: FieldRule, wire: Mapping[str, Any], lookups: Mapping[str, Mapping[str, str]]) -> Any:
    """The canonical value of field ``name`` in ``wire`` under ``rule``."""
    if rule.path is None:
        return rule.const
    found, value = _get(wire, rule.path)
    if not found or value is None:
        return rule.default
    table = rule.enum if rule.enum is not None else (lookups.get(rule.lookup) if rule.lookup else None)
    if table is not None:
        if str(value) not in table:
            source = "enum" if rule.enum is not None else f"lookup `{rule.lookup}`"
            raise MapError(f"{name}: {value!r} (from {rule.path}) is not in the {source}; add it to the map")
        value = table[str(value)]
    return _convert(name, rule, _transform(rule, value))


def write_field(name: str, rule: FieldRule, value: Any, lookups: Mapping[str, Mapping[str, str]]
                ) -> tuple[str, Any] | None:
    """(wire path, wire value) for canonical ``value``; ``None`` when the field is not written."""
    if rule.path is None or not rule.write:
        return None
    table = rule.enum if rule.enum is not None else (lookups.get(rule.lookup) if rule.lookup else None)
    if table is not None and value is not None:
        reverse = {v: k for k, v in table.items()}
        if value not in reverse:
            raise MapError(f"{name}: {value!r} has no wire value in the map's "
                           f"{'enum' if rule.enum is not None else 'lookup ' + str(rule.lookup)}; add it")
        value = reverse[value]
    return rule.path, value


class ConfiguredMap:
    """One system's and entity's configured rules, with the shared lookup tables."""

    def __init__(self, entity_map: EntityMap, lookups: Mapping[str, Mapping[str, str]]) -> None:
        self.map = entity_map
        self.lookups = lookups

    def read(self, fields: dict[str, Any], wire: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``fields`` with the configured ones recomputed from ``wire``, and the drift found (wire
        fields not expected, expected fields missing)."""
        out = dict(fields)
        for name, rule in self.map.fields.items():
            out[name] = read_field(name, rule, wire, self.lookups)
        drift: list[str] = []
        if self.map.expect:
            known = set(self.map.expect)
            drift += [f"new source field `{k}`" for k in wire if k not in known and not k.startswith("_")]
            drift += [f"expected source field `{k}` is missing" for k in known if k not in wire]
        return out, drift

    def write(self, fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(canonical fields left for the connector's default map, extra wire fields)."""
        rest = {k: v for k, v in fields.items() if k not in self.map.fields}
        wire: dict[str, Any] = {}
        for name, rule in self.map.fields.items():
            if name in fields:
                placed = write_field(name, rule, fields[name], self.lookups)
                if placed is not None:
                    _set(wire, *placed)
        return rest, wire


def configured_map(settings: Any, system: str, entity: str) -> ConfiguredMap | None:
    """The configured map of ``system``'s ``entity`` (``settings`` is an ``accord.config.Settings``)."""
    emap = settings.mappings.get(system, {}).get(entity)
    return ConfiguredMap(emap, settings.lookups) if emap is not None else None
