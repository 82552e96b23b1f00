"""Judging non-owner edits for a poller: violations counted and logged, then reverted to the owner's value
or filed for review, as the entity's ``on_violation`` says (DESIGN §3).

A suspect edit waits for the owner's next read (``suspects``); a value seen for the first time is
compared with the owner's (``check_adopted``); reverts are capped per record and hour so a value a system
cannot hold is never reverted forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from loguru import logger

from accord.actors.context import Context
from accord.actors.governance import Ownership
from accord.actors.poll.page import DELETED_FIELD, PagePlan
from accord.actors.poll.suspects import Suspect, SuspectBook
from accord.config.settings import Settings
from accord.connectors.base import SourceRecord
from accord.streams.exceptions import ExceptionRecord
from accord.streams.records import ChangeRecord, now_ms
from accord.streams.state import Stats

MAX_REVERTS = 3

ChangeBuilder = Callable[..., ChangeRecord]


class EditJudge:
    def __init__(self, settings: Settings, system: str, ownership: dict[str, Ownership], ctx: Context,
                 change: ChangeBuilder) -> None:
        self.settings = settings
        self.system = system
        self.ownership = ownership
        self.ctx = ctx
        self.change = change  # builds a change record on behalf of the poller (a revert, here)

    def violation(self, entity: str, record: SourceRecord, gid: str, violations: dict[str, tuple[Any, Any]],
                   plan: PagePlan) -> None:
        """Count and log a non-owner edit; revert it or send it to review, as the entity says."""
        plan.counts[Stats.label("violations", self.system, entity)] += len(violations)
        policy = self.settings.entities[entity].on_violation
        logger.bind(system=self.system, entity=entity, record=record.id, gid=gid).warning(
            "governance violation ({}): {} changed field(s) it does not own: {} ({} {})", policy, self.system,
            ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in violations.items()), entity, record.id)
        if policy == "revert":
            plan.reverts.append((record, gid, violations))
        elif policy == "review":
            plan.exceptions.append(self.governance_exception(entity, record, gid, violations))

    async def check_suspects(self, entity: str, plan: PagePlan) -> None:
        """Park this page's non-owner edits; judge the parked ones the owner has been read since: a
        violation unless the system now holds the owner's own value (``actors.suspects``). What the system
        holds now is its last-seen projection as this page leaves it: a record this page read again is
        judged by that read, not by the (possibly stale) one that made it a suspect. A would-be violation
        of a record with a change on its way to this system waits until it has been delivered: the
        system may only lag behind the owner (``SuspectBook.in_flight``)."""
        for record, gid, changed in plan.suspects:
            park(plan, record.id, Suspect(gid=gid, version=record.version, changed=changed,
                                          seen_ms=plan.fetched_ms))
        book = SuspectBook(self.ctx, self.system)
        due = await book.due(entity, self.ownership[entity].owner_of)
        if not due:
            return
        ids = sorted(due)
        plan.judged.extend(ids)
        now_held, _ = await self.ctx.projections.load(self.system, entity, ids)
        read_now: dict[str, dict[str, Any]] = {}
        for record_id, fields, _version in plan.remember:  # applied after this page's judgement
            read_now.setdefault(record_id, {}).update(fields)
        looked_up = await self.owner_values(entity, [(due[i].gid, due[i].changed) for i in ids])
        found: list[tuple[str, Suspect, dict[str, Any], dict[str, tuple[Any, Any]]]] = []
        for rid, held, (owners, owner_deleted) in zip(ids, now_held, looked_up, strict=True):
            suspect = due[rid]
            held = {**(held or {}), **read_now.get(rid, {})}
            if suspect.adopted:
                self._repark_unknown(entity, rid, suspect, owners, owner_deleted, plan)
            violations = {f: (old, new) for f, (old, new) in suspect.changed.items()
                          if held.get(f) == new and (f not in owners or owners[f] != new)
                          and not (suspect.adopted and f not in owners)}
            if violations and not owner_deleted:
                found.append((rid, suspect, held, violations))
        moving = await book.in_flight(entity, {s.gid for _, s, _, _ in found}) if found else set()
        for rid, suspect, held, violations in found:
            if suspect.gid in moving:
                park(plan, rid, msgspec.structs.replace(suspect, changed={f: suspect.changed[f] for f in violations}))
            else:
                record = SourceRecord(id=rid, version=suspect.version, fields=held)
                self.violation(entity, record, suspect.gid, violations, plan)

    async def check_adopted(self, entity: str, plan: PagePlan) -> None:
        """A non-owned field first seen with a value that differs from its owner's is a violation too;
        when the owner does not hold the record yet, it is judged once the owner does (parked). So is one
        of a record with a change on its way to this system, judged once it has been delivered: a record
        Accord has just created here, read before the writer recorded it, shows the values that create
        carried, and the owner may have changed them since (a rename on its way)."""
        looked_up = await self.owner_values(entity, [(gid, adopted) for _, gid, adopted in plan.adopted])
        found: list[tuple[SourceRecord, str, dict[str, tuple[Any, Any]]]] = []
        for (record, gid, adopted), (owners, owner_deleted) in zip(plan.adopted, looked_up, strict=True):
            if owner_deleted:
                continue
            violations = {f: (owners[f], v) for f, v in adopted.items() if f in owners and owners[f] != v}
            if violations:
                found.append((record, gid, violations))
            unknown: dict[str, tuple[object, object]] = {f: (None, v) for f, v in adopted.items() if f not in owners}
            if unknown:
                park(plan, record.id, Suspect(gid=gid, version=record.version, changed=unknown,
                                              seen_ms=plan.fetched_ms, adopted=True))
        book = SuspectBook(self.ctx, self.system)
        moving = await book.in_flight(entity, {gid for _, gid, _ in found}) if found else set()
        for record, gid, violations in found:
            if gid in moving:
                park(plan, record.id, Suspect(gid=gid, version=record.version, changed=violations,
                                              seen_ms=plan.fetched_ms))
            else:
                self.violation(entity, record, gid, violations, plan)

    def _repark_unknown(self, entity: str, record_id: str, suspect: Suspect, owners: dict[str, Any],
                        owner_deleted: bool, plan: PagePlan) -> None:
        """An adopted value whose owner still lacks the record waits on, up to the entity's park timeout."""
        waiting = {f: change for f, change in suspect.changed.items() if f not in owners}
        timeout_ms = int(self.settings.entities[entity].park_timeout * 1000)
        if waiting and not owner_deleted and now_ms() - suspect.seen_ms < timeout_ms:
            park(plan, record_id, msgspec.structs.replace(suspect, changed=waiting))

    async def plan_reverts(self, entity: str, plan: PagePlan) -> None:
        """Write the owner's value back over each non-owner edit (``on_violation = "revert"``); when the
        owner's value is unknown the edit goes to review instead."""
        if not plan.reverts:
            return
        ownership = self.ownership[entity]
        looked_up = await self.owner_values(entity, [(gid, violations) for _, gid, violations in plan.reverts])
        for (record, gid, violations), (restore, owner_deleted) in zip(plan.reverts, looked_up, strict=True):
            if owner_deleted:
                continue  # the owner deleted the record: nothing to restore, nothing to review
            if restore and await self._revert_allowed(entity, record.id):
                revert = self.change(entity, gid, "revert", record, restore,
                                     source=ownership.owner_of(next(iter(restore))))
                plan.changes.append(msgspec.structs.replace(revert, only_to=self.system))
            elif restore:
                restore = {}  # reverted too often: a human looks at it instead of a loop
            missing = {f: v for f, v in violations.items() if f not in restore}
            if missing:
                plan.exceptions.append(self.governance_exception(entity, record, gid, missing))

    async def _revert_allowed(self, entity: str, system_id: str) -> bool:
        """At most ``MAX_REVERTS`` reverts per record and hour: a value this system cannot hold (a lossy
        mapping) would otherwise be reverted forever. Beyond that the edit goes to review."""
        key = self.ctx.keys.reverts(self.system, entity, system_id)
        async with self.ctx.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600)
            count, _ = await pipe.execute()
        return int(count) <= MAX_REVERTS

    async def owner_values(self, entity: str, items: list[tuple[str, Iterable[str]]]
                            ) -> list[tuple[dict[str, Any], bool]]:
        """For each (gid, fields): the owners' last-seen values of those fields (the known ones), and
        whether an owner deleted the record. Three Redis calls for the whole page, whatever its size."""
        if not items:
            return []
        ctx = self.ctx
        ownership = self.ownership[entity]
        xrefs = await ctx.identity.xrefs(entity, [gid for gid, _ in items])
        wanted: dict[str, set[str]] = {}
        for (_, fields), xref in zip(items, xrefs, strict=True):
            for field in fields:
                owner = ownership.owner_of(field)
                if owner in xref:
                    wanted.setdefault(owner, set()).add(xref[owner])
        seen: dict[tuple[str, str], dict[str, Any] | None] = {}
        for owner, ids in wanted.items():
            loaded, _ = await ctx.projections.load(owner, entity, sorted(ids))
            seen.update({(owner, i): p for i, p in zip(sorted(ids), loaded, strict=True)})
        out: list[tuple[dict[str, Any], bool]] = []
        for (_, fields), xref in zip(items, xrefs, strict=True):
            values: dict[str, Any] = {}
            deleted = False
            for field in fields:
                owner = ownership.owner_of(field)
                projection = seen.get((owner, xref.get(owner, "")))
                if projection is None:
                    continue
                if projection.get(DELETED_FIELD):
                    deleted = True
                    break
                # a field missing from the owner's projection was never set there (Accord created the
                # record, or its poller has not read it since): its value is empty until it says otherwise
                values[field] = projection.get(field)
            out.append(({} if deleted else values, deleted))
        return out

    def governance_exception(self, entity: str, record: SourceRecord, gid: str,
                              violations: dict[str, tuple[Any, Any]]) -> ExceptionRecord:
        ownership = self.ownership[entity]
        detail = "; ".join(f"{f}: {old!r} -> {new!r} (owner: {ownership.owner_of(f)})"
                           for f, (old, new) in violations.items())
        return ExceptionRecord(
            exception_id=f"gov:{self.system}:{entity}:{record.id}:{record.version}", reason="governance",
            message=f"{self.system} edited field(s) it does not own: {detail}; change them in the owner system "
                    "or resolve this exception", entity=entity, gid=gid, source=self.system,
            source_id=record.id, payload=msgspec.msgpack.encode(record.fields), created_ms=now_ms())


def park(plan: PagePlan, record_id: str, suspect: Suspect) -> None:
    """Park ``suspect`` with this page. One suspect per record: a record's suspects are merged (the later
    one's view of a field wins; judged when the owner has been read since the later of them)."""
    for i, (parked_id, parked) in enumerate(plan.parked):
        if parked_id == record_id:
            older, newer = (parked, suspect) if suspect.seen_ms >= parked.seen_ms else (suspect, parked)
            plan.parked[i] = (record_id, Suspect(
                gid=suspect.gid, version=max(parked.version, suspect.version),
                changed={**older.changed, **newer.changed}, seen_ms=newer.seen_ms,
                adopted=parked.adopted or suspect.adopted))
            return
    plan.parked.append((record_id, suspect))
