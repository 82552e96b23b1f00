"""The scheduler: runs the reconciliation jobs of ``[reconcile]`` on their interval or cron expression.

When a job last ran is kept in Redis (``reconcile:{job}``), so a restarted scheduler neither repeats a
run nor skips one that fell due while it was down (it runs it once, at start). A lease per job keeps two
daemons from running the same job at once.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import cronsim
from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from accord.actors.loop import LoopActor
from accord.actors.reconcile.reconciler import Reconciler
from accord.config.settings import ReconcileJob, Settings
from accord.connectors.base import Connector
from accord.connectors.budget import Priority, requests_as
from accord.streams.replies import text_or_none

TICK_S = 1.0


def next_due(job: ReconcileJob, last_ms: int | None, now: float) -> float | None:
    """Epoch seconds when ``job`` should run next (``None``: on demand only)."""
    if job.interval is None and job.cron is None:
        return None
    if last_ms is None:
        return now
    last = last_ms / 1000
    if job.interval is not None:
        return last + float(job.interval)
    assert job.cron is not None
    after = dt.datetime.fromtimestamp(last, dt.UTC).replace(microsecond=0)
    return next(cronsim.CronSim(job.cron, after)).timestamp()


class Scheduler(LoopActor):
    def __init__(self, settings: Settings, redis_url: str, *, redis: Redis | None = None, connectors: dict[str, Connector] | None = None) -> None:
        super().__init__(settings, redis_url, redis)
        self.connectors = connectors  # None: built from the settings (tests pass in-memory systems)
        self.token = uuid.uuid4().hex
        self.runs = 0
        self.failures = 0

    async def start(self) -> bool:
        return self._launch(self.run(), name="scheduler")

    async def stop(self) -> None:
        await self._halt()
        await self._close_redis()

    async def health(self) -> dict[str, Any]:
        return self._health("scheduler", runs=self.runs, failures=self.failures)

    async def run(self) -> None:
        reconciler = self.reconciler()
        try:
            while not self._stopping:
                try:
                    await self.tick(reconciler)
                except RedisError as exc:  # Redis restarting or failing over: wait for it, never die
                    logger.warning("scheduler: Redis unavailable ({}); retrying", exc)
                await self._pause(TICK_S)
        finally:
            await reconciler.aclose()

    def reconciler(self) -> Reconciler:
        return Reconciler(self.settings, self.ctx.redis, self.connectors)

    async def tick(self, reconciler: Reconciler) -> int:
        """Run every job that is due now; returns how many ran."""
        ran = 0
        for name, job in self.settings.reconcile.items():
            if self._stopping:
                break
            ran += await self._maybe_run(reconciler, name, job)
        return ran

    async def _maybe_run(self, reconciler: Reconciler, name: str, job: ReconcileJob) -> int:
        redis = self.ctx.redis
        last = await redis.hget(self.ctx.keys.reconcile(name), "ran_ms")
        due = next_due(job, int(last) if last else None, time.time())
        if due is None or due > time.time():
            return 0
        lease = self.ctx.keys.lease("reconcile", name, 0)
        if not await redis.set(lease, self.token, nx=True, px=15 * 60 * 1000):
            return 0  # another daemon runs it now
        try:
            with requests_as(Priority.POLL):  # routine reads: syncing changes goes first
                await reconciler.run(name, job)
            self.runs += 1
        except Exception as exc:  # a job failing must not stop the others; it runs again when due
            self.failures += 1
            await redis.hset(self.ctx.keys.reconcile(name), mapping={"ran_ms": int(time.time() * 1000),
                                                                     "error": str(exc)[:500]})
            logger.bind(job=name).exception("reconcile {} failed: {}", name, exc)
        finally:
            if text_or_none(await redis.get(lease)) == self.token:
                await redis.delete(lease)
        return 1
