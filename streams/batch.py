"""Batched Redis access: many commands in one server-side script call.

redis-py spends ~15-20 µs of client CPU per command even pipelined (packing, parsing, timeouts); the
pipeline's per-record state (xref, seen, versions, XADD, XACK, counters) would be a dozen commands per
record. ``Batch`` queues those commands and runs them in **one** Lua call, atomically like MULTI/EXEC
(scripts are atomic and replicated by effects), optionally fenced: when any fence key no longer holds
its expected value, nothing is applied. The read helpers fetch many hashes in one call the same way.

Arguments travel flat in ARGV, so binary values are safe and no msgpack or JSON support is needed in the
server's Lua. Keys are not declared in KEYS: this targets a single Redis primary (DESIGN §7), not a
Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from accord.streams.replies import text, text_set

_APPLY = """
local i = 1
local fences = tonumber(ARGV[i]); i = i + 1
for _ = 1, fences do
  if redis.call('GET', ARGV[i]) ~= ARGV[i + 1] then return 0 end
  i = i + 2
end
local n = #ARGV
while i <= n do
  local argc = tonumber(ARGV[i])
  local cmd = {}
  for j = 1, argc do cmd[j] = ARGV[i + j] end
  if cmd[1] == 'ACCORD.LINK' then
    -- SET an xid; a different global id it held before becomes an alias of the new one, and the links
    -- that id gathered meanwhile (a record written to another system under it) move to the new one,
    -- unless the new one has its own link in that system
    local old = redis.call('GET', cmd[2])
    if old and old ~= cmd[3] then
      redis.call('SET', cmd[4] .. old, cmd[3])
      local links = redis.call('HGETALL', cmd[5] .. old)
      for j = 1, #links, 2 do
        if redis.call('HSETNX', cmd[5] .. cmd[3], links[j], links[j + 1]) == 1 then
          redis.call('SET', cmd[6] .. links[j] .. ':' .. links[j + 1], cmd[3])
        end
      end
    end
    redis.call('SET', cmd[2], cmd[3])
  elseif cmd[1] == 'ACCORD.ZADD_UNLESS_HEXISTS' then
    -- ZADD member to each set unless the hash has the member as a field (an exception already settled)
    if redis.call('HEXISTS', cmd[2], cmd[3]) == 0 then
      for k = 5, argc do redis.call('ZADD', cmd[k], cmd[4], cmd[3]) end
    end
  else
    redis.call(unpack(cmd))
  end
  i = i + argc + 1
end
return 1
"""

_HGETALL_MANY = """
local out = {}
for j, key in ipairs(KEYS) do out[j] = redis.call('HGETALL', key) end
return out
"""

_HGET_MANY = """
local out = {}
for j, key in ipairs(KEYS) do
  local v = redis.call('HGET', key, ARGV[j])
  if v then out[j] = v else out[j] = '' end
end
return out
"""

_SMEMBERS_MANY = """
local out = {}
for j, key in ipairs(KEYS) do out[j] = redis.call('SMEMBERS', key) end
return out
"""

_scripts: dict[tuple[int, str], Any] = {}


def script(redis: Redis, source: str) -> Any:
    """A registered (EVALSHA, reloaded on NOSCRIPT) script for this client."""
    key = (id(redis), source)
    if key not in _scripts:
        _scripts[key] = redis.register_script(source)
    return _scripts[key]


Value = bytes | str | int | float
MAX_ITEMS = 1000  # variadic items per queued command (the apply script unpacks each command's arguments)


class Batch:
    """Write commands queued for one atomic apply. Method names mirror redis-py's so state helpers
    can queue onto a ``Batch`` or a pipeline alike."""

    def __init__(self) -> None:
        self.args: list[Value] = []
        self.fences: list[tuple[str, str]] = []
        self.commands = 0

    def _add(self, *parts: Value) -> None:
        self.args.append(len(parts))
        self.args.extend(parts)
        self.commands += 1

    def _add_many(self, head: Sequence[Value], items: Sequence[Value], tail: Sequence[Value] = (),
                  step: int = 1) -> None:
        """``head + items + tail`` as one command per ``MAX_ITEMS`` items (``step`` items make one
        argument group, e.g. field and value): the script's ``unpack`` takes at most ~8,000 values,
        so a page of thousands of records must not become one command."""
        chunk = MAX_ITEMS - MAX_ITEMS % step
        for i in range(0, len(items), chunk):
            self._add(*head, *items[i: i + chunk], *tail)

    def fence(self, key: str, expected: str) -> None:
        """Apply nothing unless ``key`` still holds ``expected`` (e.g. a lease token)."""
        self.fences.append((key, expected))

    def hset(self, key: str, field: str | None = None, value: Value | None = None, *,
             mapping: Mapping[str, Value] | None = None) -> None:
        pairs: list[Value] = []
        if field is not None and value is not None:
            pairs += [field, value]
        for k, v in (mapping or {}).items():
            pairs += [k, v]
        self._add_many(["HSET", key], pairs, step=2)

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        self._add("HINCRBY", key, field, amount)

    def sadd(self, key: str, *members: Value) -> None:
        self._add_many(["SADD", key], members)

    def srem(self, key: str, *members: Value) -> None:
        self._add_many(["SREM", key], members)

    def hdel(self, key: str, *fields: str) -> None:
        self._add_many(["HDEL", key], fields)

    def set(self, key: str, value: Value) -> None:
        self._add("SET", key, value)

    def link_xid(self, key: str, gid: str, alias_prefix: str, xref_prefix: str, xid_prefix: str) -> None:
        """SET the xid ``key`` to ``gid``. If it held another global id (minted by a poller that read the
        record before whoever created it linked it), that id becomes an alias of ``gid``
        (``alias_prefix + old`` -> ``gid``), and each of its links (``xref_prefix + old``: system -> id)
        that ``gid`` lacks moves to ``gid``, its xid (``xid_prefix + system:id``) too."""
        self._add("ACCORD.LINK", key, gid, alias_prefix, xref_prefix, xid_prefix)

    def delete(self, *keys: str) -> None:
        self._add_many(["DEL"], keys)

    def expire(self, key: str, seconds: int) -> None:
        self._add("EXPIRE", key, seconds)

    def xadd(self, key: str, fields: Mapping[str, Value]) -> None:
        parts: list[Value] = ["XADD", key, "*"]
        for k, v in fields.items():
            parts += [k, v]
        self._add(*parts)

    def rpush(self, key: str, *values: Value) -> None:
        self._add_many(["RPUSH", key], values)

    def zadd(self, key: str, member: str, score: int | float) -> None:
        self._add("ZADD", key, score, member)

    def zadd_nx(self, key: str, member: str, score: int | float) -> None:
        """ZADD only if ``member`` is not in the set yet (its score stays)."""
        self._add("ZADD", key, "NX", score, member)

    def zrem(self, key: str, *members: str) -> None:
        self._add_many(["ZREM", key], members)

    def zadd_unless_hexists(self, hash_key: str, member: str, score: int | float, *zsets: str) -> None:
        """ZADD ``member`` to each of ``zsets`` unless ``hash_key`` holds a field named ``member``."""
        self._add("ACCORD.ZADD_UNLESS_HEXISTS", hash_key, member, score, *zsets)

    def hsetnx(self, key: str, field: str, value: Value) -> None:
        self._add("HSETNX", key, field, value)

    def xack(self, stream: str, group: str, *ids: str) -> None:
        self._add_many(["XACK", stream, group], ids)

    def set_deliveries(self, stream: str, group: str, consumer: str, ids: list[str], deliveries: int) -> None:
        """Set the delivery counter of pending entries their own consumer holds (XCLAIM ... RETRYCOUNT
        n JUSTID: the entries stay with ``consumer``; their idle time restarts)."""
        self._add_many(["XCLAIM", stream, group, consumer, 0], ids, ["RETRYCOUNT", deliveries, "JUSTID"])

    def __len__(self) -> int:
        return self.commands

    async def apply(self, redis: Redis) -> bool:
        """Run every queued command atomically; False (and nothing applied) when a fence failed."""
        if not self.commands and not self.fences:
            return True
        argv: list[Value] = [len(self.fences)]
        for key, expected in self.fences:
            argv += [key, expected]
        argv += self.args
        return bool(await script(redis, _APPLY)(keys=[], args=argv))


async def hgetall_many(redis: Redis, keys: Sequence[str]) -> list[dict[str, bytes]]:
    """HGETALL of every key in one call (missing keys give ``{}``)."""
    if not keys:
        return []
    replies = await script(redis, _HGETALL_MANY)(keys=list(keys))
    return [{text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)} for flat in replies]


async def hget_many(redis: Redis, pairs: Sequence[tuple[str, str]]) -> list[bytes | None]:
    """HGET of each (key, field) in one call (``None`` when absent)."""
    if not pairs:
        return []
    replies = await script(redis, _HGET_MANY)(keys=[k for k, _ in pairs], args=[f for _, f in pairs])
    return [r if r not in (b"", "") else None for r in replies]


async def smembers_many(redis: Redis, keys: Sequence[str]) -> list[set[str]]:
    """SMEMBERS of many sets in one round trip."""
    if not keys:
        return []
    raw = await script(redis, _SMEMBERS_MANY)(keys=list(keys), args=[])
    return [text_set(members) for members in raw]
