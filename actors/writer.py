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
from dataclasses import dataclass, field
from typing import Any

import msgspec
from loguru import logger
from redis.asyncio import Redis

from accord.actors.governance import Ownership
from accord.actors.loop import LoopActor
from accord.config.settings import Settings
from accord.connectors.base import CallStats, Connector, WriteOp, WriteResult, backoff_delay
from accord.connectors.errors import ConnectorError, Gone, Permanent, RateLimited, Retryable, StaleVersion
from accord.connectors.registry import build_connector
from accord.streams.batch import Batch
from accord.streams.exceptions import ExceptionRecord, Reason, exception_id, file_exception
from accord.streams.keys import Keys
from accord.streams.leases import Leases
from accord.streams.log import Entry, Slot, delivery_counts, id_ms, read_slots, trim
from accord.streams.records import ChangeRecord, MalformedEntry, decode, now_ms
from accord.streams.state import VERSION_FIELD, RedisTokenCache, Stats


@dataclass
class Delivery:
    """One stream entry in hand."""

    slot: Slot
    entry_id: str
    raw: dict[bytes, bytes]
    record: ChangeRecord | None = None
    attempts: int = 1
    from_backlog: bool = False


@dataclass
class RecordWork:
    """All deliveries of one global id in this sweep, coalesced into at most one write."""

    gid: str
    deliveries: list[Delivery]
    op: WriteOp | None = None
    source: ChangeRecord | None = None
    target_id: str | None = None
    versions: dict[str, int] = field(default_factory=dict)


@dataclass
class Outcome:
    """What one target's sweep commits: acks, state updates, exceptions, counters."""

    acks: dict[Slot, list[str]] = field(default_factory=lambda: defaultdict(list))
    exceptions: list[ExceptionRecord] = field(default_factory=list)
    done: list[tuple[RecordWork, WriteResult]] = field(default_factory=list)
    retry: set[Slot] = field(default_factory=set)
    retry_after: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)


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
        return {"kind": "writer", "entity": self.entity, "replica": self.replica, "running": self.running,
                "leases": held, "sweeps": self.sweeps, "written": self.written}

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
        outcome = Outcome()
        await self._count_attempts(deliveries)
        live = self._screen(target, deliveries, outcome)
        works = self._coalesce(live)
        await self._plan_writes(target, works, outcome)
        await self._write(target, [w for w in works if w.op is not None], outcome)
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

    def _screen(self, target: str, deliveries: list[Delivery], outcome: Outcome) -> list[Delivery]:
        """Drop what needs no write: trimmed, malformed, poison, changes from the target itself."""
        live: list[Delivery] = []
        max_deliveries = self.settings.streams.max_deliveries
        for d in deliveries:
            if not d.raw:  # payload trimmed while pending: nothing left to deliver
                outcome.acks[d.slot].append(d.entry_id)
                continue
            try:
                d.record = decode(d.raw)
            except MalformedEntry as exc:
                self._fail(outcome, d, target, "malformed", str(exc))
                continue
            if d.record.source == target:
                outcome.acks[d.slot].append(d.entry_id)
                continue
            if d.attempts > max_deliveries:
                self._fail(outcome, d, target, "max_deliveries",
                           f"delivered {d.attempts} times without success (streams.max_deliveries = "
                           f"{max_deliveries}); fix the cause, then retry the exception")
                continue
            live.append(d)
        return live

    @staticmethod
    def _coalesce(deliveries: list[Delivery]) -> list[RecordWork]:
        works: dict[str, RecordWork] = {}
        for d in deliveries:
            assert d.record is not None
            works.setdefault(d.record.gid, RecordWork(gid=d.record.gid, deliveries=[])).deliveries.append(d)
        return list(works.values())

    async def _plan_writes(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        """Version guard, ownership filter, create-or-update: sets ``work.op`` (or acks as skipped)."""
        ctx = self.ctx
        gids = [w.gid for w in works]
        target_ids = await ctx.identity.targets_for(self.entity, target, gids)
        pairs = [(w.gid, d.record.source) for w in works for d in w.deliveries if d.record]
        applied = dict(zip(pairs, await ctx.versions.applied(target, self.entity, pairs), strict=True))
        for work in works:
            work.target_id = target_ids.get(work.gid)
            self._fold(work, applied, outcome)
        creates = [w for w in works if w.op is None and w.source is not None and w.target_id is None]
        await self._prepare_creates(target, creates, outcome)
        updates = [w for w in works if w.source is not None and w.target_id is not None]
        await self._prepare_updates(target, updates, outcome)

    def _fold(self, work: RecordWork, applied: dict[tuple[str, str], int | None], outcome: Outcome) -> None:
        """Keep only changes newer than what the target has from each source; merge them in order."""
        fields: dict[str, Any] = {}
        last: ChangeRecord | None = None
        deleted = False
        for d in work.deliveries:
            record = d.record
            assert record is not None
            floor = max(applied.get((work.gid, record.source)) or -1, work.versions.get(record.source, -1))
            if record.version <= floor:
                continue
            work.versions[record.source] = record.version
            last = record
            if record.op == "delete":
                deleted, fields = True, {}
            else:
                deleted = False
                fields.update(record.fields)
        if last is None:
            self._ack_all(work, outcome, "stale_version")
            return
        work.source = msgspec.structs.replace(last, op="delete" if deleted else "upsert", fields=fields)

    async def _prepare_creates(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        """A record unknown to the target: only its owner system may create it, seeded with every value
        the owner holds; a retried create first looks for the record a crashed attempt made."""
        owner = self.ownership.owner
        ready: list[RecordWork] = []
        for work in works:
            assert work.source is not None
            if work.source.op == "delete":
                self._ack_all(work, outcome, "delete_unknown")
            elif work.source.source != owner:
                self._ack_all(work, outcome, "non_owner_create")
            else:
                ready.append(work)
        if not ready:
            return
        retried = [w for w in ready if any(d.from_backlog for d in w.deliveries)]
        try:
            found = await self._find_created(target, retried)
        except ConnectorError as exc:
            self._defer(outcome, retried, exc)
            ready, found = [w for w in ready if w not in retried], {}
        source_ids = [w.source.source_id for w in ready if w.source is not None]
        seen, _ = await self.ctx.projections.load(owner, self.entity, source_ids)
        for work, projection in zip(ready, seen, strict=True):
            assert work.source is not None
            # a create seeds every known value, the target's own fields included (it has none yet);
            # from then on updates never write a field the target owns
            fields = {k: v for k, v in (projection or {}).items() if not k.startswith("_") and v is not None}
            fields.update(work.source.fields)
            work.target_id = found.get(work.gid)
            work.op = self._op(work, fields)

    async def _find_created(self, target: str, works: list[RecordWork]) -> dict[str, str]:
        if not works:
            return {}
        since = min(id_ms(d.entry_id) for w in works for d in w.deliveries) - 60_000
        records = await self.connector(target).find_created(self.entity, [w.gid for w in works], since)
        return {gid: r.id for gid, r in records.items()}

    async def _prepare_updates(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        ids = [w.target_id for w in works if w.target_id]
        seen, _ = await self.ctx.projections.load(target, self.entity, ids)  # type: ignore[arg-type]
        inflight: dict[str, dict[str, Any]] = {}
        for work, projection in zip(works, seen, strict=True):
            assert work.source is not None and work.target_id is not None
            fields = self.ownership.writable_to(target, work.source.fields)
            if work.source.op == "upsert" and not fields:
                self._ack_all(work, outcome, "nothing_to_write")
                work.source = None
                continue
            version = (projection or {}).get(VERSION_FIELD)
            work.op = self._op(work, fields, version)
            if fields:
                inflight[work.target_id] = fields
        await self.ctx.projections.mark_inflight(target, self.entity, inflight)

    def _op(self, work: RecordWork, fields: dict[str, Any], version: int | None = None) -> WriteOp:
        source = work.source
        assert source is not None
        return WriteOp(gid=work.gid, kind=source.op, fields=fields, key=source.change_id,
                       target_id=work.target_id, version=version, correlation_id=source.correlation_id)

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
                self._fail_work(outcome, work, target, "permanent", str(exc))
            return
        except ConnectorError as exc:
            self._defer(outcome, works, exc)
            log.warning("batch of {} failed ({}), will retry: {}", len(ops), type(exc).__name__, exc.message)
            return
        for work, result in zip(works, results, strict=True):
            self._settle(target, work, result, outcome)

    def _settle(self, target: str, work: RecordWork, result: WriteResult, outcome: Outcome) -> None:
        if result.ok:
            outcome.done.append((work, result))
            for d in work.deliveries:
                outcome.acks[d.slot].append(d.entry_id)
            outcome.counts[Stats.label("written", target, self.entity)] += 1
            if result.created:
                outcome.counts[Stats.label("created", target, self.entity)] += 1
            return
        error = result.error
        if isinstance(error, Gone):  # deleted in the target meanwhile: nothing left to update
            self._ack_all(work, outcome, "target_deleted")
            return
        if isinstance(error, Retryable | StaleVersion):
            self._defer(outcome, [work], error)
            return
        self._fail_work(outcome, work, target, "permanent", str(error) if error else "write refused")

    def _defer(self, outcome: Outcome, works: list[RecordWork], exc: ConnectorError) -> None:
        """Leave these entries pending; their slots back off and re-read them."""
        for work in works:
            for d in work.deliveries:
                outcome.retry.add(d.slot)
        if isinstance(exc, RateLimited):
            outcome.retry_after = max(outcome.retry_after, exc.retry_after)
        outcome.counts[Stats.label("deferred", self.entity)] += len(works)

    # -- commit ------------------------------------------------------------------------------
    async def _commit(self, target: str, outcome: Outcome) -> None:
        """One fenced MULTI: state for every written record, exceptions, XACKs, counters."""
        ctx = self.ctx
        acks = {slot: ids for slot, ids in outcome.acks.items() if ids}
        batch = Batch()  # one atomic apply, fenced by the leases of every partition it acks
        for key in sorted({self._lease_key(s) for s in acks}):
            batch.fence(key, self.token)
        self._queue_state(batch, target, outcome)
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
        for work, result in outcome.done:
            target_id = result.target_id or work.target_id
            if target_id is None:
                continue
            if work.target_id is None:
                ctx.identity.link(pipe, self.entity, work.gid, target, target_id)
            for source, version in work.versions.items():
                ctx.versions.record(pipe, target, self.entity, work.gid, source, version)
            written = result.fields or (work.op.fields if work.op else {})
            ctx.projections.remember(pipe, target, self.entity, target_id, written, result.version)
            ctx.projections.clear_inflight(pipe, target, self.entity, target_id)
        for record in outcome.exceptions:
            file_exception(pipe, ctx.keys, record)

    def _schedule_retries(self, outcome: Outcome) -> None:
        now = time.monotonic()
        cap = self.settings.streams.retry_backoff_cap
        for slot in self._slots:
            if slot in outcome.retry:
                slot.failures += 1
                slot.backlog = True
                slot.retry_at = now + max(outcome.retry_after, backoff_delay(slot.failures, 0.5, cap))
            elif slot in outcome.acks:
                slot.failures = 0

    # -- helpers -----------------------------------------------------------------------------
    def _ack_all(self, work: RecordWork, outcome: Outcome, reason: str) -> None:
        for d in work.deliveries:
            outcome.acks[d.slot].append(d.entry_id)
        outcome.counts[Stats.label("skipped", self.entity, reason)] += len(work.deliveries)

    def _fail_work(self, outcome: Outcome, work: RecordWork, target: str, reason: Reason, message: str) -> None:
        for d in work.deliveries:
            self._fail(outcome, d, target, reason, message)

    def _fail(self, outcome: Outcome, d: Delivery, target: str, reason: Reason, message: str) -> None:
        record = d.record
        outcome.exceptions.append(ExceptionRecord(
            exception_id=exception_id(d.slot.stream, d.entry_id, target), reason=reason, message=message,
            entity=self.entity, target=target, gid=record.gid if record else "",
            source=record.source if record else "", source_id=record.source_id if record else "",
            correlation_id=record.correlation_id if record else "", attempts=d.attempts,
            stream=d.slot.stream, entry_id=d.entry_id, payload=d.raw.get(b"d", b""), created_ms=now_ms()))
        outcome.acks[d.slot].append(d.entry_id)
        outcome.counts[Stats.label("exceptions", target, self.entity, reason)] += 1
        logger.bind(entity=self.entity, target=target, correlation_id=record.correlation_id if record else "",
                    entry=d.entry_id).error("exception filed ({}): {}", reason, message)

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
