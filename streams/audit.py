"""The audit trail: every event of one business flow, by correlation id (DESIGN §3 "Correlation").

Each flow has a stream ``trace:{correlation_id}`` of events (published, written, retry, parked,
skipped, exception, desk actions...). Events are queued onto the same atomic batch as the state change
they describe, so the trail never claims a write that did not commit, nor misses one that did. The
stream expires ``streams.audit_retention`` after its last event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec
from redis.asyncio import Redis

from accord.streams.keys import Keys
from accord.streams.replies import stream_entries, text_map


class _Queue(Protocol):
    def xadd(self, key: str, fields: Mapping[str, Any]) -> Any: ...
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
        fields = {k: str(v) for k, v in msgspec.to_builtins(event).items() if k != "correlation_id"}
        pipe.xadd(key, fields)
        pipe.expire(key, self.ttl)

    async def read(self, redis: Redis, correlation_id: str) -> list[TraceEvent]:
        """Every retained event of one flow, oldest first."""
        out = []
        for _, raw in stream_entries(await redis.xrange(self.keys.trace(correlation_id))):
            fields = text_map(raw)
            at_ms = int(fields.pop("at_ms", 0))
            out.append(TraceEvent(correlation_id=correlation_id, at_ms=at_ms, **fields))
        return out
