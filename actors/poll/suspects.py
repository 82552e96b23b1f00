"""Non-owner edits wait for the owner's next read before they are judged.

A system may change a field it does not own for two reasons: a person edited it (a governance
violation), or the system derived it from something Accord wrote there (an invoice's balance and status
after its payments arrive) and is merely catching up with a change the owner made first. The two look
the same to the poller, and the owner's last-seen value may predate the owner's change. So a suspect
edit is parked in Redis (``suspects:{system}:{entity}``) and judged once the owner has been read again
after it was seen: if the system then holds the owner's value, it was convergence, not an edit.

A value is judged only once Accord has delivered to the system every change on its way there for
that record (``in_flight``): until then the system may simply hold an older value of the owner's, one
Accord wrote itself (a create made from an earlier change, a value the owner has changed since), and the
delivery that is coming overwrites it anyway.

What survives a crash: suspects are written in the same atomic batch as the page that found them and
removed in the batch of the page that judged them, so each is judged exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from accord.actors.context import Context
from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.records import MalformedEntry, decode, partition_of
from accord.streams.replies import binary, first_fields, pending_rows, stream_entries, text, text_keys

JUDGED_PER_PAGE = 1000  # parked suspects judged on one page at most
IN_FLIGHT_SCAN = 1000  # entries read per partition to find a record's changes on their way to a system


class Suspect(msgspec.Struct, frozen=True, kw_only=True):
    gid: str
    version: int
    changed: dict[str, tuple[object, object]]  # field -> (last seen, now)
    seen_ms: int  # when the fetch that showed it was sent
    adopted: bool = False  # a first-seen value whose owner did not hold the record yet


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Suspect)


class SuspectBook:
    def __init__(self, ctx: Context, system: str) -> None:
        self.ctx = ctx
        self.system = system

    def park(self, pipe: Batch, entity: str, record_id: str, suspect: Suspect) -> None:
        pipe.hset(self.ctx.keys.suspects(self.system, entity), record_id, _encoder.encode(suspect))

    def forget(self, pipe: Batch, entity: str, record_ids: list[str]) -> None:
        pipe.hdel(self.ctx.keys.suspects(self.system, entity), *record_ids)

    async def due(self, entity: str, owner_of: Callable[[str], str], limit: int = JUDGED_PER_PAGE
                  ) -> dict[str, Suspect]:
        """Parked suspects whose fields' owners have all been read since the suspect was seen: a fetch of the
        owner sent at or after the fetch that showed the suspect sees every owner change that caused it.
        The oldest ``limit`` of them: a backlog of thousands is judged over several pages, not on one."""
        raw = await self.ctx.redis.hgetall(self.ctx.keys.suspects(self.system, entity))
        if not raw:
            return {}
        parked = {record_id: _decoder.decode(binary(v)) for record_id, v in text_keys(raw).items()}
        owners = sorted({owner_of(f) for s in parked.values() for f in s.changed})
        read = {owner: await self.ctx.cursors.fetched_ms(owner, entity) for owner in owners}
        due = [(rid, s) for rid, s in parked.items() if all(read[owner_of(f)] >= s.seen_ms for f in s.changed)]
        return dict(sorted(due, key=lambda item: item[1].seen_ms)[:limit])

    async def in_flight(self, entity: str, gids: Iterable[str]) -> set[str]:
        """Those of ``gids`` with a change on its way to this system: in their partition stream and its
        ``to:{system}`` group, either not yet delivered or delivered and not yet acknowledged (the writer
        acks only after the write and its commit). A partition with more than ``IN_FLIGHT_SCAN`` such
        entries counts all of ``gids`` in it as in flight (judged later, when it has drained)."""
        by_partition: dict[int, set[str]] = {}
        for gid in gids:
            by_partition.setdefault(partition_of(gid, self.ctx.settings.streams.partitions), set()).add(gid)
        probes = await self._positions(entity, sorted(by_partition))
        if not probes:
            return set()
        redis, group = self.ctx.redis, Keys.group(self.system)
        async with redis.pipeline(transaction=False) as pipe:
            for _, stream, delivered, pending in probes:
                pipe.xrange(stream, min="(" + delivered, max="+", count=IN_FLIGHT_SCAN)
                pipe.xpending_range(stream, group, min="-", max="+", count=max(1, min(pending, IN_FLIGHT_SCAN)))
            replies = await pipe.execute()
        found: set[str] = set()
        unacked: list[tuple[int, str, list[str]]] = []
        for i, (p, stream, _delivered, pending) in enumerate(probes):
            undelivered, rows = replies[2 * i], replies[2 * i + 1]
            if len(undelivered) >= IN_FLIGHT_SCAN or pending > IN_FLIGHT_SCAN:
                found |= by_partition[p]
                continue
            found |= self._bound_here(by_partition[p], (fields for _, fields in stream_entries(undelivered)))
            unacked.append((p, stream, [row.entry_id for row in pending_rows(rows)]))
        async with redis.pipeline(transaction=False) as pipe:
            for _, stream, ids in unacked:
                for entry_id in ids:
                    pipe.xrange(stream, min=entry_id, max=entry_id, count=1)
            fetched = iter(await pipe.execute())
        for p, _, ids in unacked:
            found |= self._bound_here(by_partition[p], (first_fields(next(fetched)) for _ in ids))
        return found

    async def _positions(self, entity: str, partitions: list[int]) -> list[tuple[int, str, str, int]]:
        """(partition, stream, last delivered id, pending count) of this system's group, where it exists."""
        group = Keys.group(self.system)
        streams = [(p, self.ctx.keys.changes(entity, p)) for p in partitions]
        async with self.ctx.redis.pipeline(transaction=False) as pipe:
            for _, stream in streams:
                pipe.xinfo_groups(stream)
            infos = await pipe.execute(raise_on_error=False)
        out = []
        for (p, stream), info in zip(streams, infos, strict=True):
            mine = [g for g in info if text(g["name"]) == group] if isinstance(info, list) else []
            if mine:
                out.append((p, stream, text(mine[0]["last-delivered-id"]), int(mine[0].get("pending") or 0)))
        return out

    def _bound_here(self, gids: set[str], entries: Iterable[dict[bytes, bytes]]) -> set[str]:
        """Those of ``gids`` that one of ``entries`` (change records) will write to this system."""
        out: set[str] = set()
        for fields in entries:
            try:
                change = decode(fields)
            except MalformedEntry:
                continue
            if change.gid in gids and change.source != self.system and change.only_to in (None, self.system):
                out.add(change.gid)
        return out
