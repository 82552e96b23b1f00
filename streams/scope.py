"""What the backbone needs to know of a deployment, as one narrow value: the key namespace, the partitions
per entity and how long the audit trail is kept. Services that work on the streams (the exception desk,
replay) take a ``Scope``, not the whole ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass

from accord.config.settings import Settings
from accord.streams.audit import AuditTrail
from accord.streams.keys import Keys


@dataclass(frozen=True)
class Scope:
    keys: Keys
    partitions: int
    audit_retention: float

    @classmethod
    def of(cls, settings: Settings) -> Scope:
        return cls(Keys(settings.namespace), settings.streams.partitions, float(settings.streams.audit_retention))

    @property
    def audit(self) -> AuditTrail:
        return AuditTrail(self.keys, self.audit_retention)
