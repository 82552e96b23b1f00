"""What parked records wait for, asked of Redis in one round trip per sweep."""

from __future__ import annotations

from redis.asyncio import Redis

from accord.actors.write.pending import Wait
from accord.streams.keys import Keys


async def dependencies_met(redis: Redis, keys: Keys, waits: list[Wait]) -> set[Wait]:
    """Those of ``waits`` that hold now: the target's first full read of an entity ended (``loaded``), or a
    referenced record got its id in the target, or its gid turned out to be an alias (``xref``)."""
    async with redis.pipeline(transaction=False) as pipe:
        for wait in waits:
            if wait[0] == "loaded":
                pipe.hget(keys.cursor(wait[1], wait[2]), "loaded")
            else:  # ("xref", entity, gid, target): linked there, or the gid turned out to be an alias
                pipe.hexists(keys.xref(wait[1], wait[2]), wait[3])
                pipe.exists(keys.alias(wait[1], wait[2]))
        replies = iter(await pipe.execute())
    met: set[Wait] = set()
    for wait in waits:
        answers = [next(replies)] if wait[0] == "loaded" else [next(replies), next(replies)]
        if any(answers):
            met.add(wait)
    return met
