"""The exceptions stream: records that could not be synced, with the reason and what to do.

Each exception is one entry in the ``exceptions`` stream plus the record in the hash index
(``exceptions:index``: exception id → msgpack, never rewritten) and membership of its record's open set
(``exceptions:open:{entity}:{system}:{record}``). All are written in the same atomic batch as the XACK of
the change that failed, so a crash never loses the record nor files it twice. What happens to it later
(retried, resolved, skipped, closed by a later success) is its *desk state* (``accord.actors.desk``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.records import pack

Reason = Literal["permanent", "max_deliveries", "malformed", "mapping", "governance", "parked", "ambiguous_match",
                 "reconcile", "locked", "finance_review", "provisioning"]
State = Literal["open", "resolved", "skipped", "retried"]


class ExceptionRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    exception_id: str
    reason: Reason
    message: str
    entity: str
    target: str = ""
    gid: str = ""
    source: str = ""
    source_id: str = ""
    correlation_id: str = ""
    attempts: int = 0
    stream: str = ""
    entry_id: str = ""
    payload: bytes = b""
    created_ms: int = 0
    state: State = "open"


def record_key(record: ExceptionRecord) -> tuple[str, str]:
    """(system, record) an exception is about: the gid in the target it failed to reach, or the record's
    id in the source it could not be read from."""
    if record.target:
        return record.target, record.gid
    return record.source, record.source_id


def file_exception(pipe: Batch, keys: Keys, record: ExceptionRecord) -> None:
    """Queue the stream entry, the index entry, the open-set membership and the ledger entries onto
    ``pipe`` (the caller's atomic batch)."""
    data = pack(msgspec.to_builtins(record))
    pipe.xadd(keys.exceptions(), {"d": data, "reason": record.reason, "entity": record.entity,
                                  "target": record.target, "gid": record.gid})
    pipe.hset(keys.exception_index(), record.exception_id, data)
    system, key = record_key(record)
    if system and key:
        pipe.sadd(keys.exceptions_open(record.entity, system, key), record.exception_id)
    queue_opened(pipe, keys, record)


def queue_opened(pipe: Batch, keys: Keys, record: ExceptionRecord) -> None:
    """List a new exception by time, as open, and under its entity and reason (``accord.exception_ledger``);
    the same exception filed again after the desk settled it (a source record read twice) stays settled."""
    pipe.zadd(keys.exceptions_by_time(), record.exception_id, record.created_ms)
    pipe.zadd_unless_hexists(keys.exception_state(), record.exception_id, record.created_ms,
                             keys.exceptions_open_all(), keys.exceptions_open_kind(record.entity, record.reason))


def decode_exception(data: bytes) -> ExceptionRecord:
    return msgspec.convert(msgspec.msgpack.decode(data), ExceptionRecord)


def exception_id(stream: str, entry_id: str, target: str) -> str:
    """Deterministic: the same failed delivery files the same exception id (idempotent on replay)."""
    return f"{stream.rsplit(':', 2)[-2]}:{stream.rsplit(':', 1)[-1]}:{target}:{entry_id}"
