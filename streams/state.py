"""Redis-backed sync state: identity (xref), last-seen projections, in-flight writes, applied
versions, poll cursors, OAuth tokens and counters.

Everything here survives any actor crash: it lives in Redis only. Readers batch their look-ups through
one pipeline per page or batch; writers queue updates onto the caller's MULTI so state and stream
changes commit together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from accord.streams.batch import Batch, hget_many, hgetall_many, script
from accord.streams.keys import Keys
from accord.streams.records import new_gid, pack, unpack
from accord.streams.replies import binary, text_keys, text_map, text_or_none

Pipeline = Batch  # state updates are queued onto the caller's atomic Batch

_MINT = """
local out = {}
for j = 1, #KEYS, 2 do
  local a = (j + 1) / 2
  local proposal = ARGV[3 * a - 2]
  if redis.call('SET', KEYS[j], proposal, 'NX') then
    redis.call('HSET', KEYS[j + 1], ARGV[3 * a - 1], ARGV[3 * a])
    out[a] = proposal
  else
    out[a] = redis.call('GET', KEYS[j])
  end
end
return out
"""

VERSION_FIELD = "_v"  # inside a seen hash: the system's own version of the record (e.g. SyncToken)


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
        return {i: v for i, raw in zip(ids, values, strict=True) if (v := text_or_none(raw))}

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
        keys: list[str] = []
        args: list[str] = []
        for i in missing:
            gid = carried.get(i) or new_gid()
            keys += [self.keys.xid(entity, system, i), self.keys.xref(entity, gid)]
            args += [gid, system, i]
        # one call: SET NX the xid (two racing resolvers agree on one gid) and the xref of new gids
        winners = await script(self.redis, _MINT)(keys=keys, args=args)
        minted = {i: text_or_none(raw) or "" for i, raw in zip(missing, winners, strict=True)}
        return {**known, **minted}, set(missing)

    async def targets_for(self, entity: str, target: str, gids: Sequence[str]) -> dict[str, str]:
        """The target system's id for each global id that has one."""
        values = await hget_many(self.redis, [(self.keys.xref(entity, gid), target) for gid in gids])
        return {g: v for g, raw in zip(gids, values, strict=True) if (v := text_or_none(raw))}

    async def xref(self, entity: str, gid: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.xref(entity, gid))
        return text_map(raw)

    async def xrefs(self, entity: str, gids: Sequence[str]) -> list[dict[str, str]]:
        """The xref (system -> id) of each global id, in one call."""
        hashes = await hgetall_many(self.redis, [self.keys.xref(entity, gid) for gid in gids])
        return [text_map(h) for h in hashes]

    def link(self, pipe: Pipeline, entity: str, gid: str, system: str, system_id: str) -> None:
        """Pair ``gid`` with the system's record both ways. A poller may have minted another gid for that
        record before it was linked (it read the record, or a reference to it, first); that gid becomes an
        alias of ``gid``, and what was linked under it moves to ``gid``, in the same atomic call."""
        pipe.hset(self.keys.xref(entity, gid), system, system_id)
        pipe.link_xid(self.keys.xid(entity, system, system_id), gid, self.keys.alias(entity, ""),
                      self.keys.xref(entity, ""), self.keys.xid_prefix(entity))

    async def canonical(self, entity: str, gids: Sequence[str]) -> dict[str, str]:
        """The record gid each alias among ``gids`` stands for (gids that are no alias are absent)."""
        if not gids:
            return {}
        values = await self.redis.mget([self.keys.alias(entity, g) for g in gids])
        return {g: v for g, raw in zip(gids, values, strict=True) if (v := text_or_none(raw))}


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
        """(seen, inflight) for each id, in one call; seen is ``None`` for a record never seen."""
        keys = [self.keys.seen(system, entity, i) for i in ids]
        keys += [self.keys.inflight(system, entity, i) for i in ids]
        replies = await hgetall_many(self.redis, keys)
        seen = [_unpack_hash(h) if h else None for h in replies[: len(ids)]]
        inflight = [_unpack_hash(h) for h in replies[len(ids):]]
        return seen, inflight

    def remember(self, pipe: Pipeline, system: str, entity: str, system_id: str,
                 fields: Mapping[str, Any], version: int | None = None) -> None:
        mapping: dict[str, bytes] = {name: pack(value) for name, value in fields.items()}
        if version is not None:
            mapping[VERSION_FIELD] = pack(version)
        if mapping:
            pipe.hset(self.keys.seen(system, entity, system_id), mapping=mapping)

    async def mark_inflight(self, system: str, entity: str, writes: Mapping[str, Mapping[str, Any]],
                            ttl_s: int = 3600) -> None:
        """Record fields about to be written, per target record id (the poller treats them as echoes)."""
        batch = Batch()
        for system_id, fields in writes.items():
            if fields:
                key = self.keys.inflight(system, entity, system_id)
                batch.hset(key, mapping={k: pack(v) for k, v in fields.items()})
                batch.expire(key, ttl_s)
        await batch.apply(self.redis)

    async def mark_creating(self, system: str, entity: str, gids: Sequence[str], now_ms: int) -> None:
        """The gids about to be created in ``system``: after a crash they, and only they, are looked up
        there before being created again."""
        if gids:
            await self.redis.hset(self.keys.creating(system, entity), mapping=dict.fromkeys(gids, now_ms))

    async def creating(self, system: str, entity: str, gids: Sequence[str]) -> set[str]:
        """Those of ``gids`` whose create was sent to ``system`` and not recorded since."""
        if not gids:
            return set()
        sent = await self.redis.hmget(self.keys.creating(system, entity), list(gids))
        return {gid for gid, ms in zip(gids, sent, strict=True) if ms is not None}

    def created(self, pipe: Pipeline, system: str, entity: str, gids: Sequence[str]) -> None:
        """The creates of ``gids`` are recorded (or settled otherwise): no look-up needed after a crash."""
        pipe.hdel(self.keys.creating(system, entity), *gids)

    def clear_inflight(self, pipe: Pipeline, system: str, entity: str, system_id: str) -> None:
        pipe.delete(self.keys.inflight(system, entity, system_id))


def _unpack_hash(raw: Mapping[str, bytes]) -> dict[str, Any]:
    return {k: unpack(v) for k, v in raw.items()}


class Versions:
    """Last applied source version per (target, entity, gid) and source system: the version guard."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def applied(self, target: str, entity: str, pairs: Sequence[tuple[str, str]]) -> list[int | None]:
        """Applied version for each (gid, source) pair."""
        replies = await hget_many(self.redis, [(self.keys.version(target, entity, g), src) for g, src in pairs])
        return [int(r) if r is not None else None for r in replies]

    def record(self, pipe: Pipeline, target: str, entity: str, gid: str, source: str, version: int) -> None:
        pipe.hset(self.keys.version(target, entity, gid), source, version)


@dataclass(frozen=True)
class Position:
    cursor: str | None
    resync_run: str | None = None
    resync_since_ms: int | None = None
    resyncing: str | None = None

    @property
    def resync_pending(self) -> bool:
        """A resync was asked for and has not started yet (its cursor is not set)."""
        return self.resync_run is not None and self.resyncing != self.resync_run

    @property
    def in_resync(self) -> bool:
        return self.resync_run is not None


class Cursors:
    """Poll watermarks (opaque connector cursors) per system and entity."""

    FIELD = "cursor"
    FAILING = "failing_since_ms"

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def get(self, system: str, entity: str) -> str | None:
        return text_or_none(await self.redis.hget(self.keys.cursor(system, entity), self.FIELD))

    async def position(self, system: str, entity: str) -> Position:
        """The cursor and any resync asked for (``request_resync``) or in progress."""
        raw = text_map(await self.redis.hgetall(self.keys.cursor(system, entity)))
        since = raw.get("resync_since")
        return Position(cursor=raw.get(self.FIELD), resync_run=raw.get("resync_run"),
                        resync_since_ms=int(since) if since else None, resyncing=raw.get("resyncing"))

    async def request_resync(self, system: str, entity: str, since_ms: int, run_id: str) -> None:
        """Ask the poller to re-read ``system`` from ``since_ms`` and republish what it reads in full."""
        await self.redis.hset(self.keys.cursor(system, entity),
                              mapping={"resync_since": since_ms, "resync_run": run_id})

    def resync_started(self, pipe: Pipeline, system: str, entity: str, run_id: str) -> None:
        pipe.hset(self.keys.cursor(system, entity), "resyncing", run_id)

    def resync_done(self, pipe: Pipeline, system: str, entity: str) -> None:
        pipe.hdel(self.keys.cursor(system, entity), "resync_since", "resync_run", "resyncing")

    def put(self, pipe: Pipeline, system: str, entity: str, cursor: str, now_ms: int, *, caught_up: bool,
            fetched_ms: int | None = None) -> None:
        """Store the cursor; ``fetched_ms`` is when the fetch that produced it was sent (everything the
        system held then has been read)."""
        mapping: dict[str, str | int] = {self.FIELD: cursor, "updated_ms": now_ms,
                                         "fetched_ms": fetched_ms if fetched_ms is not None else now_ms}
        if caught_up:
            mapping["loaded"] = 1  # the first full read of this system's records is complete
            pipe.hsetnx(self.keys.cursor(system, entity), "loaded_ms", now_ms)  # when it first was
        pipe.hset(self.keys.cursor(system, entity), mapping=mapping)
        pipe.hdel(self.keys.cursor(system, entity), self.FAILING)  # a page committed: polls succeed again

    async def failing(self, system: str, entity: str, now_ms: int) -> None:
        """A poll failed; ``failing_since_ms`` keeps when the first of a row of failures did (until a page
        commits). Read by /metrics (``accord_poll_failing_seconds``)."""
        await self.redis.hsetnx(self.keys.cursor(system, entity), self.FAILING, now_ms)

    async def health(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int | None, int | None]]:
        """(last committed page, failing since), epoch ms, per (system, entity), in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for system, entity in pairs:
                pipe.hmget(self.keys.cursor(system, entity), ["updated_ms", self.FAILING])
            replies = await pipe.execute()
        return {pair: (int(ok) if ok else None, int(since) if since else None)
                for pair, (ok, since) in zip(pairs, replies, strict=True)}

    async def fetched_ms(self, system: str, entity: str) -> int:
        """When the last committed fetch of ``system``'s ``entity`` records was sent (0: never)."""
        raw = await self.redis.hget(self.keys.cursor(system, entity), "fetched_ms")
        return int(raw) if raw else 0

    async def loaded_ms(self, system: str, entity: str) -> int | None:
        """When the system's first full read of ``entity`` completed (``None``: not yet)."""
        raw = await self.redis.hget(self.keys.cursor(system, entity), "loaded_ms")
        return int(raw) if raw else None

    async def loaded(self, system: str, entity: str) -> bool:
        """Whether the system's records of ``entity`` have been read in full once (creates wait for it,
        so match rules see every pre-existing record)."""
        return bool(await self.redis.hget(self.keys.cursor(system, entity), "loaded"))


class RedisTokenCache:
    """OAuth tokens of one system in Redis: shared by every process, and a rotated refresh token is
    persisted the moment it is issued (implements ``accord.connectors.base.TokenCache``)."""

    def __init__(self, redis: Redis, keys: Keys, system: str) -> None:
        self.redis = redis
        self.key = keys.token(system)

    async def load(self) -> dict[str, Any] | None:
        raw = await self.redis.get(self.key)
        return unpack(binary(raw)) if raw else None

    async def save(self, token: dict[str, Any]) -> None:
        await self.redis.set(self.key, pack(dict(token)))


class Stats:
    """Pipeline counters in Redis hashes (``stats:records``, ``stats:api``), read at scrape time."""

    RECORDS = "records"
    API = "api"
    LATENCY = "latency"  # accord.streams.latency

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
        return {tuple(name.split("|")): int(v) for name, v in text_keys(raw).items()}
