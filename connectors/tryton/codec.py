"""Tryton's JSON-RPC value encoding (``reference/tryton.md`` §3.4), both directions.

``Decimal``, ``date``, ``datetime``, ``timedelta`` and ``bytes`` travel as ``{"__class__": ...}`` objects;
floats stay JSON floats. Tryton's datetimes are naive: with the server run in UTC (pitfall 5) they are
read as UTC here, and aware datetimes are sent converted to UTC.

Stateless: nothing to survive a crash.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any


def encode_value(value: Any) -> Any:
    """``json.dumps``' ``default``: one non-JSON value as Tryton's ``__class__`` object."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {"__class__": "datetime", "year": value.year, "month": value.month, "day": value.day,
                "hour": value.hour, "minute": value.minute, "second": value.second,
                "microsecond": value.microsecond}
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, bytes):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode()}
    raise TypeError(f"{type(value).__name__} {value!r} has no Tryton JSON encoding")


def decode_object(obj: dict[str, Any]) -> Any:
    """``json.loads``' ``object_hook``: a ``__class__`` object back to its Python value (datetimes UTC-aware)."""
    kind = obj.get("__class__")
    if kind == "datetime":
        return dt.datetime(obj["year"], obj["month"], obj["day"], obj.get("hour", 0), obj.get("minute", 0),
                           obj.get("second", 0), obj.get("microsecond", 0), tzinfo=dt.UTC)
    if kind == "date":
        return dt.date(obj["year"], obj["month"], obj["day"])
    if kind == "timedelta":
        return dt.timedelta(seconds=obj["seconds"])
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    return obj


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, default=encode_value, separators=(",", ":")).encode()


def loads(body: bytes | str) -> Any:
    return json.loads(body, object_hook=decode_object)


def epoch_us(stamp: dt.datetime) -> int:
    """A Tryton stamp (UTC) as integer microseconds since the epoch: Accord's version of a record."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    delta = stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> dt.datetime:
    """The inverse of ``epoch_us`` (a naive UTC datetime, as Tryton compares them)."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=value)
