"""Reference fields between records: native ids in a system, global ids in change records.

A reference to entity R is *native* in system S when S holds R (``settings.holds(S, R)``): pollers turn
native ids into global ids (minting one for a record not seen yet, so it stays stable), writers turn
global ids back into the target's ids. A reference to an entity the system does not hold travels as
the global id itself (stored verbatim, e.g. in a custom text field).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from accord.config.settings import Settings
from accord.streams.entities import REFERENCES
from accord.streams.state import Identity


class References:
    def __init__(self, settings: Settings, identity: Identity) -> None:
        self.settings = settings
        self.identity = identity

    def native_fields(self, system: str, entity: str) -> dict[str, str]:
        """Reference fields of ``entity`` that hold native ids in ``system`` (field -> referenced entity)."""
        return {f: r for f, r in REFERENCES.get(entity, {}).items() if self.settings.holds(system, r)}

    async def to_global(self, system: str, entity: str, records: Sequence[dict[str, Any]]) -> None:
        """Replace native reference ids by global ids, in place."""
        wanted = self.native_fields(system, entity)
        by_entity: dict[str, set[str]] = defaultdict(set)
        for fields in records:
            for field, ref_entity in wanted.items():
                if fields.get(field):
                    by_entity[ref_entity].add(str(fields[field]))
        gids: dict[str, dict[str, str]] = {}
        for ref_entity, ids in by_entity.items():
            gids[ref_entity], _ = await self.identity.resolve(ref_entity, system, sorted(ids), {})
        for fields in records:
            for field, ref_entity in wanted.items():
                if fields.get(field):
                    fields[field] = gids[ref_entity][str(fields[field])]

    async def to_native(self, target: str, entity: str, records: Sequence[dict[str, Any]]) -> list[set[str]]:
        """Replace global reference ids by the target's ids, in place. Returns, per record, the fields
        whose referenced record has no id in the target yet (the record must wait: it is parked)."""
        wanted = self.native_fields(target, entity)
        by_entity: dict[str, set[str]] = defaultdict(set)
        for fields in records:
            for field, ref_entity in wanted.items():
                if fields.get(field):
                    by_entity[ref_entity].add(str(fields[field]))
        ids: dict[str, dict[str, str]] = {}
        for ref_entity, gids in by_entity.items():
            ids[ref_entity] = await self.identity.targets_for(ref_entity, target, sorted(gids))
        missing: list[set[str]] = []
        for fields in records:
            gaps: set[str] = set()
            for field, ref_entity in wanted.items():
                value = fields.get(field)
                if not value:
                    continue
                native = ids[ref_entity].get(str(value))
                if native is None:
                    gaps.add(field)
                else:
                    fields[field] = native
            missing.append(gaps)
        return missing
