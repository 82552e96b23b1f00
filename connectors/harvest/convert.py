"""What every Harvest entity mapping shares: value converters, the ``accord:<gid>`` marker line, the
``EntitySpec`` and the wire ↔ canonical conversions. The entity tables live in ``mapping`` (work) and
``billing`` (invoices and payments); ``mapping`` re-exports these names.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from accord.connectors.base import SourceRecord
from accord.connectors.errors import Permanent

SYSTEM = "harvest"
_MARKER = re.compile(r"^\[?accord:(\S+?)\]?\s*$", re.MULTILINE)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class MappingError(Permanent):
    """A value with no counterpart on the other side; names entity, field, value and the fix."""

    def __init__(self, entity: str, field: str, value: Any, fix: str) -> None:
        super().__init__(SYSTEM, f"{entity}.{field}: cannot map {value!r}; {fix}", code="mapping")
        self.field = field
        self.value = value


# -- small converters ------------------------------------------------------------------------------

def parse_time_ms(value: Any) -> int:
    """Epoch ms of a Harvest timestamp (``2017-06-27T16:47:14Z``); 0 when missing."""
    if not isinstance(value, str) or not value:
        return 0
    stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (stamp.astimezone(dt.UTC) - _EPOCH) // dt.timedelta(milliseconds=1)


def format_time(seconds: float) -> str:
    """The wire form of a timestamp: ISO 8601 UTC to the second, ``Z`` suffix."""
    return dt.datetime.fromtimestamp(int(seconds), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ref(value: Any) -> str | None:
    """The Harvest id of a nested ``{"id": ...}`` object, as a string (None when absent)."""
    if isinstance(value, Mapping) and value.get("id") is not None:
        return str(value["id"])
    return None


def unref(entity: str, name: str, value: Any) -> str:
    """The Harvest id of a reference; anything else is a ``MappingError``."""
    if isinstance(value, str | int) and str(value):
        return str(value)
    raise MappingError(entity, name, value, "expected the Harvest id of the referenced record; "
                                            "sync the referenced record first")


def int_id(entity: str, name: str, value: str) -> int:
    if not value.isdigit():
        raise MappingError(entity, name, value, "a Harvest id is a number")
    return int(value)


def dec(value: Any) -> str | None:
    """A wire number as a canonical decimal string (``2.11`` → ``"2.11"``)."""
    if value is None or value == "":
        return None
    return str(Decimal(str(value)))


def number(entity: str, name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise MappingError(entity, name, value, "expected a decimal number such as \"2.5\"") from None


def date(entity: str, name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise MappingError(entity, name, value, "expected a date YYYY-MM-DD") from None


def text(value: Any) -> Any:
    return None if value == "" else value


def find_marker(value: Any) -> str | None:
    """The Accord gid in a free-text field carrying a line ``accord:<gid>``."""
    match = _MARKER.search(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def strip_marker(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    kept = "\n".join(line for line in value.replace("\r\n", "\n").split("\n") if not _MARKER.match(line))
    return kept.strip() or None


def with_marker(value: Any, gid: str) -> str:
    base = strip_marker(value)
    return f"{base}\naccord:{gid}" if base else f"accord:{gid}"


# -- entity specs ------------------------------------------------------------------------------------

Reader = Callable[[Mapping[str, Any]], Any]
Writer = Callable[[Any, dict[str, Any]], None]  # (canonical value, wire body being built)


@dataclass(frozen=True)
class EntitySpec:
    """How one canonical entity lives in Harvest.

    ``path`` is the list path under ``/v2``; ``key`` the collection key of a list answer. ``gid_field`` is
    ``"external_reference"`` or the free-text field that holds an ``accord:<gid>`` line (None: the entity
    has no such field and creates look up ``natural_key`` instead). ``archive`` entities are deleted by
    ``PATCH {"is_active": false}``. ``required`` wire fields must be present on create. ``id_of`` builds
    the record id when it is not the wire ``id`` (tasks: ``"<project_id>:<task_id>"``). ``parent`` names
    the resource a nested entity is listed under (``/v2/<parent>/{id}/<path>``; it has no account-wide list).
    """

    entity: str
    path: str
    key: str
    readers: dict[str, Reader]
    writers: dict[str, Writer]
    gid_field: str | None
    archive: bool = False
    required: tuple[str, ...] = ()
    create_defaults: dict[str, Any] = field(default_factory=dict)
    id_of: Reader | None = None
    parent: str | None = None

    def record_id(self, wire: Mapping[str, Any]) -> str:
        return str(self.id_of(wire)) if self.id_of is not None else str(wire["id"])


def setter(name: str, convert: Callable[[Any], Any] = lambda v: v) -> Writer:
    def write(value: Any, out: dict[str, Any]) -> None:
        out[name] = convert(value)
    return write


def ref_writer(entity: str, canonical: str, wire: str) -> Writer:
    def write(value: Any, out: dict[str, Any]) -> None:
        out[wire] = None if value is None else int_id(entity, canonical, unref(entity, canonical, value))
    return write


# -- conversions ---------------------------------------------------------------------------------------

def gid_of(spec: EntitySpec, wire: Mapping[str, Any]) -> str | None:
    if spec.gid_field == "external_reference":
        ext = wire.get("external_reference") or {}
        return str(ext["id"]) if ext.get("group_id") == "accord" and ext.get("id") else None
    return find_marker(wire.get(spec.gid_field)) if spec.gid_field else None


def to_canonical(spec: EntitySpec, wire: Mapping[str, Any]) -> SourceRecord:
    """One Harvest object as a ``SourceRecord``. A field that cannot be mapped is left out of ``fields``
    and named in ``error`` (the poller files the record as an exception; the rest of the page flows)."""
    version = parse_time_ms(wire.get("updated_at"))
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for name, read in spec.readers.items():
        try:
            fields[name] = read(wire)
        except MappingError as exc:
            problems.append(exc.message)
    rid = spec.record_id(wire)
    return SourceRecord(id=rid, version=version, fields=fields, gid=gid_of(spec, wire), modified_ms=version,
                        raw=dict(wire), error=f"{spec.key} {rid}: {'; '.join(problems)}" if problems else None)


def to_wire(spec: EntitySpec, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The body that writes exactly ``fields`` (a sparse PATCH); fields Harvest keeps read-only are
    ignored. Raises ``MappingError`` for a value Harvest cannot hold."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        writer = spec.writers.get(name)
        if writer is not None:
            writer(value, out)
    return out


def gid_body(spec: EntitySpec, gid: str, current_text: Any = None) -> dict[str, Any]:
    """The body part that stamps ``gid`` on a record Accord creates (or re-links)."""
    if spec.gid_field == "external_reference":
        return {"external_reference": {"id": gid, "group_id": "accord", "permalink": f"accord://gid/{gid}"}}
    if spec.gid_field:
        return {spec.gid_field: with_marker(current_text, gid)}
    return {}


def projection(spec: EntitySpec, wire: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
    """The canonical values of ``names`` as ``wire`` now holds them (what a write left in Harvest)."""
    record = to_canonical(spec, wire)
    return {k: v for k, v in record.fields.items() if k in names}
