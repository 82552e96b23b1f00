"""Where each exception stands, kept as sorted sets beside the index, so that nothing has to read every
exception: the desk pages through ``by_time`` (or ``open_all``), the metrics count ``open_kind`` sets, and
retention drops the oldest ``settled`` ones.

Every change is queued onto the caller's atomic batch (the one that files or settles the exception), and
every operation is idempotent (ZADD/ZREM), so a replayed batch or a crash in between changes no count.
Exceptions filed before these sets existed are added once, on the daemon's start (``build_once``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import get_args

import msgspec
from redis.asyncio import Redis

from accord.streams.batch import Batch
from accord.streams.exceptions import ExceptionRecord, Reason, decode_exception, queue_opened
from accord.streams.keys import Keys
from accord.streams.replies import binary, text, zset_members

REASONS: tuple[str, ...] = get_args(Reason)
_TRIM_CHUNK = 500


def queue_settled(pipe: Batch, keys: Keys, entity: str, exception_ids: Iterable[str], at_ms: int,
                  reason: str | None = None) -> None:
    """Exceptions retried, resolved, skipped or closed: no longer open; kept until retention drops them.
    Without ``reason`` (a writer closing exceptions it knows by id only) every reason's set is cleaned."""
    ids = sorted(exception_ids)
    if not ids:
        return
    pipe.zrem(keys.exceptions_open_all(), *ids)
    for each in (reason,) if reason else REASONS:
        pipe.zrem(keys.exceptions_open_kind(entity, each), *ids)
    for eid in ids:
        pipe.zadd(keys.exceptions_settled(), eid, at_ms)


@dataclass(frozen=True)
class OpenKind:
    count: int
    oldest_ms: int | None


async def open_kinds(redis: Redis, keys: Keys, kinds: Sequence[tuple[str, str]]) -> dict[tuple[str, str], OpenKind]:
    """Open exceptions per (entity, reason): how many, and when the oldest was filed (two O(1) reads each)."""
    pipe = redis.pipeline(transaction=False)
    for entity, reason in kinds:
        key = keys.exceptions_open_kind(entity, reason)
        pipe.zcard(key)
        pipe.zrange(key, 0, 0, withscores=True)
    replies = await pipe.execute()
    out = {}
    for i, kind in enumerate(kinds):
        count, first = int(replies[2 * i]), replies[2 * i + 1]
        out[kind] = OpenKind(count, int(first[0][1]) if first else None)
    return out


async def open_kinds_present(redis: Redis, keys: Keys) -> list[tuple[str, str]]:
    """(entity, reason) pairs that have open-kind sets, including entities no longer in the config."""
    prefix = keys.exceptions_open_kind("", "").removesuffix(":")
    found = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        entity, _, reason = text(key)[len(prefix):].rpartition(":")
        found.append((entity, reason))
    return sorted(found)


async def trim_settled(redis: Redis, keys: Keys, retention_ms: int, now_ms: int) -> int:
    """Forget exceptions settled longer than ``retention_ms`` ago (index, state, listing); open ones stay.
    Returns how many were dropped. Safe to run from several processes at once."""
    dropped = 0
    while True:
        ids = zset_members(await redis.zrangebyscore(keys.exceptions_settled(), "-inf", now_ms - retention_ms,
                                                     start=0, num=_TRIM_CHUNK))
        if not ids:
            return dropped
        pipe = Batch()
        pipe.hdel(keys.exception_index(), *ids)
        pipe.hdel(keys.exception_state(), *ids)
        pipe.zrem(keys.exceptions_by_time(), *ids)
        pipe.zrem(keys.exceptions_settled(), *ids)
        await pipe.apply(redis)
        dropped += len(ids)


async def trim_streams(redis: Redis, keys: Keys, exception_retention_ms: int, audit_retention_ms: int,
                       now_ms: int) -> int:
    """Drop entries of the ``exceptions`` stream (no group reads it; the index and the ledger are the desk)
    and of the desk's audit stream older than their retentions. Returns how many were removed."""
    removed = 0
    for stream, retention_ms in ((keys.exceptions(), exception_retention_ms), (keys.desk_audit(), audit_retention_ms)):
        removed += int(await redis.xtrim(stream, minid=f"{max(0, now_ms - retention_ms)}-0", approximate=False))
    return removed


async def build_once(redis: Redis, keys: Keys) -> int:
    """Add the exceptions filed before this ledger existed (once per Redis; the flag is set last, so a crash
    only makes the next start build again). Returns how many exceptions were read."""
    if await redis.exists(keys.exceptions_ledger_built()):
        return 0
    seen = 0
    async for eid, data in redis.hscan_iter(keys.exception_index(), count=500):
        record = decode_exception(binary(data))
        state = await redis.hget(keys.exception_state(), eid)
        pipe = Batch()
        pipe.zadd(keys.exceptions_by_time(), record.exception_id, record.created_ms)
        if state is None:
            queue_opened(pipe, keys, record)
        else:
            pipe.zadd(keys.exceptions_settled(), record.exception_id, _settled_at(binary(state), record))
        await pipe.apply(redis)
        seen += 1
    await redis.set(keys.exceptions_ledger_built(), 1)
    return seen


def _settled_at(state: bytes, record: ExceptionRecord) -> int:
    """When the desk state says the exception was settled (its shape is the desk's; only ``at_ms`` is read)."""
    try:
        at = msgspec.msgpack.decode(state).get("at_ms", 0)
    except (msgspec.DecodeError, AttributeError):
        at = 0
    return int(at or record.created_ms)
