"""The lifecycle every actor shares: one long-running loop task, started idempotently, stopped by a
flag and awaited for at most the drain timeout (then cancelled), with a lazily opened Redis context."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from typing import Any

from loguru import logger
from redis.asyncio import Redis

from accord.actors.context import Context
from accord.config.settings import Settings
from accord.connectors.base import CallStats
from accord.streams.state import Stats


class LoopActor:
    """Base of Poller and Writer. Subclasses implement ``run()`` and check ``self._stopping``."""

    def __init__(self, settings: Settings, redis_url: str, redis: Redis | None = None) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self._ctx: Context | None = Context(settings, redis) if redis is not None else None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop_requested = asyncio.Event()

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            self._ctx = Context.open(self.settings, self.redis_url)
        return self._ctx

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _health(self, kind: str, **detail: Any) -> dict[str, Any]:
        """What ``health()`` reports: the kind, whether the loop runs, the process id (fault tests kill
        actors by pid) and the subclass's own counters."""
        return {"kind": kind, "running": self.running, "pid": os.getpid(), **detail}

    def _launch(self, loop: Coroutine[Any, Any, None], name: str) -> bool:
        if self.running:
            loop.close()
            return False
        self._stopping = False
        self._stop_requested.clear()
        self._task = asyncio.create_task(loop, name=name)
        return True

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when a stop is requested meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), timeout=seconds)

    async def _halt(self) -> None:
        """Ask the loop to finish its unit of work and wait for it (cancel it after the drain timeout).

        The loop ending cancelled is expected; a cancellation of the caller propagates, and so does an
        error the loop ended with."""
        self._stopping = True
        self._stop_requested.set()
        task = self._task
        if task is None:
            return
        # asyncio.wait neither cancels the task nor raises its outcome: it raises only the caller's cancellation
        done, _ = await asyncio.wait([task], timeout=self.settings.supervisor.drain_timeout)
        if not done:
            logger.warning("{} did not finish within the drain timeout; cancelling", task.get_name())
            task.cancel()
            await asyncio.wait([task])
        if not task.cancelled():
            task.result()

    async def _close_redis(self) -> None:
        if self._ctx is not None:
            await self._ctx.redis.aclose()
            self._ctx = None

    async def _flush_call_stats(self, stats: dict[str, CallStats]) -> None:
        """Add each system's API call counters to ``stats:api`` in Redis (read at scrape time)."""
        if self._ctx is None:
            return
        counts = {Stats.label(k, system): v for system, s in stats.items() for k, v in s.drain().items() if v}
        if counts:
            async with self.ctx.redis.pipeline(transaction=False) as pipe:
                self.ctx.stats.add(pipe, Stats.API, counts)  # type: ignore[arg-type]
                await pipe.execute()
