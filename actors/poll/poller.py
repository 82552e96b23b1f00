"""PollerActor logic: one per system; reads changes of every entity the system holds and publishes
the owned, changed fields as change records.

What survives a crash: everything that matters is in Redis. The cursor advances in the same MULTI as
the page's XADDs and last-seen projections, so a crash before that MULTI re-fetches the page and a
crash after it has nothing to redo. ``start``, ``stop`` and ``poll_page`` are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import msgspec
from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from accord.actors.canonical import Canonicaliser
from accord.actors.governance import Ownership, is_stale_read, observe
from accord.actors.loop import LoopActor
from accord.actors.poll.backpressure import slow_down
from accord.actors.poll.business import plan_business
from accord.actors.poll.edits import EditJudge
from accord.actors.poll.fullscan import vanished_ids
from accord.actors.poll.indexes import index_billed, index_match_keys
from accord.actors.poll.pace import PollPace, flush_pace
from accord.actors.poll.page import DELETED_FIELD, PagePlan, mapping_exception
from accord.actors.poll.suspects import SuspectBook
from accord.actors.references import References
from accord.config.settings import Settings
from accord.connectors.base import CallStats, Connector, SourceRecord, backoff_delay
from accord.connectors.budget import Priority, requests_as
from accord.connectors.errors import ConnectorError, RateLimited
from accord.connectors.registry import spec_of
from accord.model.entities import BILLS, validate_fields
from accord.streams.audit import TraceEvent
from accord.streams.batch import Batch
from accord.streams.exceptions import file_exception
from accord.streams.publish import publish
from accord.streams.records import ChangeRecord, Op, now_ms
from accord.streams.replies import read_entries, text
from accord.streams.state import Stats

# besides the changes it publishes, what a poll found that someone did (not Accord's own writes coming
# back): keeps the entity's polls at their base interval (``pace``)
ACTIVITY = ("violations", "unowned_new")
POLL_CONCURRENCY = 4  # entities of one system polled at once (each polls its pages in order)


class Poller(LoopActor):
    """Polls system ``system`` for each of its entities and publishes change records."""

    def __init__(self, settings: Settings, system: str, redis_url: str, *,
                 connector: Connector | None = None, redis: Redis | None = None) -> None:
        super().__init__(settings, redis_url, redis)
        self.system = system
        self.entities = settings.entities_of(system)
        self.ownership = {e: Ownership.from_settings(e, settings.entities[e]) for e in self.entities}
        self._references: References | None = None
        self._connector = connector
        self.pace = PollPace.of({e: (settings.entities[e].poll_interval, settings.entities[e].poll_max_interval)
                                 for e in self.entities})
        self.found: Counter[str] = Counter()  # per entity: records changed by someone else (ACTIVITY)
        self._next_scan: dict[str, float] = {}
        self._canonicaliser: Canonicaliser | None = None
        self._failures: Counter[str] = Counter()
        self.call_stats = CallStats()
        self.pages = 0
        self.published = 0

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def references(self) -> References:
        if self._references is None:
            self._references = References(self.settings, self.ctx.identity)
        return self._references

    @property
    def canonicaliser(self) -> Canonicaliser:
        if self._canonicaliser is None:
            self._canonicaliser = Canonicaliser(self.settings, self.system, self.references)
        return self._canonicaliser

    @property
    def judge(self) -> EditJudge:
        return EditJudge(self.settings, self.system, self.ownership, self.ctx, self._change)

    @property
    def connector(self) -> Connector:
        if self._connector is None:
            self._connector = self.ctx.connector(self.system, stats=self.call_stats)
        return self._connector

    async def start(self) -> bool:
        """Start the poll loop (no-op when running). Returns True when it was started now."""
        return self._launch(self.run(), name=f"poller:{self.system}")

    async def stop(self) -> None:
        """Finish the page in hand, then stop; closes clients."""
        await self._halt()
        await self._flush_call_stats({self.system: self.call_stats})
        if self._connector is not None:
            await self._connector.aclose()
        await self._close_redis()
        self._connector = None

    async def health(self) -> dict[str, Any]:
        return self._health("poller", system=self.system, pages=self.pages, published=self.published)

    # -- loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        hint_id = "$"
        while not self._stopping:
            await self._poll_due()
            try:
                await self._flush_call_stats({self.system: self.call_stats})
                await flush_pace(self.ctx.redis, self.ctx.keys, self.system, self.pace)
                hint_id = await self._wait_for_hint(hint_id)
            except RedisError as exc:  # Redis restarting or failing over: the loop waits for it, never dies
                logger.bind(system=self.system).warning("Redis unavailable ({}); retrying in 1s", exc)
                await self._pause(1.0)

    async def _poll_due(self) -> None:
        """Poll every entity that is due, ``POLL_CONCURRENCY`` at once: a round takes as long as its
        slowest entity, not their sum, so each entity's polls stay near its interval on a busy host."""
        gate = asyncio.Semaphore(POLL_CONCURRENCY)

        async def one(entity: str) -> None:
            async with gate:
                if not self._stopping:
                    with requests_as(Priority.POLL):
                        await self._poll_entity(entity)
        await asyncio.gather(*(one(e) for e in self.entities if self.pace.due(e)))

    async def _poll_entity(self, entity: str) -> None:
        self.pace.started(entity)
        found = self.found[entity]
        try:
            while await self.poll_page(entity) and not self._stopping:
                pass
            if self._scans_for_deletes() and time.monotonic() >= self._next_scan.get(entity, 0.0):
                await self.scan_for_deletes(entity)
        except ConnectorError as exc:
            self._failures[entity] += 1
            delay = backoff_delay(self._failures[entity], base=1.0, cap=60.0)
            if isinstance(exc, RateLimited):
                delay = max(delay, exc.retry_after)
            logger.bind(system=self.system, entity=entity).warning(
                "poll failed ({}): {}; retrying in {:.1f}s", type(exc).__name__, exc.message, delay)
            await self._failed(entity, delay)
            return
        except Exception:
            self._failures[entity] += 1
            logger.bind(system=self.system, entity=entity).exception("poll crashed; retrying")
            await self._failed(entity, backoff_delay(self._failures[entity], 1.0, 60.0))
            return
        self._failures[entity] = 0
        self.pace.polled(entity, self.found[entity] - found)
        await slow_down(self.ctx.redis, self.ctx.keys, self.settings, self.pace, entity)  # backlog downstream

    async def _failed(self, entity: str, delay: float) -> None:
        """Back off ``delay`` and note since when the entity's polls fail (a metric an alert watches)."""
        self.pace.failed(entity, delay)
        with contextlib.suppress(RedisError):  # Redis may be why it failed; the next success clears it
            await self.ctx.cursors.failing(self.system, entity, now_ms())

    async def _wait_for_hint(self, last_id: str) -> str:
        """Sleep until the next entity is due, or until a webhook hint arrives on the intake stream."""
        if self._stopping:
            return last_id
        wait = max(0.0, self.pace.next_due() - time.monotonic())
        block_ms = int(min(wait, 2.0) * 1000)
        if block_ms <= 0:
            return last_id
        entries = read_entries(await self.ctx.redis.xread({self.ctx.keys.intake(self.system): last_id},
                                                          block=block_ms, count=100))
        if not entries:
            return last_id
        for _id, fields in entries:
            entity = text(fields.get(b"entity") or b"")
            for name in self.entities if not entity else [entity]:
                self.pace.hinted(name)
        return entries[-1][0]

    # -- deletes by full scan ------------------------------------------------------------------
    def _scans_for_deletes(self) -> bool:
        """Systems without a delete feed (Harvest) are scanned for vanished ids instead."""
        return spec_of(self.settings.systems[self.system]).capabilities.deletes == "scan"

    async def scan_for_deletes(self, entity: str) -> int:
        """Compare every id the system has now with the ids Accord has seen; the missing ones were
        deleted there and are planned like deleted records (published when the system owns them)."""
        vanished, next_scan_s = await vanished_ids(self.ctx, self.system, entity, self.connector)
        self._next_scan[entity] = time.monotonic() + next_scan_s
        if not vanished:
            return 0
        stamp = now_ms()
        records = [SourceRecord(id=i, version=stamp, deleted=True) for i in vanished]
        plan = await self._plan(entity, records)
        batch = Batch()
        self._queue(batch, entity, plan)
        await batch.apply(self.ctx.redis)
        logger.bind(system=self.system, entity=entity).info("full scan: {} record(s) deleted in {}",
                                                           len(vanished), self.system)
        return len(vanished)

    # -- one page ----------------------------------------------------------------------------
    async def poll_page(self, entity: str) -> bool:
        """Fetch one page since the stored cursor, publish its changes and advance the cursor, all in
        one MULTI. Returns True when another page is ready now."""
        ctx = self.ctx
        position = await ctx.cursors.position(self.system, entity)
        cursor = position.cursor
        batch = Batch()  # one atomic apply: XADDs, last-seen projections, exceptions, cursor
        if position.resync_pending:
            assert position.resync_run is not None and position.resync_since_ms is not None
            cursor = self.connector.cursor_since(entity, position.resync_since_ms)
            ctx.cursors.resync_started(batch, self.system, entity, position.resync_run)
            logger.bind(system=self.system, entity=entity).info("resync {} from {} (ms) started",
                                                               position.resync_run, position.resync_since_ms)
        fetched_ms = now_ms()
        page = await self.connector.fetch(entity, cursor)
        self.pages += 1
        plan = await self._plan(entity, page.records, resync=position.in_resync, fetched_ms=fetched_ms)
        self.found[entity] += len(plan.changes) + sum(plan.counts[Stats.label(k, self.system, entity)] for k in ACTIVITY)
        self._queue(batch, entity, plan)
        ctx.cursors.put(batch, self.system, entity, page.cursor, now_ms(), caught_up=not page.more,
                        fetched_ms=fetched_ms)
        if position.in_resync and not page.more:
            ctx.cursors.resync_done(batch, self.system, entity)
        await batch.apply(ctx.redis)
        self.published += len(plan.changes)
        return page.more

    async def _plan(self, entity: str, records: list[SourceRecord], *, resync: bool = False,
                    fetched_ms: int | None = None) -> PagePlan:
        ctx = self.ctx
        plan = PagePlan(resync=resync, fetched_ms=fetched_ms if fetched_ms is not None else now_ms())
        latest: dict[str, SourceRecord] = {}
        for record in records:  # a page may hold several versions of one record: keep the newest
            if record.id not in latest or record.version >= latest[record.id].version:
                latest[record.id] = record
        records = await self.canonicaliser.records(entity, list(latest.values()))
        ids = [r.id for r in records]
        gids, new = await ctx.identity.resolve(entity, self.system, ids, {r.id: r.gid for r in records})
        known = [i for i in ids if i not in new]  # a record without an xid has no projection either
        seen_known, inflight_known = await ctx.projections.load(self.system, entity, known)
        seen_of = dict(zip(known, seen_known, strict=True))
        inflight_of = dict(zip(known, inflight_known, strict=True))
        seen_all = [seen_of.get(i) for i in ids]
        inflight_all = [inflight_of.get(i, {}) for i in ids]
        ownership = self.ownership[entity]
        if entity in BILLS and self.system == ownership.owner:  # only the documents' owner knows what is billed
            index_billed(ctx.keys, entity, records, seen_all, plan)
        for record, seen, inflight in zip(records, seen_all, inflight_all, strict=True):
            plan.counts[Stats.label("polled", self.system, entity)] += 1
            self._plan_record(entity, ownership, record, gids[record.id], record.id in new, seen, inflight,
                              plan)
        judge = self.judge
        await judge.check_suspects(entity, plan)
        plan.closing = await self._mapped_again(entity, [r.id for r in records if not r.error])
        await judge.check_adopted(entity, plan)
        await judge.plan_reverts(entity, plan)
        plan.counts[Stats.label("drift", self.system, entity)] += self.canonicaliser.drift.pop(entity, 0)
        await plan_business(ctx.redis, ctx.keys, self.settings, self.system, entity, plan, plan.fetched_ms)
        return plan

    async def _mapped_again(self, entity: str, ids: list[str]) -> dict[str, set[str]]:
        """Open mapping exceptions of records that now read cleanly: they close with this page."""
        found = await self.ctx.desk.open_for(entity, self.system, ids)
        return {rid: {e for e in eids if e.startswith("map:")} for rid, eids in found.items()
                if any(e.startswith("map:") for e in eids)}

    def _plan_record(self, entity: str, ownership: Ownership, record: SourceRecord, gid: str, new: bool,
                     seen: dict[str, Any] | None, inflight: dict[str, Any], plan: PagePlan) -> None:
        if record.error:
            self._plan_unreadable(entity, record, gid, record.error, plan)
        elif record.deleted:
            self._plan_delete(entity, ownership, record, gid, seen, plan)
        elif is_stale_read(record.version, seen):  # fetched before a write Accord has committed since
            plan.counts[Stats.label("stale_reads", self.system, entity)] += 1
            logger.bind(system=self.system, entity=entity, record=record.id).debug(
                "stale read of version {} (the last-seen projection is newer): skipped", record.version)
        else:
            changed = self._observe(entity, ownership, record, gid, seen, inflight, plan)
            if changed is not None:
                self._plan_change(entity, ownership, record, gid, new, changed, plan)

    def _observe(self, entity: str, ownership: Ownership, record: SourceRecord, gid: str,
                 seen: dict[str, Any] | None, inflight: dict[str, Any], plan: PagePlan) -> dict[str, Any] | None:
        """Remember what the record holds now and sort out echoes, non-owner edits and adoptions; returns
        the fields that changed, or None when there is nothing more to do with the record."""
        observation = observe(self.system, ownership, record.fields, seen, inflight)
        plan.remember.append((record.id, record.fields, record.version))
        if seen is not None and seen.get(DELETED_FIELD):
            # deleted by its owner and deactivated here by Accord: what this system does with it now
            # is not a change to propagate nor an edit to revert
            return None
        if observation.echoed:
            plan.counts[Stats.label("echoes", self.system, entity)] += 1
        if observation.violations:
            plan.suspects.append((record, gid, observation.violations))
        if observation.adopted:
            plan.adopted.append((record, gid, observation.adopted))
        index_match_keys(self.ctx.keys, self.settings.entities[entity].match, self.system, entity, record.id,
                         seen, record.fields, plan)
        return observation.changed

    def _plan_change(self, entity: str, ownership: Ownership, record: SourceRecord, gid: str, new: bool,
                     changed: dict[str, Any], plan: PagePlan) -> None:
        """Publish what changed in the fields this system owns (all of them, on a resync)."""
        if new and record.gid is None and self.system != ownership.owner:
            plan.counts[Stats.label("unowned_new", self.system, entity)] += 1
            logger.bind(system=self.system, entity=entity, record=record.id, gid=gid).info(
                "record created in {} which does not own {}: linked, not propagated", self.system, entity)
            return
        if plan.resync:  # republish what this system owns, changed or not; writers re-apply it
            changed = {k: v for k, v in record.fields.items() if k in ownership.owned_by(self.system)}
        if not changed:
            return
        try:
            fields = validate_fields(entity, changed)
        except msgspec.ValidationError as exc:
            self._plan_unreadable(entity, record, gid, str(exc), plan)
            return
        change = self._change(entity, gid, "upsert", record, fields)
        plan.changes.append(msgspec.structs.replace(change, replay=True) if plan.resync else change)

    def _plan_unreadable(self, entity: str, record: SourceRecord, gid: str, message: str, plan: PagePlan) -> None:
        plan.exceptions.append(mapping_exception(self.system, entity, record, gid, message))
        plan.counts[Stats.label("mapping_errors", self.system, entity)] += 1

    def _plan_delete(self, entity: str, ownership: Ownership, record: SourceRecord, gid: str,
                     seen: dict[str, Any] | None, plan: PagePlan) -> None:
        if seen is not None and seen.get(DELETED_FIELD):
            return  # already published
        plan.remember.append((record.id, {DELETED_FIELD: True}, record.version))
        if self.system != ownership.owner:
            plan.counts[Stats.label("violations", self.system, entity)] += 1
            logger.bind(system=self.system, entity=entity, record=record.id).warning(
                "governance violation: {} deleted a {} it does not own; not propagated", self.system, entity)
            return
        plan.changes.append(self._change(entity, gid, "delete", record, {}))

    def _change(self, entity: str, gid: str, op: Op, record: SourceRecord, fields: dict[str, Any], *,
                source: str | None = None) -> ChangeRecord:
        """A change observed in this system; a ``revert`` is issued on behalf of the owner ``source``."""
        return ChangeRecord.observed(self.system, entity, gid, op, record.id, record.version, fields, owner=source)

    def _queue(self, pipe: Batch, entity: str, plan: PagePlan) -> None:
        ctx = self.ctx
        publish(pipe, ctx.keys, self.settings.streams.partitions, plan.changes)
        for change in plan.changes:
            ctx.audit.queue(pipe, TraceEvent(
                correlation_id=change.correlation_id, kind=f"published {change.op}", entity=entity, gid=change.gid,
                system=self.system, record=change.source_id,
                detail=f"{self.system} version {change.version}: {', '.join(sorted(change.fields)) or '-'}"
                       + (f" (to {change.only_to} only)" if change.only_to else "")))
            plan.counts[Stats.label("published", self.system, entity)] += 1
            logger.bind(correlation_id=change.correlation_id, system=self.system, entity=entity,
                        gid=change.gid).debug("published {} of {} ({} fields)", change.op, change.source_id,
                                              len(change.fields))
        if self._scans_for_deletes():
            live = [system_id for system_id, fields, _ in plan.remember if not fields.get(DELETED_FIELD)]
            gone = [system_id for system_id, fields, _ in plan.remember if fields.get(DELETED_FIELD)]
            pipe.sadd(ctx.keys.known_ids(entity, self.system), *live)
            pipe.srem(ctx.keys.known_ids(entity, self.system), *gone)
        for system_id, fields, version in plan.remember:
            ctx.projections.remember(pipe, self.system, entity, system_id, fields, version)
        for exc in plan.exceptions:
            file_exception(pipe, ctx.keys, exc)
        for key, system_id in plan.unindex:
            pipe.srem(key, system_id)
        for key, system_id in plan.index:
            pipe.sadd(key, system_id)
        self._queue_bookkeeping(pipe, entity, plan)
        ctx.stats.add(pipe, Stats.RECORDS, plan.counts)

    def _queue_bookkeeping(self, pipe: Batch, entity: str, plan: PagePlan) -> None:
        """Billed-record index, parked suspects and closed mapping exceptions of this page."""
        ctx = self.ctx
        for key, gid in plan.unbilled:
            pipe.srem(key, gid)
        for key, gid in plan.billed:
            pipe.sadd(key, gid)
        plan.queue_later(pipe)  # business KPIs and SLA clocks (``poll.business``)
        for record_id, eids in plan.closing.items():
            ctx.desk.queue_closed(pipe, entity, self.system, record_id, eids,
                                  f"{self.system} {record_id} reads cleanly now")
        book = SuspectBook(ctx, self.system)
        if plan.judged:
            book.forget(pipe, entity, plan.judged)
        for record_id, suspect in plan.parked:  # after forget: a record judged and seen again stays parked
            book.park(pipe, entity, record_id, suspect)
