"""Redis-backed sync state: identity (xref), last-seen projections, in-flight writes, applied
versions, poll cursors, OAuth tokens and counters.

Everything here survives any actor crash: it lives in Redis only. Readers batch their look-ups through
one pipeline per page or batch; writers queue updates onto the caller's MULTI so state and stream
changes commit together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from accord.streams.keys import Keys
from accord.streams.records import new_gid, pack, unpack

VERSION_FIELD = "_v"  # inside a seen hash: the system's own version of the record (e.g. SyncToken)


def _s(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else raw


class Identity:
    """Global ids and the xref between them and each system's ids."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def gids_for(self, entity: str, system: str, ids: Sequence[str]) -> dict[str, str]:
        """Known global ids of these system ids (missing ones are absent)."""
        if not ids:
            return {}
        values = await self.redis.mget([self.keys.xid(entity, system, i) for i in ids])
        return {i: v for i, raw in zip(ids, values, strict=True) if (v := _s(raw))}

    async def resolve(self, entity: str, system: str, ids: Sequence[str],
                      carried: Mapping[str, str | None]) -> tuple[dict[str, str], set[str]]:
        """Global id for every system id: known, carried by the record, or newly minted.

        Returns ``(gids, new)`` where ``new`` holds the system ids that had no xid before this call.
        Minting uses ``SET NX``: two racing resolvers agree on one gid.
        """
        known = await self.gids_for(entity, system, ids)
        missing = [i for i in ids if i not in known]
        if not missing:
            return known, set()
        proposals = {i: carried.get(i) or new_gid() for i in missing}
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in missing:
                pipe.set(self.keys.xid(entity, system, i), proposals[i], nx=True)
            for i in missing:
                pipe.get(self.keys.xid(entity, system, i))
            replies = await pipe.execute()
        winners = replies[len(missing):]
        minted = {i: _s(raw) or proposals[i] for i, raw in zip(missing, winners, strict=True)}
        async with self.redis.pipeline(transaction=False) as pipe:
            for i, gid in minted.items():
                pipe.hset(self.keys.xref(entity, gid), system, i)
            await pipe.execute()
        return {**known, **minted}, set(missing)

    async def targets_for(self, entity: str, target: str, gids: Sequence[str]) -> dict[str, str]:
        """The target system's id for each global id that has one."""
        if not gids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for gid in gids:
                pipe.hget(self.keys.xref(entity, gid), target)
            values = await pipe.execute()
        return {g: v for g, raw in zip(gids, values, strict=True) if (v := _s(raw))}

    async def xref(self, entity: str, gid: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.xref(entity, gid))
        return {_s(k) or "": _s(v) or "" for k, v in raw.items()}

    def link(self, pipe: Pipeline, entity: str, gid: str, system: str, system_id: str) -> None:
        pipe.hset(self.keys.xref(entity, gid), system, system_id)
        pipe.set(self.keys.xid(entity, system, system_id), gid)


class Projections:
    """Last-seen canonical projection per system record, and fields a writer has in flight.

    Stored as hashes (field → msgpack value) so poller and writer update single fields atomically,
    without read-modify-write races.
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def load(self, system: str, entity: str, ids: Sequence[str]
                   ) -> tuple[list[dict[str, Any] | None], list[dict[str, Any]]]:
        """(seen, inflight) for each id; seen is ``None`` for a record never seen."""
        if not ids:
            return [], []
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(self.keys.seen(system, entity, i))
            for i in ids:
                pipe.hgetall(self.keys.inflight(system, entity, i))
            replies = await pipe.execute()
        seen = [_unpack_hash(h) if h else None for h in replies[: len(ids)]]
        inflight = [_unpack_hash(h) for h in replies[len(ids):]]
        return seen, inflight

    def remember(self, pipe: Pipeline, system: str, entity: str, system_id: str,
                 fields: Mapping[str, Any], version: int | None = None) -> None:
        mapping: dict[str, bytes] = {name: pack(value) for name, value in fields.items()}
        if version is not None:
            mapping[VERSION_FIELD] = pack(version)
        if mapping:
            pipe.hset(self.keys.seen(system, entity, system_id), mapping=mapping)  # type: ignore[arg-type]

    async def mark_inflight(self, system: str, entity: str, writes: Mapping[str, Mapping[str, Any]],
                            ttl_s: int = 3600) -> None:
        """Record fields about to be written, per target record id (the poller treats them as echoes)."""
        if not writes:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for system_id, fields in writes.items():
                if fields:
                    key = self.keys.inflight(system, entity, system_id)
                    pipe.hset(key, mapping={k: pack(v) for k, v in fields.items()})  # type: ignore[arg-type]
                    pipe.expire(key, ttl_s)
            await pipe.execute()

    def clear_inflight(self, pipe: Pipeline, system: str, entity: str, system_id: str) -> None:
        pipe.delete(self.keys.inflight(system, entity, system_id))


def _unpack_hash(raw: Mapping[bytes, bytes]) -> dict[str, Any]:
    return {(_s(k) or ""): unpack(v) for k, v in raw.items()}


class Versions:
    """Last applied source version per (target, entity, gid) and source system: the version guard."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def applied(self, target: str, entity: str, pairs: Sequence[tuple[str, str]]) -> list[int | None]:
        """Applied version for each (gid, source) pair."""
        if not pairs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for gid, source in pairs:
                pipe.hget(self.keys.version(target, entity, gid), source)
            replies = await pipe.execute()
        return [int(r) if r is not None else None for r in replies]

    def record(self, pipe: Pipeline, target: str, entity: str, gid: str, source: str, version: int) -> None:
        pipe.hset(self.keys.version(target, entity, gid), source, version)


class Cursors:
    """Poll watermarks (opaque connector cursors) per system and entity."""

    FIELD = "cursor"

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def get(self, system: str, entity: str) -> str | None:
        return _s(await self.redis.hget(self.keys.cursor(system, entity), self.FIELD))

    def put(self, pipe: Pipeline, system: str, entity: str, cursor: str, now_ms: int) -> None:
        pipe.hset(self.keys.cursor(system, entity), mapping={self.FIELD: cursor, "updated_ms": now_ms})


class RedisTokenCache:
    """OAuth tokens of one system in Redis: shared by every process, and a rotated refresh token is
    persisted the moment it is issued (implements ``accord.connectors.base.TokenCache``)."""

    def __init__(self, redis: Redis, keys: Keys, system: str) -> None:
        self.redis = redis
        self.key = keys.token(system)

    async def load(self) -> dict[str, Any] | None:
        raw = await self.redis.get(self.key)
        return unpack(raw) if raw else None

    async def save(self, token: dict[str, Any]) -> None:
        await self.redis.set(self.key, pack(dict(token)))


class Stats:
    """Pipeline counters in Redis hashes (``stats:records``, ``stats:api``), read at scrape time."""

    RECORDS = "records"
    API = "api"

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def add(self, pipe: Pipeline, kind: str, counts: Mapping[str, int]) -> None:
        for name, n in counts.items():
            if n:
                pipe.hincrby(self.keys.stats(kind), name, n)

    @staticmethod
    def label(*parts: str) -> str:
        return "|".join(parts)

    async def read(self, redis: Redis, kind: str) -> dict[tuple[str, ...], int]:
        raw = await redis.hgetall(self.keys.stats(kind))
        return {tuple((_s(k) or "").split("|")): int(v) for k, v in raw.items()}
