"""WriterActor logic: one replica of one entity's writer, serving every target system of the entity.

Each replica owns a set of partitions (assigned by the supervisor, fenced by leases) and runs one lane
per target (``actors.lane``): a lane reads its partitions' pending and new entries, plans, writes in
batches and commits atomically, scheduling every entry it leaves pending. A lease keeper renews the
leases every third of ``streams.lease_ttl`` independently of how long sweeps take, tells each lane which
partitions it holds and which it (re)acquired afresh (those re-read their pending entries first), trims
the streams and flushes the counters.

What survives a crash: everything is in Redis. Entries not yet acked stay in consumer ``p{p}``'s PEL
and are re-read first by whichever replica holds the partition next. A write repeated after a crash is
harmless: updates are idempotent, creates are upserts by external id (Salesforce), replayed by request
id, or found by ``find_created`` before a retried create (QuickBooks, Harvest).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from accord.actors.governance import Ownership
from accord.actors.loop import LoopActor
from accord.actors.write.commit import Committer
from accord.actors.write.lane import Lane
from accord.actors.write.nudge import Nudger
from accord.actors.write.planner import WritePlanner
from accord.config.settings import Settings
from accord.connectors.base import CallStats, Connector
from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.leases import Leases
from accord.streams.log import trim
from accord.streams.records import now_ms
from accord.streams.state import Stats


class Writer(LoopActor):
    """Writes one entity's change records to each of its target systems."""

    def __init__(self, settings: Settings, entity: str, redis_url: str, *, replica: int = 0, epoch: int = 0,
                 connectors: dict[str, Connector] | None = None,
                 redis: Redis | None = None) -> None:
        super().__init__(settings, redis_url, redis)
        self.entity = entity
        self.replica = replica
        self.token = f"{entity}/{replica}/{epoch}"
        self.targets = settings.targets_of(entity)
        self.ownership = Ownership.from_settings(entity, settings.entities[entity])
        self._connectors: dict[str, Connector] = dict(connectors or {})
        self.call_stats: dict[str, CallStats] = defaultdict(CallStats)
        self._leases: Leases | None = None
        self._redis_run: str | None = None  # the Redis server's run id when the leases were last renewed
        self._renewed_at = 0.0
        self._trimmed_at = time.monotonic()
        self.write_slots = asyncio.Semaphore(settings.streams.write_concurrency)  # batch calls in flight
        self.planner = WritePlanner(settings, entity, lambda: self.ctx, self.connector)
        self.committer = Committer(settings, entity, lambda: self.ctx, self.planner)
        self.nudger = Nudger(settings)  # asks pollers for referenced records parked writes wait for
        self.lanes = {target: Lane(self, target) for target in self.targets}
        self.stuck: Counter[str] = Counter()  # per target: entries the safety net had to re-read
        self.sweeps = 0
        self.written = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def connector(self, target: str) -> Connector:
        if target not in self._connectors:
            self._connectors[target] = self.ctx.connector(target, stats=self.call_stats[target])
        return self._connectors[target]

    def lane(self, target: str) -> Lane:
        return self.lanes[target]

    def assign(self, partitions: Sequence[int]) -> None:
        """Own these partitions (for every target)."""
        keys = Keys(self.settings.namespace)
        for lane in self.lanes.values():
            lane.assign(keys, partitions)
        self._renewed_at = 0.0

    async def start(self, partitions: Sequence[int]) -> bool:
        """Own ``partitions`` and run the lanes and the lease keeper (no-op when already running)."""
        if self.running:
            return False
        self.assign(partitions)
        return self._launch(self.run(), name=f"writer:{self.entity}:{self.replica}")

    async def stop(self) -> None:
        """Finish and commit the sweeps in hand, release leases, close clients."""
        await self._halt()
        if self._leases is not None:
            with contextlib.suppress(Exception):
                await self._leases.release()
        await self._flush_counters()
        for connector in self._connectors.values():
            await connector.aclose()
        self._connectors.clear()
        await self._close_redis()
        self._leases = None

    async def health(self) -> dict[str, Any]:
        held = len(self._leases.held) if self._leases else 0
        pending = sum(lane.pending() for lane in self.lanes.values())
        return self._health("writer", entity=self.entity, replica=self.replica, leases=held, pending=pending,
                            sweeps=self.sweeps, written=self.written)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._keep(), name=f"leases:{self.entity}:{self.replica}")
            for target, lane in self.lanes.items():
                group.create_task(lane.run(lambda: self._stopping), name=f"lane:{self.entity}:{target}")

    async def sweep(self) -> int:
        """One sweep of every lane (renewing the leases first when due). Returns entries attempted."""
        if time.monotonic() - self._renewed_at >= self.settings.streams.lease_ttl / 3:
            await self.renew_leases()
        async with asyncio.TaskGroup() as group:  # a failure cancels the sibling lanes' sweeps too
            sweeps = [group.create_task(lane.sweep()) for lane in self.lanes.values()]
        await self._flush_counters()
        return sum(s.result() for s in sweeps)

    # -- lease keeping and housekeeping ---------------------------------------------------------
    async def _keep(self) -> None:
        """Renew leases every third of their TTL, trim, flush counters; never dies."""
        while not self._stopping:
            try:
                await self.renew_leases()
                await self._maybe_trim()
                await self._flush_counters()
            except Exception:
                logger.bind(entity=self.entity, replica=self.replica).exception("lease keeping failed; retrying")
            await self._pause(self.settings.streams.lease_ttl / 3)

    async def renew_leases(self) -> None:
        """Take or renew every owned partition's lease. A lease acquired afresh (not renewed) makes its
        partition re-read its pending entries before anything else; so does a restart of the Redis server
        (its run id changed): restarted on its AOF or failed over, it may have lost the last second of
        acks and deliveries, so what the books remember is no longer what Redis holds."""
        if self._leases is None:
            self._leases = Leases(self.ctx.redis, self.token, int(self.settings.streams.lease_ttl * 1000))
        restarted = await self._redis_restarted()
        parts = [part for lane in self.lanes.values() for part in lane.partitions]
        held = await self._leases.refresh(part.lease for part in parts)
        for part in parts:
            part.held = part.lease in held
            if part.lease in self._leases.acquired or restarted:
                part.recover = True
        self._renewed_at = time.monotonic()

    async def _redis_restarted(self) -> bool:
        try:
            run = str((await self.ctx.redis.info("server")).get("run_id") or "")
        except ResponseError:  # a server without INFO (fakeredis): restarts are not detected
            return False
        restarted = self._redis_run is not None and run != self._redis_run
        if restarted:
            logger.bind(entity=self.entity, replica=self.replica).warning(
                "Redis restarted (run id {} -> {}): every partition re-reads its pending entries", self._redis_run, run)
        self._redis_run = run
        return restarted

    async def _maybe_trim(self) -> None:
        if time.monotonic() - self._trimmed_at < self.settings.streams.trim_interval:
            return
        self._trimmed_at = time.monotonic()
        retention_ms = int(self.settings.streams.retention * 1000)
        streams = {part.slot.stream for lane in self.lanes.values() for part in lane.partitions}
        for stream in sorted(streams):
            await trim(self.ctx.redis, stream, retention_ms, now_ms())

    async def _flush_counters(self) -> None:
        """API call counters and stuck-entry counts, added to the counters in Redis (read at scrape time)."""
        await self._flush_call_stats(self.call_stats)
        if not self.stuck or self._ctx is None:
            return
        counts = {Stats.label("stuck", self.entity, target): n for target, n in self.stuck.items()}
        batch = Batch()
        self.ctx.stats.add(batch, Stats.RECORDS, counts)
        await batch.apply(self.ctx.redis)
        self.stuck.clear()
