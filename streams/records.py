"""The change record: the envelope every stream entry carries (msgpack in the entry's field ``d``).

A change record says "system ``source`` changed record ``source_id`` (global id ``gid``) of ``entity``
to ``version``; these owned ``fields`` changed". It evolves by adding defaulted fields only.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, Literal

import msgspec

Op = Literal["upsert", "delete", "revert"]  # revert: the owner's values written back over a non-owner edit


class ChangeRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    change_id: str
    entity: str
    gid: str
    op: Op
    source: str
    source_id: str
    version: int
    fields: dict[str, Any] = {}
    correlation_id: str = ""
    causation_id: str | None = None
    observed_ms: int = 0
    schema: str = "change/1"
    only_to: str | None = None  # deliver to this target only (a revert goes to the system that strayed)
    replay: bool = False  # re-delivered on purpose (replay, resync): applies even at the version applied


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ChangeRecord)


class MalformedEntry(ValueError):
    """A stream entry that is not a decodable change record (routed to exceptions, then acked)."""


def encode(record: ChangeRecord) -> bytes:
    return _encoder.encode(record)


def decode(entry: dict[bytes, bytes] | dict[str, Any]) -> ChangeRecord:
    """Decode a stream entry's field map; raise ``MalformedEntry`` naming what is wrong."""
    payload = entry.get(b"d") if b"d" in entry else entry.get("d")  # type: ignore[call-overload]
    if payload is None:
        raise MalformedEntry(f"stream entry has no `d` field (fields: {sorted(map(str, entry))[:5]})")
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise MalformedEntry(f"undecodable change record: {exc}") from exc


def change_id(source: str, entity: str, source_id: str, version: int) -> str:
    """Deterministic id of one observed change: the same change re-read yields the same id."""
    digest = hashlib.sha1(f"{source}\x1f{entity}\x1f{source_id}\x1f{version}".encode()).hexdigest()
    return digest[:32]


def new_gid() -> str:
    """A new global id: time-ordered prefix (ms) plus randomness, 26 hex chars."""
    return f"{int(time.time() * 1000):011x}{uuid.uuid4().hex[:15]}"


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    return int(time.time() * 1000)


def partition_of(gid: str, partitions: int) -> int:
    """Stable partition of a global id (the same in every process, unlike ``hash()``)."""
    digest = hashlib.blake2b(gid.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def pack(value: Any) -> bytes:
    """Compact msgpack for one state value (seen fields, exception payloads)."""
    return _encoder.encode(value)


def unpack(data: bytes) -> Any:
    return msgspec.msgpack.decode(data)
