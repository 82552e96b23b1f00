"""Ownership rules and change detection: pure functions shared by pollers and writers (DESIGN §3).

* A system may publish only the fields it owns (entity owner, overridden per field).
* A writer never writes a field the target owns.
* A changed field the reading system does not own is a governance violation: counted and logged,
  never propagated.
* A record read at a version older than the one stored with its last-seen projection is a stale read
  (the page was fetched before a write Accord has since committed): neither a change nor a violation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accord.actors.poll.page import DELETED_FIELD
from accord.config.settings import EntitySettings
from accord.model.entities import entity_fields
from accord.streams.state import VERSION_FIELD


@dataclass(frozen=True)
class Ownership:
    """Which system owns each field of one entity."""

    entity: str
    owner: str
    field_owners: Mapping[str, str]
    excluded: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_settings(cls, entity: str, settings: EntitySettings) -> Ownership:
        owners = {name: settings.fields.get(name, settings.owner) for name in entity_fields(entity)}
        excluded = {system: frozenset(fields) for system, fields in settings.exclude.items()}
        return cls(entity=entity, owner=settings.owner, field_owners=owners, excluded=excluded)

    def synced_with(self, system: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``fields`` minus those not synced with ``system`` at all (``exclude``)."""
        excluded = self.excluded.get(system, frozenset())
        return {k: v for k, v in fields.items() if k not in excluded} if excluded else dict(fields)

    def owner_of(self, field: str) -> str:
        return self.field_owners.get(field, self.owner)

    def owned_by(self, system: str) -> frozenset[str]:
        return frozenset(f for f, o in self.field_owners.items() if o == system)

    def writable_to(self, target: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``fields`` minus those the target owns and those not synced with it."""
        return {k: v for k, v in self.synced_with(target, fields).items() if self.owner_of(k) != target}


@dataclass(frozen=True)
class Observation:
    """What a poller learned from one record: owned fields to publish, non-owner edits, echoes."""

    changed: dict[str, Any]
    violations: dict[str, tuple[Any, Any]]  # field -> (last seen, now)
    echoed: frozenset[str]
    adopted: dict[str, Any]  # non-owned fields seen for the first time: checked against the owner's value

    @property
    def is_noop(self) -> bool:
        return not self.changed


def observe(system: str, ownership: Ownership, current: Mapping[str, Any],
            seen: Mapping[str, Any] | None, inflight: Mapping[str, Any]) -> Observation:
    """Compare a record as read now with its last-seen projection and the writes in flight to it.

    A field equal to the value Accord is writing is an echo. A field never seen before is learned as
    a baseline: published if the system owns it (and it has a value); otherwise, with a value, it is
    ``adopted`` and the caller compares it with the owner's value.
    """
    changed: dict[str, Any] = {}
    violations: dict[str, tuple[Any, Any]] = {}
    adopted: dict[str, Any] = {}
    echoed: set[str] = set()
    owned = ownership.owned_by(system)
    for name, value in current.items():
        if name in inflight and inflight[name] == value:
            echoed.add(name)
            continue
        known = seen is not None and name in seen
        previous = seen.get(name) if seen is not None else None
        if known and previous == value:
            continue
        if name in owned:
            if known or value is not None:
                changed[name] = value
        elif known:
            violations[name] = (previous, value)
        elif value is not None:
            adopted[name] = value
    return Observation(changed=changed, violations=violations, echoed=frozenset(echoed), adopted=adopted)


def is_stale_read(version: int, seen: Mapping[str, Any] | None) -> bool:
    """Whether a record read at ``version`` is older than what the last-seen projection already holds.

    The projection's version (``_v``) is the system's own version of the record (SyncToken, SystemModstamp,
    updated_at: comparable within that system only) as last read by the poller or returned by a write
    Accord made. A poller page fetched before such a write, and planned after the writer committed it,
    shows the record as it was before the write: comparing its values with the newer projection would see
    every field Accord just wrote "changed back" (a false edit, or a false governance violation on a field
    the system does not own). The record's next read shows the newer version. A version equal to the
    stored one is not stale (systems with coarse stamps, e.g. Harvest's ``updated_at`` to the second, may
    give two versions one stamp); a projection of a deleted record, or one without a version, never makes
    a read stale.
    """
    if seen is None or seen.get(DELETED_FIELD):
        return False
    stored = seen.get(VERSION_FIELD)
    return isinstance(stored, int) and not isinstance(stored, bool) and version < stored


ANY_VALUE = "*"  # a condition value meaning "set to anything" (e.g. a task that belongs to some project)


def meets(state: dict[str, Any], conditions: dict[str, Any]) -> bool:
    """Whether every condition holds (a list condition means any of its values; ``"*"``, any value at all)."""
    return all(_holds(state.get(field), wanted) for field, wanted in conditions.items())


def _holds(value: Any, wanted: Any) -> bool:
    if wanted == ANY_VALUE:
        return value is not None
    return value in wanted if isinstance(wanted, list) else value == wanted
