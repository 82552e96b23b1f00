"""One target of one writer replica: the partitions it owns for that target, their pending books, and
the sweep that reads, plans, writes and commits the target's changes.

A sweep, per owned partition: rebuild the book from the pending list when the lease was (re)acquired;
re-read any pending entry idle past ``streams.stuck_after`` that the book does not know (the safety net:
counted as stuck); wake parked records whose dependency is met; take the records due now and the
entries never delivered (``>``); a new entry of a record that is held joins its hold instead of
overtaking it. Then plan, write in batches, and commit in one fenced atomic call: state, exceptions,
XACKs, and the delivery counters of failed attempts. Only after that commit does the book settle acked
entries and schedule the rest: a retry at its backoff, a parked record at its re-check time or when
woken. Targets run in lanes of their own, so a slow or throttled target never holds back another.

What survives a crash: the pending list in Redis. A lease acquired afresh, or a commit refused because
the lease was lost, makes the partition re-read its own pending entries before anything else; a replica
restarted by Ray starts with every book empty and rebuilds them the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from accord.actors.write.outcome import Deferral, Delivery, Outcome, RecordWork
from accord.actors.write.pending import IN_HAND, PARKED, RETRY, Held, PendingBook
from accord.actors.write.waits import dependencies_met
from accord.connectors.base import WriteResult, backoff_delay
from accord.connectors.budget import Priority, requests_as
from accord.connectors.errors import ConnectorError, Gone, Permanent, Retryable, StaleVersion
from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.log import Slot, delivery_counts, fetch, idle_pending, read_new, read_pending
from accord.streams.records import now_ms
from accord.streams.state import Stats

if TYPE_CHECKING:
    from accord.actors.write.writer import Writer

PARK_RECHECK_S = 5.0  # a parked record is re-planned at least this often, even if nothing woke it
WAKE_CHECK_S = 0.25  # how often the dependencies parked records wait for are looked up
HOLD_LIMIT = 25  # × read_count: pending entries a partition's book may hold before it stops reading new ones
STUCK_LOGGED = 20  # stuck entries named in the log per check (all are counted)


@dataclass(eq=False)
class Partition:
    """One owned partition of a lane: its slot, its book, and whether the lease is held."""

    slot: Slot
    lease: str
    book: PendingBook = field(default_factory=PendingBook)
    held: bool = False  # the writer's lease keeper says so
    recover: bool = True  # the book must be rebuilt from the pending list before it is trusted


class Lane:
    """Writes one entity's changes to one target, for the partitions its writer replica owns."""

    def __init__(self, writer: Writer, target: str) -> None:
        self.writer = writer
        self.settings = writer.settings
        self.entity = writer.entity
        self.target = target
        self.partitions: list[Partition] = []
        self._by_number: dict[int, Partition] = {}
        self.paused_until = 0.0  # the target asked to be left alone (429 Retry-After)
        self._woken_at = 0.0
        self._stuck_checked_at = time.monotonic()
        self.log = logger.bind(entity=self.entity, target=target)

    @property
    def redis(self) -> Redis:
        return self.writer.ctx.redis

    def assign(self, keys: Keys, partitions: Sequence[int]) -> None:
        """Own these partitions; every book starts empty and is rebuilt once its lease is held."""
        self.partitions = [Partition(slot=Slot.make(keys, self.entity, p, self.target),
                                     lease=keys.lease(self.entity, self.target, p)) for p in sorted(partitions)]
        self._by_number = {part.slot.partition: part for part in self.partitions}

    def pending(self) -> int:
        return sum(len(p.book) for p in self.partitions)

    # -- loop --------------------------------------------------------------------------------
    async def run(self, stopping: Callable[[], bool]) -> None:
        """Sweep until ``stopping()``; a failed sweep is logged and its entries retried."""
        while not stopping():
            try:
                handled = await self.sweep()
            except RedisError as exc:  # Redis restarting or failing over: the books are rebuilt once it is back
                self.log.warning("writer sweep failed, Redis unavailable ({}); its entries are retried", exc)
                handled = 0
                await asyncio.sleep(1.0)
            except Exception:
                self.log.exception("writer sweep failed; its entries are retried")
                handled = 0
                await asyncio.sleep(1.0)
            if not handled and not stopping():
                await asyncio.sleep(self.settings.streams.idle_wait)

    async def sweep(self) -> int:
        """One pass over the owned partitions. Returns the number of entries attempted."""
        now = time.monotonic()
        parts = [p for p in self.partitions if p.held]
        if not parts or now < self.paused_until:
            return 0
        self.writer.sweeps += 1
        for part in parts:
            if part.recover:
                await self._recover(part)
        self._release_stranded(parts, now)
        await self._check_stuck(parts)
        await self._wake(parts)
        now = time.monotonic()
        try:
            deliveries = self._take_due(parts, now) + await self._read_new(parts, now)
            if deliveries:
                with requests_as(self._priority(deliveries)):
                    await self._handle(deliveries)
        except BaseException:
            for part in parts:  # whatever was in hand is retried: nothing is left unscheduled
                part.book.release_in_hand(time.monotonic() + 1.0, "the sweep failed")
            raise
        return len(deliveries)

    def _priority(self, deliveries: list[Delivery]) -> Priority:
        """A sweep with at least a full batch in hand is a backlog: it leaves the account's budget to
        fresh changes of other entities first (``accord.connectors.budget``)."""
        full = max(1, self.writer.connector(self.target).batch_size)
        return Priority.BACKLOG if len(deliveries) >= full else Priority.FRESH

    # -- reading -----------------------------------------------------------------------------
    async def _recover(self, part: Partition) -> None:
        """Rebuild the book from the partition's own pending list: every entry is due now. A record
        whose create was sent and not recorded (``creating``) may exist in the target already: it is
        looked up before it is created again; the others are simply written."""
        part.book.clear()
        count, after, now, recovered = self.settings.streams.read_count, "0", time.monotonic(), 0
        while True:
            entries = await read_pending(self.redis, part.slot, after, count)
            if not entries:
                break
            deliveries = await delivery_counts(self.redis, part.slot, [i for i, _ in entries])
            held = [Held.of_entry(entry_id, raw, deliveries.get(entry_id, 1)) for entry_id, raw in entries]
            sent = await self.writer.ctx.projections.creating(self.target, self.entity, sorted({h.gid for h in held}))
            for h in held:
                h.maybe_written = h.gid in sent
                part.book.schedule(h, now, RETRY, "recovered after a restart or a lease change")
            recovered += len(entries)
            after = entries[-1][0]
        part.recover = False
        if recovered:
            self.log.info("partition {}: {} pending entries recovered", part.slot.partition, recovered)

    def _release_stranded(self, parts: list[Partition], now: float) -> None:
        """Between sweeps nothing is in hand; an entry that is must have been dropped by a bug. It is
        counted as stuck and retried now."""
        for part in parts:
            stranded = part.book.release_in_hand(now, "left in hand by an earlier sweep")
            if stranded:
                self._count_stuck(stranded)
                self.log.error("partition {}: {} entries were left in hand by an earlier sweep; retried",
                               part.slot.partition, stranded)

    async def _check_stuck(self, parts: list[Partition]) -> None:
        """The safety net: a pending entry idle past ``stuck_after`` that the book does not know is
        logged by name, counted and scheduled now."""
        stuck_after = self.settings.streams.stuck_after
        if time.monotonic() - self._stuck_checked_at < stuck_after / 2:
            return
        self._stuck_checked_at = time.monotonic()
        found = 0
        for part in parts:
            rows = [r for r in await idle_pending(self.redis, part.slot, int(stuck_after * 1000), 1000)
                    if r.entry_id not in part.book]
            if not rows:
                continue
            now = time.monotonic()
            for (entry_id, raw), row in zip(await fetch(self.redis, part.slot.stream, [r.entry_id for r in rows]),
                                            rows, strict=True):
                if found < STUCK_LOGGED:
                    self.log.warning("stuck pending entry {} of {} -> {} partition {}: idle {:.0f}s, delivered {} "
                                     "time(s), nothing scheduled; re-read", entry_id, self.entity, self.target,
                                     part.slot.partition, row.idle_ms / 1000, row.deliveries)
                part.book.schedule(Held.of_entry(entry_id, raw, row.deliveries + 1, maybe_written=True), now, RETRY,
                                   "stuck: re-read by the safety net")
                found += 1
        if found:
            self._count_stuck(found)

    def _count_stuck(self, n: int) -> None:
        self.writer.stuck[self.target] += n

    async def _wake(self, parts: list[Partition]) -> None:
        """Parked records whose dependency is met now (the target's first full read ended, the
        referenced record got its id there) are due at once, not at their re-check time."""
        now = time.monotonic()
        if now - self._woken_at < WAKE_CHECK_S:
            return
        self._woken_at = now
        waits = set().union(*(p.book.waits() for p in parts))
        if not waits:
            return
        met = await dependencies_met(self.redis, self.writer.ctx.keys, sorted(waits))
        if met:
            woken = sum(p.book.wake(met, now) for p in parts)
            self.log.debug("{} parked record(s) woken: {} dependencies met", woken, len(met))

    def _take_due(self, parts: list[Partition], now: float) -> list[Delivery]:
        count = self.settings.streams.read_count
        return [Delivery.of(part.slot, held) for part in parts for held in part.book.take_due(now, count)]

    async def _read_new(self, parts: list[Partition], now: float) -> list[Delivery]:
        """Entries never delivered. One whose record is held joins the hold (it must not overtake an
        earlier change of the same record); the others are in hand now."""
        limit = HOLD_LIMIT * self.settings.streams.read_count
        open_parts = [p for p in parts if len(p.book) < limit]
        reads = await read_new(self.redis, [p.slot for p in open_parts], self.settings.streams.read_count)
        out: list[Delivery] = []
        for part, entries in zip(open_parts, reads, strict=True):
            for entry_id, raw in entries:
                held = Held.of_entry(entry_id, raw, 1)
                hold = part.book.hold_of(held.gid)
                if hold is None:
                    part.book.take_in_hand(held, now)
                else:
                    part.book.join(held)
                    if hold.state != IN_HAND:
                        continue  # waits behind its record's hold
                out.append(Delivery.of(part.slot, held))
        return out

    # -- planning and writing ----------------------------------------------------------------
    async def _handle(self, deliveries: list[Delivery]) -> None:
        """Plan, write each batch and commit it as soon as it returns (a crash then loses at most the
        batches in flight), then commit what needed no write (skips, exceptions, parked records)."""
        outcome = Outcome(entity=self.entity, target=self.target)
        ready = await self.writer.planner.plan(self.target, deliveries, outcome)
        await self._write(ready)
        writing = {id(d) for work in ready for d in work.deliveries}
        rest = [d for d in deliveries if id(d) not in writing]
        if await self._commit(outcome, rest):
            self._schedule(outcome, rest)
        await self.writer.nudger.send(self.redis, self.writer.ctx.keys, outcome.nudges)

    async def _write(self, works: list[RecordWork]) -> None:
        if not works:
            return
        size = max(1, self.writer.connector(self.target).batch_size)
        # every batch runs to its end (a batch committed is scheduled; one that failed is left in hand, and
        # the sweep's failure releases it for a retry), then the first failure is raised
        done = await asyncio.gather(*(self._write_batch(works[i: i + size]) for i in range(0, len(works), size)),
                                    return_exceptions=True)
        for result in done:
            if isinstance(result, BaseException):
                raise result

    async def _write_batch(self, works: list[RecordWork]) -> None:
        """One batch call (at most ``write_concurrency`` in flight), then its own commit."""
        outcome = Outcome(entity=self.entity, target=self.target)
        async with self.writer.write_slots:
            creating = [w.gid for w in works if w.target_id is None and w.op is not None]
            await self.writer.ctx.projections.mark_creating(self.target, self.entity, creating, now_ms())
            await self._write_chunk(works, outcome)
        deliveries = [d for work in works for d in work.deliveries]
        if await self._commit(outcome, deliveries):
            self._schedule(outcome, deliveries)

    async def _write_chunk(self, works: list[RecordWork], outcome: Outcome) -> None:
        ops = [w.op for w in works if w.op is not None]
        source = works[0].source
        log = self.log.bind(correlation_id=source.correlation_id if source else "")
        try:
            results = await self.writer.connector(self.target).write(self.entity, ops)
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
            self._settle(work, result, outcome)

    def _settle(self, work: RecordWork, result: WriteResult, outcome: Outcome) -> None:
        target = self.target
        if result.ok:
            outcome.done.append((work, result))
            for d in work.deliveries:
                outcome.ack(d)
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

    # -- committing and scheduling -----------------------------------------------------------
    async def _commit(self, outcome: Outcome, deliveries: list[Delivery]) -> bool:
        """One fenced atomic call: state of every written record, exceptions, XACKs and the delivery
        counters of failed attempts. False (nothing applied) when a lease was lost meanwhile."""
        ctx = self.writer.ctx
        self._account_for_all(outcome, deliveries)
        acks = {slot: ids for slot, ids in outcome.acks.items() if ids}
        retries: dict[tuple[Slot, int], list[str]] = defaultdict(list)
        for d in outcome.deferred:
            if d.deferral is not None and not d.deferral.parked:
                retries[(d.slot, d.attempts)].append(d.entry_id)
        closing = await self.writer.committer.closing(self.target, outcome)
        batch = Batch()  # one atomic apply, fenced by the lease of every partition it touches
        touched = {slot for slot in acks} | {slot for slot, _ in retries}
        for lease in sorted({self._part(slot).lease for slot in touched}):
            batch.fence(lease, self.writer.token)
        self.writer.committer.queue(batch, self.target, outcome, closing)
        for slot, ids in acks.items():
            batch.xack(slot.stream, slot.group, *ids)
            batch.hincrby(ctx.keys.acked(self.entity, self.target), str(slot.partition), len(ids))
        for (slot, attempts), ids in retries.items():  # the attempts made survive a restart
            batch.set_deliveries(slot.stream, slot.group, slot.consumer, ids, attempts)
        ctx.stats.add(batch, Stats.RECORDS, outcome.counts)
        if not await batch.apply(ctx.redis):
            refused = {self._part(slot) for slot in touched} | {self._part(d.slot) for d in deliveries}
            self.log.warning("lease lost before commit (partitions {}); they re-read their pending entries "
                             "once the lease is back", sorted(part.slot.partition for part in refused))
            for part in refused:
                part.recover = True
            return False
        self.writer.written += len(outcome.done)
        return True

    def _account_for_all(self, outcome: Outcome, deliveries: list[Delivery]) -> None:
        """Every delivery ends acked or deferred; one that is neither was dropped by a bug: it is
        retried, logged and counted, never forgotten."""
        acked = {(slot, i) for slot, ids in outcome.acks.items() for i in ids}
        for d in deliveries:
            if d.deferral is None and (d.slot, d.entry_id) not in acked:
                d.deferral = Deferral(parked=False, why="no outcome in its sweep", maybe_written=True)
                outcome.deferred.append(d)
                self._count_stuck(1)
                self.log.error("entry {} of partition {} had no outcome in its sweep; retried", d.entry_id,
                               d.slot.partition)

    def _schedule(self, outcome: Outcome, deliveries: list[Delivery]) -> None:
        """After the commit: acked entries leave the books; each deferred record is scheduled."""
        now = time.monotonic()
        for slot, ids in outcome.acks.items():
            self._part(slot).book.settle(ids)
        by_record: dict[tuple[Slot, str], list[Delivery]] = defaultdict(list)
        for d in outcome.deferred:
            held = self._part(d.slot).book.get(d.entry_id)
            if held is not None:
                by_record[(d.slot, held.gid)].append(d)
        for (slot, gid), ds in by_record.items():
            self._defer(self._part(slot), gid, ds, now)
        if outcome.retry_after:
            self.paused_until = now + outcome.retry_after

    def _defer(self, part: Partition, gid: str, ds: list[Delivery], now: float) -> None:
        cap = self.settings.streams.retry_backoff_cap
        deferrals = [d.deferral for d in ds if d.deferral is not None]
        retries = [x for x in deferrals if not x.parked]
        if not retries:
            waits = frozenset().union(*(x.waits for x in deferrals))
            part.book.defer(gid, now + min(PARK_RECHECK_S, cap), PARKED, deferrals[0].why, waits)
            return
        attempts = max(d.attempts for d in ds)
        delay = max(max(x.retry_after for x in retries), backoff_delay(attempts, 0.5, cap))
        for d in ds:
            held = part.book.get(d.entry_id)
            if held is not None and d.deferral is not None and not d.deferral.parked:
                held.attempts = d.attempts + 1
                held.maybe_written = held.maybe_written or d.deferral.maybe_written
                held.failing_since = held.failing_since or now
        part.book.defer(gid, now + delay, RETRY, retries[0].why)

    def _part(self, slot: Slot) -> Partition:
        return self._by_number[slot.partition]
