"""Planning one target's writes: from deliveries to write ops.

In order: drop what needs no write (trimmed, malformed, the target's own changes, changes meant for
another target); coalesce per record; keep only versions newer than what the target has from each
source (reverts always apply); decide create or update. Only the entity's owner creates, and only
after the target's first full read, so match rules see every pre-existing record: one match links
(the target's own fields are then published back), several are an exception for review. Updates never
write a field the target owns. References become the target's ids; a record whose referenced record
has no id there yet is parked (retried soon) until ``park_timeout``, then filed as an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from accord.actors.context import Context
from accord.actors.governance import Ownership, meets
from accord.actors.references import References
from accord.actors.write.linking import Linker
from accord.actors.write.locked import LockedRecords
from accord.actors.write.outcome import Delivery, Outcome, RecordWork
from accord.actors.write.pending import Wait
from accord.config.mapping import ConfiguredMap, MapError, configured_map
from accord.config.settings import Settings
from accord.connectors.base import Connector, WriteOp
from accord.connectors.errors import ConnectorError
from accord.streams.records import ChangeRecord, MalformedEntry, decode
from accord.streams.state import VERSION_FIELD


class WritePlanner:
    def __init__(self, settings: Settings, entity: str, ctx: Callable[[], Context],
                 connector: Callable[[str], Connector]) -> None:
        self.settings = settings
        self.entity = entity
        self.ent = settings.entities[entity]
        self.ownership = Ownership.from_settings(entity, self.ent)
        self._ctx = ctx
        self._connector = connector
        self._loaded: set[str] = set()
        self.locked = LockedRecords(entity, self.ent.locked, self.ownership, ctx)
        self.linker = Linker(entity, self.ent.match, self.ownership, ctx)

    @property
    def ctx(self) -> Context:
        return self._ctx()

    def reference_fields(self, target: str) -> dict[str, str]:
        return References(self.settings, self.ctx.identity).native_fields(target, self.entity)

    async def plan(self, target: str, deliveries: list[Delivery], outcome: Outcome) -> list[RecordWork]:
        """Works with ``op`` set are ready to write; every other delivery is acked, deferred or filed."""
        live = self._screen(target, deliveries, outcome)
        works = self._coalesce(live, await self._aliases(live))
        if not works:
            return []
        target_ids = await self.ctx.identity.targets_for(self.entity, target, [w.gid for w in works])
        pairs = [(w.gid, d.record.source) for w in works for d in w.deliveries if d.record]
        applied = dict(zip(pairs, await self.ctx.versions.applied(target, self.entity, pairs), strict=True))
        for work in works:
            work.target_id = target_ids.get(work.gid)
            self._fold(work, applied, outcome)
        await self._route(target, [w for w in works if w.source is not None], outcome)
        await self._plan_creates(target, [w for w in works if w.source and w.target_id is None], outcome)
        await self._plan_updates(target, [w for w in works if w.source and w.target_id is not None
                                          and not w.ready], outcome)
        await self._resolve_references(target, [w for w in works if w.ready], outcome)
        self._retire_exhausted([w for w in works if w.ready], outcome)
        ready = [w for w in works if w.ready]
        await self._mark_inflight(target, ready)
        cmap = configured_map(self.settings, target, self.entity)
        for work in ready:
            try:
                work.op = self._op(work, cmap)
            except MapError as exc:
                outcome.fail_work(work, "mapping", f"{target}: {exc}")
        return [w for w in ready if w.op is not None]

    # -- screening and folding ---------------------------------------------------------------
    def _screen(self, target: str, deliveries: list[Delivery], outcome: Outcome) -> list[Delivery]:
        live: list[Delivery] = []
        for d in deliveries:
            if not d.raw:  # payload trimmed while pending: nothing left to deliver
                outcome.ack(d)
                continue
            try:
                d.record = d.record or decode(d.raw)
            except MalformedEntry as exc:
                outcome.fail(d, "malformed", str(exc))
                continue
            if d.record.source == target or (d.record.only_to is not None and d.record.only_to != target):
                outcome.ack(d)
                continue
            live.append(d)
        return live

    async def _aliases(self, deliveries: list[Delivery]) -> dict[str, str]:
        """The record gid of each change's gid that turned out to be an alias: a poller read the record
        before whoever created it (the provisioner, a writer) linked it, and minted a gid of its own."""
        gids = sorted({d.record.gid for d in deliveries if d.record is not None})
        return await self.ctx.identity.canonical(self.entity, gids) if gids else {}

    @staticmethod
    def _coalesce(deliveries: list[Delivery], aliases: dict[str, str]) -> list[RecordWork]:
        """One work per record (changes published under an alias join their record's)."""
        works: dict[str, RecordWork] = {}
        for d in deliveries:
            assert d.record is not None
            gid = aliases.get(d.record.gid, d.record.gid)
            works.setdefault(gid, RecordWork(gid=gid, deliveries=[])).deliveries.append(d)
        return list(works.values())

    def _fold(self, work: RecordWork, applied: dict[tuple[str, str], int | None], outcome: Outcome) -> None:
        """Keep changes not older than what the target has from each source; merge them in stream order.
        A version equal to the applied one is another change, not a repeat (an entry is acked in the
        commit that records its version; coarse stamps give two edits of one second one version). Once
        the entity's owner deleted the record, later field changes from other systems do not revive it."""
        fields: dict[str, Any] = {}
        last: ChangeRecord | None = None
        last_owner: ChangeRecord | None = None
        deleted = False
        for d in work.deliveries:
            record = d.record
            assert record is not None
            if record.op == "revert":  # the owner's values over a non-owner edit: always applies
                last, deleted = record, False
                fields.update(record.fields)
                continue
            floor = max(applied.get((work.gid, record.source)) or -1, work.versions.get(record.source, -1))
            if record.version < floor:
                continue  # older than what the target has
            work.versions[record.source] = record.version
            if deleted and record.source != self.ownership.owner:
                continue  # a non-owner's field change to a record its owner deleted
            last = record
            if record.source == self.ownership.owner:
                last_owner = record
            if record.op == "delete":
                deleted, fields = True, {}
            else:
                deleted = False
                fields.update(record.fields)
        if last is None:
            outcome.skip(work, "stale_version")
            return
        if work.target_id is None and last_owner is not None:
            last = last_owner  # a create is the owner's, even when another system's values arrived with it
        work.source = msgspec.structs.replace(last, op="delete" if deleted else "upsert", fields=fields)

    # -- routing -----------------------------------------------------------------------------
    async def _route(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        """Only records meeting the target's ``when`` conditions flow there (e.g. approved, billable
        time to the ERP). Conditions are checked on the source record's whole last-seen state."""
        conditions = self.ent.when.get(target)
        if not conditions or not works:
            return
        by_source: dict[str, list[RecordWork]] = {}
        for work in works:
            assert work.source is not None
            by_source.setdefault(work.source.source, []).append(work)
        for source, group in by_source.items():
            seen, _ = await self.ctx.projections.load(source, self.entity, [w.source.source_id for w in group
                                                                             if w.source is not None])
            withdrawn: list[RecordWork] = []
            for work, projection in zip(group, seen, strict=True):
                assert work.source is not None
                state = {**(projection or {}), **work.source.fields}
                if work.source.op != "delete" and not meets(state, conditions):
                    if work.target_id is not None and self.locked.applies(target):
                        withdrawn.append(work)  # it was there: an approval withdrawn, say
                        continue
                    outcome.skip(work, "filtered")
                    work.source = None
            await self._withdraw(target, withdrawn, outcome)

    async def _withdraw(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        """Records that no longer qualify for the target leave it, unless it has locked them."""
        if not works:
            return
        held, _ = await self.ctx.projections.load(target, self.entity, [w.target_id or "" for w in works])
        for work, why in zip(works, await self.locked.locked(works, held), strict=True):
            assert work.source is not None
            if why is not None:
                self.locked.withdrawn(work, why, outcome)
                work.source = None
            else:
                work.source = msgspec.structs.replace(work.source, op="delete", fields={})

    # -- creates -----------------------------------------------------------------------------
    async def _plan_creates(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        owner = self.ownership.owner
        ready: list[RecordWork] = []
        for work in works:
            assert work.source is not None
            if work.source.op == "delete":
                outcome.skip(work, "delete_unknown")
            elif work.source.source != owner:
                outcome.skip(work, "non_owner_create")
            else:
                ready.append(work)
        if not ready:
            return
        if not await self._target_loaded(target):
            self._park(ready, outcome, f"{target} has not finished its first full read of {self.entity}",
                       frozenset({("loaded", target, self.entity)}))
            return
        seen, _ = await self.ctx.projections.load(owner, self.entity, [w.source.source_id for w in ready
                                                                       if w.source is not None])
        for work, projection in zip(ready, seen, strict=True):
            assert work.source is not None
            # a create seeds every known value, the target's own fields included (it has none yet); the
            # owner's fields come from its last-seen projection, which is never older than the change (an
            # operator's retry from the exception desk, aimed at this target, is taken as it was edited)
            held = {k: v for k, v in (projection or {}).items() if not k.startswith("_") and v is not None}
            newest = {} if work.source.only_to == target else {
                k: v for k, v in held.items() if self.ownership.owner_of(k) == owner}
            work.fields = self.ownership.synced_with(target, {**held, **work.source.fields, **newest})
        await self._seed_third_parties(target, ready)
        await self.linker.link_matches(target, ready, outcome)
        retried = [w for w in ready if w.source and w.target_id is None and any(d.maybe_written for d in w.deliveries)]
        try:
            found = await self._find_created(target, retried)
        except ConnectorError as exc:
            outcome.defer(retried, exc)
            retried_set, found = {id(w) for w in retried}, {}
        else:
            retried_set = set()
        self._ready_creates(target, [w for w in ready if w.source is not None and id(w) not in retried_set], found)

    def _ready_creates(self, target: str, works: list[RecordWork], found: dict[str, str]) -> None:
        for work in works:
            if work.target_id is None and work.gid in found:
                work.target_id = found[work.gid]
            if work.target_id is None and work.link_back is None:
                # the values it seeds in fields the target owns become the owner's: the others learn them
                work.seeded = {k: v for k, v in work.fields.items() if self.ownership.owner_of(k) == target} or None
            work.ready = work.new_link = True

    async def _seed_third_parties(self, target: str, works: list[RecordWork]) -> None:
        """Fields owned by neither the creating owner nor the target take their own owner's value (a
        stray value the creating system holds for them is a non-owner's edit, not something to spread)."""
        owner = self.ownership.owner
        third = {f for f, o in self.ownership.field_owners.items() if o not in (owner, target)}
        if not third or not works:
            return
        xrefs = await self.ctx.identity.xrefs(self.entity, [w.gid for w in works])
        wanted: dict[str, list[str]] = {}
        for xref in xrefs:
            for system in {self.ownership.owner_of(f) for f in third}:
                if system in xref:
                    wanted.setdefault(system, []).append(xref[system])
        held: dict[tuple[str, str], dict[str, Any]] = {}
        for system, ids in wanted.items():
            loaded, _ = await self.ctx.projections.load(system, self.entity, ids)
            held.update({(system, i): p or {} for i, p in zip(ids, loaded, strict=True)})
        for work, xref in zip(works, xrefs, strict=True):
            for field in third & set(work.fields):
                system = self.ownership.owner_of(field)
                value = held.get((system, xref.get(system, "")), {}).get(field)
                if value is None:
                    del work.fields[field]
                else:
                    work.fields[field] = value

    async def _target_loaded(self, target: str) -> bool:
        if target not in self._loaded and await self.ctx.cursors.loaded(target, self.entity):
            self._loaded.add(target)
        return target in self._loaded

    async def _find_created(self, target: str, works: list[RecordWork]) -> dict[str, str]:
        """The target id of each work's record if an earlier attempt created it, under the record's gid
        or under an alias it was published under before a crash (the alias's create was never linked)."""
        if not works:
            return {}
        since = min(w.first_ms for w in works) - 60_000
        owner = {gid: w.gid for w in works for gid in sorted(w.gids)}
        records = await self._connector(target).find_created(self.entity, sorted(owner), since)
        found: dict[str, str] = {}
        for gid in sorted(records, key=lambda g: g != owner[g]):  # the record's own gid first
            found.setdefault(owner[gid], records[gid].id)
        return found

    # -- updates -----------------------------------------------------------------------------
    async def _plan_updates(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        seen, _ = await self.ctx.projections.load(target, self.entity, [w.target_id for w in works  # type: ignore[misc]
                                                                        ])
        locked = await self.locked.locked(works, seen) if self.locked.applies(target) else [None] * len(works)
        for work, projection, why in zip(works, seen, locked, strict=True):
            assert work.source is not None
            if why is not None:
                await self.locked.change(target, work, why, projection, outcome)
                continue
            work.fields = self.ownership.writable_to(target, work.source.fields)
            if work.source.op == "upsert" and not work.fields:
                outcome.skip(work, "nothing_to_write")
                continue
            work.version = (projection or {}).get(VERSION_FIELD)
            work.ready = True

    # -- references, retries -----------------------------------------------------------------
    async def _resolve_references(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        references = References(self.settings, self.ctx.identity)
        if not references.has_native(target, self.entity):
            return
        await references.canonicalise(target, self.entity, [w.fields for w in works])
        native = [dict(w.fields) for w in works]
        missing = await references.to_native(target, self.entity, native)
        for work, fields, gaps in zip(works, native, missing, strict=True):
            if gaps:
                waits = frozenset(("xref", ref_entity, gid, target) for ref_entity, gid in gaps.values())
                if work.source is not None:  # the source holds what its record references: read it now
                    outcome.nudges |= {(work.source.source, ref_entity) for ref_entity, _ in gaps.values()}
                self._park([work], outcome, f"referenced record(s) {', '.join(sorted(gaps))} not in {target} yet",
                           waits)
            else:
                work.native = fields

    def _park(self, works: list[RecordWork], outcome: Outcome, why: str, waits: frozenset[Wait]) -> None:
        """Wait for ``waits`` (woken when they are met); past ``park_timeout`` the record becomes an
        exception."""
        deadline_ms = int(self.ent.park_timeout * 1000)
        now = int(time.time() * 1000)
        waiting = []
        for work in works:
            work.ready = False
            if now - work.first_ms > deadline_ms:
                outcome.fail_work(work, "parked", f"{why} after waiting {self.ent.park_timeout:.0f}s "
                                                  "(entities.*.park_timeout); sync the referenced record, then retry")
            else:
                waiting.append(work)
        if waiting:
            outcome.defer(waiting, parked=True, why=why, waits=waits)

    def _retire_exhausted(self, works: list[RecordWork], outcome: Outcome) -> None:
        """A record that failed ``max_deliveries`` times, for at least ``retry_for``, is filed: a target's
        outage of a few minutes does not send every record of it to the desk, a poison record still goes."""
        streams = self.settings.streams
        for work in works:
            if work.exhausted_after > streams.max_deliveries and work.failing_for >= streams.retry_for:
                outcome.fail_work(work, "max_deliveries", (
                    f"delivered {work.exhausted_after} times over {work.failing_for:.0f}s without success "
                    f"(streams.max_deliveries = {streams.max_deliveries}, streams.retry_for = "
                    f"{streams.retry_for:.0f}s); fix the cause, then retry the exception"))

    async def _mark_inflight(self, target: str, works: list[RecordWork]) -> None:
        writes = {w.target_id: w.fields for w in works if w.target_id and w.fields}
        await self.ctx.projections.mark_inflight(target, self.entity, writes)

    def _op(self, work: RecordWork, cmap: ConfiguredMap | None) -> WriteOp:
        source = work.source
        assert source is not None
        fields = work.native if work.native is not None else work.fields
        wire: dict[str, Any] = {}
        if cmap is not None:
            fields, wire = cmap.write(fields)
        # only a create that may have been sent before is looked up (records without a gid in the target are
        # found by their natural key there; the others were looked up with find_created already)
        lookup = any(d.maybe_written for d in work.deliveries)
        return WriteOp(gid=work.gid, kind=source.op, fields=fields, key=source.change_id, lookup=lookup,  # type: ignore[arg-type]
                       target_id=work.target_id, version=work.version, correlation_id=source.correlation_id,
                       wire=wire)
