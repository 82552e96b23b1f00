"""``accord map``: try a mapping without running the daemon.

Reads one JSON record on stdin and prints the other side as JSON: a system's wire record → the canonical
record (the connector's default map, then the configured ``mappings``, in canonical spelling), or with
``--to`` a canonical record → the wire fields the connector would send.
"""

from __future__ import annotations

import difflib
import json
import sys
from typing import Any

import msgspec

from accord.config.load import load
from accord.config.mapping import MapError, configured_map
from accord.config.settings import Settings
from accord.connectors.base import deep_merge
from accord.connectors.errors import ConnectorError
from accord.connectors.registry import spec_of
from accord.model.entities import normalise_fields


def run_map(path: str, system: str, entity: str, *, to_wire: bool) -> int:
    settings = load(path)
    if system not in settings.systems:
        print(f"--system: `{system}` is not configured; expected one of {', '.join(settings.systems)}", file=sys.stderr)
        return 2
    held = settings.entities_of(system)
    if entity not in held:
        close = difflib.get_close_matches(entity, held, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        print(f"--entity: `{entity}` is not an entity of {system}{hint}; expected one of {', '.join(held) or 'none'}",
              file=sys.stderr)
        return 2
    try:
        record = json.load(sys.stdin)
    except json.JSONDecodeError as exc:
        print(f"stdin: not JSON ({exc}); pipe one JSON object", file=sys.stderr)
        return 2
    if not isinstance(record, dict):
        print("stdin: expected one JSON object", file=sys.stderr)
        return 2
    try:
        out = _to_wire(settings, system, entity, record) if to_wire else _to_canonical(settings, system, entity, record)
    except (MapError, ConnectorError, msgspec.ValidationError, KeyError, ValueError) as exc:
        print(f"{system} {entity}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, sort_keys=True, default=str))
    return 0


def _to_canonical(settings: Settings, system: str, entity: str, wire: dict[str, Any]) -> dict[str, Any]:
    system_settings = settings.systems[system]
    fields = spec_of(system_settings).mapper(system_settings).to_canonical(entity, _stamped(wire)).fields
    cmap = configured_map(settings, system, entity)
    if cmap is not None:
        fields, drift = cmap.read(fields, wire)
        for problem in drift:
            print(f"schema drift: {problem}", file=sys.stderr)
    return normalise_fields(entity, fields)


def _stamped(wire: dict[str, Any]) -> dict[str, Any]:
    """A record typed by hand lacks the id and version stamps every API sends; add neutral ones."""
    return {"Id": "0", "id": 0, "SystemModstamp": "1970-01-01T00:00:00.000+0000", **wire}


def _to_wire(settings: Settings, system: str, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    fields = normalise_fields(entity, fields)
    extra: dict[str, Any] = {}
    cmap = configured_map(settings, system, entity)
    if cmap is not None:
        fields, extra = cmap.write(fields)
    system_settings = settings.systems[system]
    wire = spec_of(system_settings).mapper(system_settings).to_wire(entity, fields)
    return deep_merge(wire, extra)
