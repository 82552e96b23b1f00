"""Reference fields between records: native ids in a system, global ids in change records.

A reference to entity R is *native* in system S when S holds R (``settings.holds(S, R)``): pollers turn
native ids into global ids (minting one for a record not seen yet, so it stays stable), writers turn
global ids back into the target's ids. A reference to an entity the system does not hold travels as
the global id itself (stored verbatim, e.g. in a custom text field).

References sit either at the top of a record (``REFERENCES``: a time entry's ``project``) or inside
the items of a list field (``LINE_REFERENCES``: an invoice line's ``time_entry``); both are handled
the same way, slot by slot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from accord.config.settings import Settings
from accord.model.entities import LINE_REFERENCES, REFERENCES
from accord.streams.state import Identity

# One reference in one record: (the dict holding it, its key, the referenced entity, its path for messages)
Slot = tuple[dict[str, Any], str, str, str]


class References:
    def __init__(self, settings: Settings, identity: Identity) -> None:
        self.settings = settings
        self.identity = identity

    def native_fields(self, system: str, entity: str) -> dict[str, str]:
        """Top-level reference fields of ``entity`` that hold native ids in ``system`` (field -> entity)."""
        return {f: r for f, r in REFERENCES.get(entity, {}).items() if self.settings.holds(system, r)}

    def native_line_fields(self, system: str, entity: str) -> dict[str, dict[str, str]]:
        """Per list field, the item reference fields that hold native ids in ``system``."""
        out = {}
        for field, refs in LINE_REFERENCES.get(entity, {}).items():
            held = {k: r for k, r in refs.items() if self.settings.holds(system, r)}
            if held:
                out[field] = held
        return out

    def has_native(self, system: str, entity: str) -> bool:
        return bool(self.native_fields(system, entity) or self.native_line_fields(system, entity))

    def _slots(self, system: str, entity: str, fields: dict[str, Any]) -> Iterator[Slot]:
        """Every filled reference of one record that is native in ``system``."""
        for field, ref_entity in self.native_fields(system, entity).items():
            if fields.get(field):
                yield fields, field, ref_entity, field
        for field, refs in self.native_line_fields(system, entity).items():
            items = fields.get(field)
            if not isinstance(items, list):
                continue
            copies = [dict(item) if isinstance(item, dict) else item for item in items]
            fields[field] = copies  # never edit the caller's nested dicts in place
            for item in copies:
                if not isinstance(item, dict):
                    continue
                for key, ref_entity in refs.items():
                    if item.get(key):
                        yield item, key, ref_entity, f"{field}.{key}"

    async def to_global(self, system: str, entity: str, records: Sequence[dict[str, Any]]) -> None:
        """Replace native reference ids by global ids, in place."""
        slots = [slot for fields in records for slot in self._slots(system, entity, fields)]
        by_entity: dict[str, set[str]] = defaultdict(set)
        for holder, key, ref_entity, _ in slots:
            by_entity[ref_entity].add(str(holder[key]))
        gids: dict[str, dict[str, str]] = {}
        for ref_entity, ids in by_entity.items():
            gids[ref_entity], _ = await self.identity.resolve(ref_entity, system, sorted(ids), {})
        for holder, key, ref_entity, _ in slots:
            holder[key] = gids[ref_entity][str(holder[key])]

    async def canonicalise(self, system: str, entity: str, records: Sequence[dict[str, Any]]) -> int:
        """Replace, in place, global ids that turned out to be aliases (minted for a reference before its
        record was linked) by the record's own gid. Returns how many were replaced."""
        slots = [slot for fields in records for slot in self._slots(system, entity, fields)]
        by_entity: dict[str, set[str]] = defaultdict(set)
        for holder, key, ref_entity, _ in slots:
            by_entity[ref_entity].add(str(holder[key]))
        canonical = {ref_entity: await self.identity.canonical(ref_entity, sorted(gids))
                     for ref_entity, gids in by_entity.items()}
        replaced = 0
        for holder, key, ref_entity, _ in slots:
            gid = canonical[ref_entity].get(str(holder[key]))
            if gid is not None:
                holder[key], replaced = gid, replaced + 1
        return replaced

    async def to_native(self, target: str, entity: str, records: Sequence[dict[str, Any]]
                        ) -> list[dict[str, tuple[str, str]]]:
        """Replace global reference ids by the target's ids, in place. Returns, per record, the reference
        paths whose record has no id in the target yet, each with (referenced entity, its global id):
        the record must wait for them (it is parked)."""
        per_record = [list(self._slots(target, entity, fields)) for fields in records]
        by_entity: dict[str, set[str]] = defaultdict(set)
        for slots in per_record:
            for holder, key, ref_entity, _ in slots:
                by_entity[ref_entity].add(str(holder[key]))
        ids: dict[str, dict[str, str]] = {}
        for ref_entity, gids in by_entity.items():
            ids[ref_entity] = await self.identity.targets_for(ref_entity, target, sorted(gids))
        missing: list[dict[str, tuple[str, str]]] = []
        for slots in per_record:
            gaps: dict[str, tuple[str, str]] = {}
            for holder, key, ref_entity, path in slots:
                native = ids[ref_entity].get(str(holder[key]))
                if native is None:
                    gaps[path] = (ref_entity, str(holder[key]))
                else:
                    holder[key] = native
            missing.append(gaps)
        return missing
