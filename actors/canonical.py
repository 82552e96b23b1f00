"""Records as the pipeline sees them: the configured field map applied, only the fields synced with their
system, canonical spelling, and references turned from native ids into global ids.

One place for it, used by the poller (what it publishes) and the reconciler (what it compares), so both
read a system the same way. Holds nothing across a crash but the drift counts not yet drained.
"""

from __future__ import annotations

from collections import Counter

import msgspec
from loguru import logger

from accord.actors.governance import Ownership
from accord.actors.references import References
from accord.config.mapping import MapError, configured_map
from accord.config.settings import Settings
from accord.connectors.base import SourceRecord
from accord.model.entities import normalise_fields


class Canonicaliser:
    """Canonical records of one system. ``drift`` counts, per entity, fields the configured map expected
    and did not find (the poller drains it into its stats)."""

    def __init__(self, settings: Settings, system: str, references: References) -> None:
        self.settings = settings
        self.system = system
        self.references = references
        self.ownership = {e: Ownership.from_settings(e, settings.entities[e]) for e in settings.entities_of(system)}
        self.drift: Counter[str] = Counter()

    async def records(self, entity: str, records: list[SourceRecord]) -> list[SourceRecord]:
        """``records`` in canonical form; one whose fields do not fit the canonical model keeps them and
        carries the error (deleted and already failed records pass unchanged)."""
        out = [record if record.deleted or record.error else self._canonical(entity, record) for record in records]
        if not self.references.has_native(self.system, entity):
            return out
        fields = [dict(r.fields) for r in out]
        await self.references.to_global(self.system, entity, fields)
        return [msgspec.structs.replace(r, fields=f) for r, f in zip(out, fields, strict=True)]

    def _canonical(self, entity: str, record: SourceRecord) -> SourceRecord:
        try:
            fields = self.ownership[entity].synced_with(self.system, self._configured(entity, record))
            return msgspec.structs.replace(record, fields=normalise_fields(entity, fields))
        except (msgspec.ValidationError, MapError) as exc:
            return msgspec.structs.replace(record, error=f"{self.system} {entity} {record.id}: {exc}")

    def _configured(self, entity: str, record: SourceRecord) -> dict[str, object]:
        """The record's fields with the configured field map applied; drift is counted (and refused in
        strict mode)."""
        cmap = configured_map(self.settings, self.system, entity)
        if cmap is None or record.raw is None:
            return record.fields
        fields, drift = cmap.read(record.fields, record.raw)
        if drift:
            self.drift[entity] += len(drift)
            logger.bind(system=self.system, entity=entity, record=record.id).warning("schema drift: {}",
                                                                                     "; ".join(drift))
            if cmap.map.strict:
                raise MapError(f"schema drift (strict map): {'; '.join(drift)}; update mappings."
                               f"{self.system}.{entity}.expect or the map")
        return fields
