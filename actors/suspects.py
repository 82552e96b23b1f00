"""Non-owner edits wait for the owner's next read before they are judged.

A system may change a field it does not own for two reasons: a person edited it (a governance
violation), or the system derived it from something Accord wrote there (an invoice's balance and status
after its payments arrive) and is merely catching up with a change the owner made first. The two look
the same to the poller, and the owner's last-seen value may predate the owner's change. So a suspect
edit is parked in Redis (``suspects:{system}:{entity}``) and judged once the owner has been read again
after it was seen: if the system then holds the owner's value, it was convergence, not an edit.

What survives a crash: suspects are written in the same atomic batch as the page that found them and
removed in the batch of the page that judged them, so each is judged exactly once.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from accord.actors.context import Context
from accord.streams.batch import Batch


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

    async def due(self, entity: str, owner_of: Callable[[str], str]) -> dict[str, Suspect]:
        """Parked suspects whose fields' owners have all been read since the suspect was seen: a fetch of the
        owner sent at or after the fetch that showed the suspect sees every owner change that caused it."""
        raw = await self.ctx.redis.hgetall(self.ctx.keys.suspects(self.system, entity))
        if not raw:
            return {}
        parked = {(k.decode() if isinstance(k, bytes) else k): _decoder.decode(v) for k, v in raw.items()}
        owners = sorted({owner_of(f) for s in parked.values() for f in s.changed})
        read = {owner: await self.ctx.cursors.fetched_ms(owner, entity) for owner in owners}
        return {rid: s for rid, s in parked.items() if all(read[owner_of(f)] >= s.seen_ms for f in s.changed)}
