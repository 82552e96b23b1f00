"""WriterActor logic: one replica of one entity's writer, serving every target system of the entity.

Each replica owns a set of partitions (assigned by the supervisor, fenced by leases). A sweep reads,
for every owned (partition, target) slot, the consumer's own pending entries first and then new ones;
coalesces the changes per record; applies the version guard and ownership; writes to the target in
batches through the connector; and only then commits, in one fenced MULTI per target, the xref, the
applied versions, the last-seen projection, exceptions and the XACKs.

What survives a crash: everything is in Redis. Entries not yet acked stay in consumer ``p{p}``'s PEL
and are re-read first by whichever replica holds the partition next. A write repeated after a crash
is harmless: updates are idempotent, creates are upserts by external id (Salesforce), replayed by
request id, or found by ``find_created`` before a retried create (QuickBooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec
from loguru import logger
from redis.asyncio import Redis

from accord.actors.governance import Ownership
from accord.actors.locked import ADJUSTED_FIELD
from accord.actors.loop import LoopActor
from accord.actors.outcome import Delivery, Outcome, RecordWork
from accord.actors.page import DELETED_FIELD
from accord.actors.plan import WritePlanner
from accord.config.settings import Settings
from accord.connectors.base import CallStats, Connector, WriteResult, backoff_delay
from accord.connectors.errors import ConnectorError, Gone, Permanent, Retryable, StaleVersion
from accord.connectors.registry import build_connector
from accord.streams.batch import Batch
from accord.streams.entities import normalise_fields
from accord.streams.exceptions import file_exception
from accord.streams.keys import Keys
from accord.streams.leases import Leases
from accord.streams.log import Entry, Slot, delivery_counts, read_slots, trim
from accord.streams.records import ChangeRecord, change_id, encode, now_ms, partition_of
from accord.streams.state import RedisTokenCache, Stats


class Writer(LoopActor):
    """Writes one entity's change records to each of its target systems."""

    def __init__(self, settings: Settings, entity: str, redis_url: str, *, replica: int = 0, epoch: int = 0,
                 shares: dict[str, float] | None = None, connectors: dict[str, Connector] | None = None,
                 redis: Redis | None = None) -> None:
        super().__init__(settings, redis_url, redis)
        self.entity = entity
        self.replica = replica
        self.token = f"{entity}/{replica}/{epoch}"
        self.targets = settings.targets_of(entity)
        self.ownership = Ownership.from_settings(entity, settings.entities[entity])
        self.shares = shares or {}
        self._connectors: dict[str, Connector] = dict(connectors or {})
        self.call_stats: dict[str, CallStats] = defaultdict(CallStats)
        self._leases: Leases | None = None
        self._slots: list[Slot] = []
        self._renewed_at = 0.0
        self._trimmed_at = time.monotonic()
        self._semaphore = asyncio.Semaphore(settings.streams.write_concurrency)
        self.planner = WritePlanner(settings, entity, lambda: self.ctx, self.connector)
        self.sweeps = 0
        self.written = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def connector(self, target: str) -> Connector:
        if target not in self._connectors:
            self._connectors[target] = build_connector(
                target, self.settings.systems[target], share=self.shares.get(target, 1.0),
                stats=self.call_stats[target], token_cache=RedisTokenCache(self.ctx.redis, self.ctx.keys, target))
        return self._connectors[target]

    def assign(self, partitions: Sequence[int]) -> None:
        """Own these partitions (for every target)."""
        keys = Keys(self.settings.namespace)
        self._slots = [Slot.make(keys, self.entity, p, t) for p in sorted(partitions) for t in self.targets]
        self._renewed_at = 0.0

    async def start(self, partitions: Sequence[int]) -> bool:
        """Own ``partitions`` and run the sweep loop (no-op when already running)."""
        if self.running:
            return False
        self.assign(partitions)
        return self._launch(self.run(), name=f"writer:{self.entity}:{self.replica}")

    async def stop(self) -> None:
        """Finish and commit the sweep in hand, release leases, close clients."""
        await self._halt()
        if self._leases is not None:
            with contextlib.suppress(Exception):
                await self._leases.release()
        await self._flush_call_stats(self.call_stats)
        for connector in self._connectors.values():
            await connector.aclose()
        self._connectors.clear()
        await self._close_redis()
        self._leases = None

    async def health(self) -> dict[str, Any]:
        held = len(self._leases.held) if self._leases else 0
        return self._health("writer", entity=self.entity, replica=self.replica, leases=held, sweeps=self.sweeps,
                            written=self.written)

    async def run(self) -> None:
        idle = self.settings.streams.idle_wait
        while not self._stopping:
            try:
                handled = await self.sweep()
            except Exception:
                logger.bind(entity=self.entity, replica=self.replica).exception("writer sweep failed")
                handled = 0
                await asyncio.sleep(1.0)
            if handled == 0 and not self._stopping:
                await asyncio.sleep(idle)

    # -- one sweep ---------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Read every owned slot once, write, commit. Returns the number of entries handled."""
        await self._refresh_leases()
        assert self._leases is not None
        now = time.monotonic()
        slots = [s for s in self._slots if self._lease_key(s) in self._leases.held and s.retry_at <= now]
        if not slots:
            return 0
        backlog = {id(s): s.backlog for s in slots}
        reads = await read_slots(self.ctx.redis, slots, self.settings.streams.read_count)
        per_target: dict[str, list[Delivery]] = defaultdict(list)
        for slot, entries in zip(slots, reads, strict=True):
            per_target[slot.target].extend(self._deliveries(slot, entries, backlog[id(slot)] and slot.backlog))
        handled = sum(len(d) for d in per_target.values())
        if handled:
            async with asyncio.TaskGroup() as group:  # a failure cancels the sibling targets' work too
                for target, deliveries in per_target.items():
                    group.create_task(self._handle_target(target, deliveries))
        self.sweeps += 1
        await self._maybe_trim()
        await self._flush_call_stats(self.call_stats)
        return handled

    def _deliveries(self, slot: Slot, entries: list[Entry], from_backlog: bool) -> list[Delivery]:
        return [Delivery(slot=slot, entry_id=i, raw=f, from_backlog=from_backlog) for i, f in entries]

    async def _handle_target(self, target: str, deliveries: list[Delivery]) -> None:
        outcome = Outcome(entity=self.entity, target=target)
        await self._count_attempts(deliveries)
        ready = await self.planner.plan(target, deliveries, outcome)
        await self._write(target, ready, outcome)
        await self._commit(target, outcome)

    async def _count_attempts(self, deliveries: list[Delivery]) -> None:
        by_slot: dict[Slot, list[Delivery]] = defaultdict(list)
        for d in deliveries:
            if d.from_backlog:
                by_slot[d.slot].append(d)
        for slot, ds in by_slot.items():
            counts = await delivery_counts(self.ctx.redis, slot, [d.entry_id for d in ds])
            for d in ds:
                d.attempts = counts.get(d.entry_id, 1)

    # -- writing -----------------------------------------------------------------------------
    async def _write(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        if not works:
            return
        size = max(1, self.connector(target).batch_size)
        chunks = [works[i: i + size] for i in range(0, len(works), size)]
        await asyncio.gather(*(self._write_chunk(target, chunk, outcome) for chunk in chunks))

    async def _write_chunk(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        ops = [w.op for w in works if w.op is not None]
        log = logger.bind(entity=self.entity, target=target, correlation_id=works[0].source.correlation_id
                          if works[0].source else "")
        try:
            async with self._semaphore:
                results = await self.connector(target).write(self.entity, ops)
        except Permanent as exc:
            log.error("batch of {} refused permanently: {}", len(ops), exc)
            for work in works:
                outcome.fail_work(work, "permanent", str(exc))
            return
        except ConnectorError as exc:
            outcome.defer(works, exc)
            log.warning("batch of {} failed ({}), will retry: {}", len(ops), type(exc).__name__, exc.message)
            return
        for work, result in zip(works, results, strict=True):
            self._settle(target, work, result, outcome)

    def _settle(self, target: str, work: RecordWork, result: WriteResult, outcome: Outcome) -> None:
        if result.ok:
            outcome.done.append((work, result))
            for d in work.deliveries:
                outcome.acks[d.slot].append(d.entry_id)
            outcome.trace(work.deliveries, "written", f"{'created' if result.created else 'updated'} in {target}: "
                          f"{', '.join(sorted(work.fields)) or 'delete'}", result.target_id or work.target_id or "")
            outcome.counts[Stats.label("written", target, self.entity)] += 1
            if result.created:
                outcome.counts[Stats.label("created", target, self.entity)] += 1
            return
        error = result.error
        if isinstance(error, Gone):  # deleted in the target meanwhile: nothing left to update
            outcome.skip(work, "target_deleted")
            return
        if isinstance(error, Retryable | StaleVersion):
            outcome.defer([work], error)
            return
        outcome.fail_work(work, "permanent", str(error) if error else "write refused")

    # -- commit ------------------------------------------------------------------------------
    async def _commit(self, target: str, outcome: Outcome) -> None:
        """One fenced MULTI: state for every written record, exceptions, XACKs, counters."""
        ctx = self.ctx
        acks = {slot: ids for slot, ids in outcome.acks.items() if ids}
        closing = await ctx.desk.open_for(self.entity, target, sorted({w.gid for w, _ in outcome.done}))
        batch = Batch()  # one atomic apply, fenced by the leases of every partition it acks
        for key in sorted({self._lease_key(s) for s in acks}):
            batch.fence(key, self.token)
        self._queue_state(batch, target, outcome)
        self._queue_closed(batch, target, outcome, closing)
        for slot, ids in acks.items():
            batch.xack(slot.stream, slot.group, *ids)
            batch.hincrby(ctx.keys.acked(self.entity, target), str(slot.partition), len(ids))
        ctx.stats.add(batch, Stats.RECORDS, outcome.counts)
        if not await batch.apply(ctx.redis):
            logger.bind(entity=self.entity, target=target).warning(
                "lease lost before commit; the partition's next owner redoes this batch")
            return
        self.written += len(outcome.done)
        self._schedule_retries(outcome)

    def _queue_state(self, pipe: Batch, target: str, outcome: Outcome) -> None:
        ctx = self.ctx
        produced: Counter[int] = Counter()
        for work, result in outcome.done:
            target_id = result.target_id or work.target_id
            if target_id is None:
                continue
            if work.new_link:
                ctx.identity.link(pipe, self.entity, work.gid, target, target_id)
            if work.linked_from is not None:
                pipe.hdel(ctx.keys.xref(self.entity, work.linked_from), target)
            for source, version in work.versions.items():  # an adjustment applied its original's change
                ctx.versions.record(pipe, target, self.entity, work.original_gid or work.gid, source, version)
            if work.adjusts is not None:
                ctx.projections.remember(pipe, target, self.entity, work.adjusts[0], {ADJUSTED_FIELD: work.adjusts[1]})
            # remember references in their global form: that is how the target's poller compares them
            written = {**self._canonical(result.fields or work.fields),
                       **{k: v for k, v in work.fields.items() if k in self.planner.reference_fields(target)}}
            if work.source is not None and work.source.op == "delete":
                written[DELETED_FIELD] = True  # deleted by its owner: later edits here are not changes
            ctx.projections.remember(pipe, target, self.entity, target_id, written, result.version)
            ctx.projections.clear_inflight(pipe, target, self.entity, target_id)
            back = work.link_back or self._seeded_back(target, work, result, target_id)
            if back is not None:
                p = partition_of(work.gid, self.settings.streams.partitions)
                pipe.xadd(ctx.keys.changes(self.entity, p), {"d": encode(back)})
                produced[p] += 1
        for p, n in produced.items():
            pipe.hincrby(ctx.keys.produced(self.entity), str(p), n)
        for record in outcome.exceptions:
            file_exception(pipe, ctx.keys, record)
        for event in outcome.events:
            ctx.audit.queue(pipe, event)

    def _seeded_back(self, target: str, work: RecordWork, result: WriteResult, target_id: str) -> ChangeRecord | None:
        """A create that seeded fields the target owns publishes them as the target's (they are its now)."""
        if not work.seeded or not result.created or work.source is None:
            return None
        version = int(result.version or 0)
        return ChangeRecord(
            change_id=change_id(target, self.entity, target_id, version) + ":seed", entity=self.entity,
            gid=work.gid, op="upsert", source=target, source_id=target_id, version=version,
            fields=self._canonical(work.seeded), correlation_id=work.source.correlation_id,
            causation_id=work.source.change_id, observed_ms=now_ms())

    def _queue_closed(self, pipe: Batch, target: str, outcome: Outcome, closing: dict[str, set[str]]) -> None:
        """Open exceptions of records that now reached the target are closed by this success."""
        for work, _ in outcome.done:
            if work.gid in closing:
                source = work.source
                self.ctx.desk.queue_closed(
                    pipe, self.entity, target, work.gid, closing.pop(work.gid),
                    f"a later change ({source.change_id if source else '?'}) reached {target}",
                    source.correlation_id if source else "")

    def _canonical(self, fields: dict[str, Any]) -> dict[str, Any]:
        """What the target holds, in canonical spelling (as its poller will read it back)."""
        try:
            return normalise_fields(self.entity, fields)
        except msgspec.ValidationError:
            return dict(fields)

    def _schedule_retries(self, outcome: Outcome) -> None:
        now = time.monotonic()
        cap = self.settings.streams.retry_backoff_cap
        for slot in self._slots:
            if slot in outcome.retry:
                slot.failures += 1
                slot.backlog = True
                delay = max(outcome.retry_after, backoff_delay(slot.failures, 0.5, cap))
                if outcome.retry_cap is not None and not outcome.retry_after:
                    delay = min(delay, outcome.retry_cap)
                slot.retry_at = now + delay
            elif slot in outcome.acks:
                slot.failures = 0

    # -- helpers -----------------------------------------------------------------------------
    def _lease_key(self, slot: Slot) -> str:
        return self.ctx.keys.lease(self.entity, slot.target, slot.partition)

    async def _refresh_leases(self) -> None:
        if self._leases is None:
            self._leases = Leases(self.ctx.redis, self.token, int(self.settings.streams.lease_ttl * 1000))
        if time.monotonic() - self._renewed_at >= self.settings.streams.lease_ttl / 3:
            await self._leases.refresh(self._lease_key(s) for s in self._slots)
            self._renewed_at = time.monotonic()

    async def _maybe_trim(self) -> None:
        if time.monotonic() - self._trimmed_at < self.settings.streams.trim_interval:
            return
        self._trimmed_at = time.monotonic()
        retention_ms = int(self.settings.streams.retention * 1000)
        for stream in sorted({s.stream for s in self._slots}):
            await trim(self.ctx.redis, stream, retention_ms, now_ms())
