"""Locked records: changes to what the target has already billed or closed (``entities.*.locked``).

A record is locked in the target when its global id is on a live invoice there (``billed:{entity}``, kept
by the invoice owner's poller) or its date falls in a closed period. Its changes, and its withdrawal
(it stops meeting the target's ``when``, e.g. an approval taken back), follow the entity's policy:
``block`` and ``review`` file exceptions (``locked``, ``finance_review``) and write nothing; ``adjust``
writes an increase as a new adjustment record with the difference, and sends anything else to finance
review (a decrease needs a credit note). A withdrawal of an unlocked record deletes it in the target.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from accord.actors.context import Context
from accord.actors.governance import Ownership
from accord.actors.write.outcome import Outcome, RecordWork
from accord.config.settings import LockedPolicy
from accord.model.entities import entity_fields

ADJUSTED_FIELD = "_adjusted"  # in the target's projection of the original: the sum of its adjustments


class LockedRecords:
    def __init__(self, entity: str, policy: LockedPolicy | None, ownership: Ownership,
                 ctx: Callable[[], Context]) -> None:
        self.entity = entity
        self.policy = policy
        self.ownership = ownership
        self._ctx = ctx

    def applies(self, target: str) -> bool:
        return self.policy is not None and self.policy.target == target

    async def locked(self, works: list[RecordWork], projections: list[dict[str, Any] | None]) -> list[str | None]:
        """Why each record is locked in the target (``None``: it is not)."""
        assert self.policy is not None
        ctx = self._ctx()
        billed = await ctx.redis.smismember(ctx.keys.billed(self.entity), [w.gid for w in works]) if works else []
        out: list[str | None] = []
        for work, projection, on_invoice in zip(works, projections, billed, strict=True):
            day = self._date(work, projection)
            if on_invoice:
                out.append(f"it is on an invoice in {self.policy.target}")
            elif day is not None and self.policy.closed_through is not None and (
                    day <= self.policy.closed_through.isoformat()):
                out.append(f"its {self.policy.date_field} {day} is in a closed period (through "
                           f"{self.policy.closed_through})")
            else:
                out.append(None)
        return out

    def _date(self, work: RecordWork, projection: dict[str, Any] | None) -> str | None:
        field = self.policy.date_field if self.policy else None
        if field is None:
            return None
        value = (work.source.fields.get(field) if work.source else None) or (projection or {}).get(field)
        return str(value) if value else None

    async def change(self, target: str, work: RecordWork, why: str, projection: dict[str, Any] | None,
                     outcome: Outcome) -> None:
        """Apply the policy to a change of a locked record (``work.ready`` tells whether it is written)."""
        assert self.policy is not None and work.source is not None
        what = f"{self.entity} {work.gid} changed in {work.source.source} but {why}"
        if self.policy.policy == "block":
            outcome.fail_work(work, "locked", f"{what}: blocked (entities.{self.entity}.locked.policy); change it "
                                              f"back in {work.source.source}, or unlock it in {target} and retry")
            return
        delta = self._increase(work, projection)
        if self.policy.policy == "review" or delta is None:
            need = "" if self.policy.policy == "review" else " (only an increase can be adjusted: this needs a credit note)"
            outcome.fail_work(work, "finance_review", f"{what}: for finance to review{need}; adjust it in "
                                                      f"{target}, then resolve this exception")
            return
        await self._adjust(target, work, delta, projection or {})

    def withdrawn(self, work: RecordWork, why: str, outcome: Outcome) -> None:
        """A locked record no longer meets the target's conditions (an approval withdrawn)."""
        assert self.policy is not None and work.source is not None
        what = (f"{self.entity} {work.gid} no longer qualifies for {self.policy.target} (changed in "
                f"{work.source.source}) but {why}")
        if self.policy.policy == "block":
            outcome.fail_work(work, "locked", f"{what}: blocked; restore it in {work.source.source} or unlock it "
                                              f"in {self.policy.target}, then retry")
        else:
            outcome.fail_work(work, "finance_review", f"{what}: for finance to review (a withdrawal of billed work "
                                                      "needs a credit note); then resolve this exception")

    def _increase(self, work: RecordWork, projection: dict[str, Any] | None) -> Decimal | None:
        measure = self.policy.measure if self.policy else None
        if measure is None or work.source is None or work.source.op != "upsert" or measure not in work.source.fields:
            return None
        target_holds = projection or {}
        others = {k for k, v in self.ownership.writable_to(self.policy.target, work.source.fields).items()  # type: ignore[union-attr]
                  if k != measure and k in target_holds and target_holds[k] != v}
        if others:
            return None  # only a change of the measure alone can be carried by an adjustment
        try:
            wanted = Decimal(str(work.source.fields[measure]))
            held = Decimal(str((projection or {}).get(measure) or 0))
            adjusted = Decimal(str((projection or {}).get(ADJUSTED_FIELD) or 0))
        except InvalidOperation:
            return None
        delta = wanted - held - adjusted
        return delta if delta > 0 else None

    async def _adjust(self, target: str, work: RecordWork, delta: Decimal, projection: dict[str, Any]) -> None:
        """Turn ``work`` into the create of an adjustment record carrying ``delta``."""
        assert self.policy is not None and self.policy.measure is not None and work.source is not None
        ctx = self._ctx()
        [source], _ = await ctx.projections.load(work.source.source, self.entity, [work.source.source_id])
        fields = {k: v for k, v in {**(source or {}), **work.source.fields}.items()
                  if not k.startswith("_") and v is not None}
        fields = self.ownership.synced_with(target, fields)
        fields[self.policy.measure] = format(delta.normalize(), "f")
        if "notes" in entity_fields(self.entity):  # say what the adjustment is, where the record can
            fields["notes"] = f"Adjustment of {work.gid}: +{fields[self.policy.measure]} {self.policy.measure}"
        adjusted = Decimal(str(projection.get(ADJUSTED_FIELD) or 0)) + delta
        work.adjusts = (work.target_id or "", format(adjusted.normalize(), "f"))
        work.original_gid, work.gid = work.gid, f"{work.gid}~adj{work.source.version}"
        work.source = msgspec.structs.replace(work.source, gid=work.gid)
        work.target_id, work.version, work.fields = None, None, fields
        work.ready = work.new_link = True
