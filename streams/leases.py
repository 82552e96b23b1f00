"""Partition leases: exactly one writer replica works a (entity, target, partition) at a time.

A lease is a Redis string holding the owner's token with a PX expiry. The owner's lease keeper renews it
every third of its ``ttl``, whatever its sweeps are doing; a crashed owner's lease lapses after ``ttl``.
Tokens are stable per (entity, replica, assignment epoch), so a replica restarted by Ray re-takes its own
leases at once, while a replica of another assignment waits for them to lapse. Commits are fenced: the
commit's Lua call applies nothing unless every lease it touches still holds the owner's token.

``refresh`` tells a renewed lease from one acquired afresh: between a lapse and a fresh acquisition
another replica may have worked the partition, so the new holder must not trust what it remembers of
it (the writer re-reads the partition's pending entries).
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

RENEWED, ACQUIRED = 1, 2

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 2 end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    """The leases one writer replica wants, and which of them it holds now."""

    def __init__(self, redis: Redis, token: str, ttl_ms: int) -> None:
        self.redis = redis
        self.token = token
        self.ttl_ms = ttl_ms
        self.held: set[str] = set()
        self.acquired: set[str] = set()  # taken afresh by the last refresh (not renewed)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def refresh(self, wanted: Iterable[str]) -> set[str]:
        """Take or renew every wanted lease (one pipeline); returns those held now."""
        wanted = list(wanted)
        if not wanted:
            self.held, self.acquired = set(), set()
            return self.held
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in wanted:
                await self._renew(keys=[key], args=[self.token, self.ttl_ms], client=pipe)
            replies = await pipe.execute()
        self.held = {key for key, got in zip(wanted, replies, strict=True) if int(got) in (RENEWED, ACQUIRED)}
        self.acquired = {key for key, got in zip(wanted, replies, strict=True) if int(got) == ACQUIRED}
        return self.held

    async def release(self) -> None:
        for key in list(self.held):
            await self._release(keys=[key], args=[self.token])
        self.held, self.acquired = set(), set()
