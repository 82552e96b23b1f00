"""Ask a source's poller to read a referenced entity now, when a record parks waiting for it.

A task read in the PSA before its project (each entity has its own poll schedule) parks in the ERP
writer until the project has an id there; the project would be read at its next poll, up to a base
interval (or a backed-off one) later. A nudge is the hint a webhook gives: one entry on the system's
intake stream naming the entity, so its poller reads it at once. At most one nudge per system and
entity per that entity's base poll interval, so a month-end backlog of parked records costs no more
than the poll schedule already does.

Nothing here survives a crash, and nothing needs to: a lost nudge only leaves the poll to its schedule.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from redis.asyncio import Redis

from accord.config.settings import Settings
from accord.streams.keys import Keys

INTAKE_MAXLEN = 1000  # as the webhook endpoint caps it


class Nudger:
    """Hints pollers about referenced records not yet in a target, rate-limited per system and entity."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def due(self, wanted: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Those (system, entity) pairs that system polls and that were not nudged within the entity's
        base poll interval; they count as nudged from now."""
        now, out = self._clock(), []
        for system, entity in sorted(set(wanted)):
            spec = self._settings.entities.get(entity)
            if spec is None or system not in spec.systems:
                continue
            if now - self._last.get((system, entity), float("-inf")) < spec.poll_interval:
                continue
            self._last[(system, entity)] = now
            out.append((system, entity))
        return out

    async def send(self, redis: Redis, keys: Keys, wanted: Iterable[tuple[str, str]]) -> int:
        """One intake entry per due pair (one round trip); returns how many were sent."""
        due = self.due(wanted)
        if not due:
            return 0
        async with redis.pipeline(transaction=False) as pipe:
            for system, entity in due:
                pipe.xadd(keys.intake(system), {"entity": entity}, maxlen=INTAKE_MAXLEN, approximate=True)
            await pipe.execute()
        return len(due)
