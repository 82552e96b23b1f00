"""The audit trail: every event of one business flow, by correlation id (DESIGN §3 "Correlation").

Each flow has a list ``trace:{correlation_id}`` of events (published, written, retry, parked, skipped,
exception, desk actions...), each a msgpack map, oldest first. Events are queued onto the same atomic
batch as the state change they describe, so the trail never claims a write that did not commit, nor
misses one that did. The list expires ``streams.audit_retention`` after its last event.

A list, not a stream: nearly every flow has two or three events, and Redis gives each new stream a
4 KB node up front (``stream-node-max-bytes``), so a stream per flow was 4.7 KB of a synced record's
~6.5 KB in Redis, and the keyspace outgrew the CPU caches at 20,000 records. A trail written as a
stream by an earlier version is still read (``XRANGE``) until it expires.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from accord.streams.keys import Keys
from accord.streams.replies import binary, stream_entries, text_map


class _Queue(Protocol):
    def rpush(self, key: str, *values: bytes) -> Any: ...
    def expire(self, key: str, seconds: int) -> Any: ...


class TraceEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One step of a flow. ``kind`` says what happened; ``detail`` says it in words."""

    correlation_id: str
    kind: str
    entity: str = ""
    gid: str = ""
    system: str = ""
    record: str = ""  # the record's id in ``system``
    detail: str = ""
    at_ms: int = 0


class AuditTrail:
    def __init__(self, keys: Keys, retention_s: float) -> None:
        self.keys = keys
        self.ttl = max(1, int(retention_s))

    def queue(self, pipe: _Queue, event: TraceEvent) -> None:
        """Queue ``event`` onto ``pipe`` (a Batch or pipeline); no-op for an event without a flow."""
        if not event.correlation_id:
            return
        if not event.at_ms:
            event = msgspec.structs.replace(event, at_ms=int(time.time() * 1000))
        key = self.keys.trace(event.correlation_id)
        pipe.rpush(key, _encode(event))
        pipe.expire(key, self.ttl)

    async def read(self, redis: Redis, correlation_id: str) -> list[TraceEvent]:
        """Every retained event of one flow, oldest first."""
        return await read_trail(redis, self.keys.trace(correlation_id), correlation_id)


def _encode(event: TraceEvent) -> bytes:
    return msgspec.msgpack.encode({k: v for k, v in msgspec.to_builtins(event).items() if k != "correlation_id"})


async def read_trail(redis: Redis, key: str, correlation_id: str = "") -> list[TraceEvent]:
    """The events kept under one trace key, oldest first (a list; a stream from an earlier version)."""
    try:
        raw = await redis.lrange(key, 0, -1)
    except ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        return [_from_fields(text_map(fields), correlation_id) for _, fields in stream_entries(await redis.xrange(key))]
    return [_from_fields(msgspec.msgpack.decode(binary(item)), correlation_id) for item in raw]


def _from_fields(fields: Mapping[str, Any], correlation_id: str) -> TraceEvent:
    """An event from its stored fields (text from a stream, typed from msgpack); unknown fields ignored."""
    texts = {k: str(v) for k, v in fields.items() if k in _TEXT_FIELDS}
    return TraceEvent(correlation_id=correlation_id, at_ms=int(fields.get("at_ms", 0) or 0), **texts)


_TEXT_FIELDS = frozenset(TraceEvent.__struct_fields__) - {"correlation_id", "at_ms"}
