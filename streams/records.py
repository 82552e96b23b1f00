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

    # -- the kinds of change record Accord makes; the suffix of ``change_id`` says which ----------------
    @classmethod
    def observed(cls, system: str, entity: str, gid: str, op: Op, source_id: str, version: int,
                 fields: dict[str, Any], *, owner: str | None = None) -> ChangeRecord:
        """A change a poller read in ``system``; with ``owner``, the owner's values written back over a
        non-owner edit there (``op="revert"``, published on the owner's behalf)."""
        suffix = ":revert" if owner else ""
        return cls(change_id=change_id(system, entity, source_id, version) + suffix, entity=entity, gid=gid, op=op,
                   source=owner or system, source_id=source_id, version=version, fields=fields,
                   correlation_id=new_correlation_id(), observed_ms=now_ms())

    @classmethod
    def taken_over(cls, kind: Literal["seed", "link"], target: str, target_id: str, version: int,
                   fields: dict[str, Any], cause: ChangeRecord) -> ChangeRecord:
        """Fields a target owns, published as the target's after a write ``cause`` made: a create that
        ``seed``-ed them, or a ``link`` to a matching record that already held them."""
        return cls(change_id=change_id(target, cause.entity, target_id, version) + f":{kind}", entity=cause.entity,
                   gid=cause.gid, op="upsert", source=target, source_id=target_id, version=version, fields=fields,
                   correlation_id=cause.correlation_id or new_correlation_id(), causation_id=cause.change_id,
                   observed_ms=now_ms())

    @classmethod
    def corrected(cls, entity: str, gid: str, source: str, source_id: str, version: int, fields: dict[str, Any],
                  *, exception_id: str, correlation_id: str) -> ChangeRecord:
        """A record the source sent and Accord could not read, corrected by hand on the exception desk."""
        return cls(change_id=f"desk:{exception_id}:{now_ms()}", entity=entity, gid=gid, op="upsert", source=source,
                   source_id=source_id, version=version, fields=fields,
                   correlation_id=correlation_id or new_correlation_id(), causation_id=exception_id,
                   observed_ms=now_ms())

    def retried(self, patch: dict[str, Any], target: str, exception_id: str) -> ChangeRecord:
        """This change again, towards ``target`` only, with ``patch`` applied (the exception desk)."""
        return msgspec.structs.replace(self, change_id=f"{self.change_id}:retry:{now_ms()}",
                                       fields={**self.fields, **patch}, only_to=target, causation_id=exception_id)

    def replayed(self, run_id: str, target: str | None) -> ChangeRecord:
        """This change re-delivered on purpose by replay run ``run_id`` (to ``target`` only, if given)."""
        return msgspec.structs.replace(self, change_id=f"{self.change_id}:replay:{run_id}", replay=True,
                                       only_to=target or self.only_to, causation_id=f"replay:{run_id}",
                                       observed_ms=now_ms())


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
