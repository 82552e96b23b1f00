"""The supervisor: spawns one PollerActor per system, ``replicas`` WriterActors per entity, and the
scheduler and provisioner when configured; hands out partitions, watches health, restarts what stopped,
rescales on request, drains on shutdown.

It runs in the daemon's event loop (the Ray driver). What survives a crash of the daemon: all sync
state is in Redis; on start the supervisor creates the actors afresh and they resume from Redis. The
loop never dies: each step is guarded and logged.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from accord.actors.provision.process import Provisions
from accord.actors.provision.provisioner import GROUP as PROVISION_GROUP
from accord.actors.remote import poller_actor, provisioner_actor, scheduler_actor, writer_actor
from accord.config.settings import Settings
from accord.streams.business import sweep as sweep_slas
from accord.streams.exception_ledger import build_once, trim_settled, trim_streams
from accord.streams.keys import Keys
from accord.streams.log import ensure_groups
from accord.streams.replies import text_map


def assign_partitions(partitions: int, replicas: int) -> list[list[int]]:
    """Round-robin partitions over replicas: replica i gets every p with p % replicas == i."""
    return [[p for p in range(partitions) if p % replicas == i] for i in range(replicas)]


@dataclass
class Managed:
    """One actor under supervision."""

    name: str
    handle: Any
    start_args: tuple[Any, ...]
    restarts: int = 0
    healthy: bool = False
    last: dict[str, Any] = field(default_factory=dict)


class Supervisor:
    def __init__(self, settings: Settings, redis_url: str, redis: Redis) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.redis = redis
        self.keys = Keys(settings.namespace)
        self.node = socket.gethostname()
        self.pollers: dict[str, Managed] = {}
        self.writers: dict[str, list[Managed]] = {}
        self.scheduler: Managed | None = None
        self.provisioner: Managed | None = None
        self.replicas = {e: ent.replicas for e, ent in settings.entities.items()}
        self.epoch: dict[str, int] = dict.fromkeys(settings.entities, 0)
        self.started_at = time.time()
        self._desk_trimmed_at = float("-inf")

    # -- start -------------------------------------------------------------------------------
    async def start(self) -> None:
        for entity in self.settings.entities:
            extra = [PROVISION_GROUP] if entity == "opportunity" and self.settings.provisioning else []
            await ensure_groups(self.redis, self.keys, entity, [*self.settings.targets_of(entity), *extra],
                                self.settings.streams.partitions)
        await self._load_control()
        built = await build_once(self.redis, self.keys)
        if built:
            logger.info("exception desk: {} exceptions filed by an earlier version listed in its ledger", built)
        if self.settings.provisioning is not None:
            labelled = await Provisions(self.redis, self.keys).label_once()
            if labelled:
                logger.info("provisioning: {} processes started by an earlier version counted by step", labelled)
        cpus = self.settings.ray.actor_cpus
        Poller = poller_actor(cpus)
        for system in self.settings.systems:
            if not self.settings.entities_of(system):
                continue
            handle = Poller.options(name=f"poller:{self.settings.namespace}:{system}").remote(
                self.settings, system, self.redis_url)
            self.pollers[system] = Managed(name=f"poller:{system}", handle=handle, start_args=())
        for entity in self.settings.entities:
            self.writers[entity] = self._spawn_writers(entity)
        if any(j.interval is not None or j.cron is not None for j in self.settings.reconcile.values()):
            handle = scheduler_actor(cpus).options(name=f"scheduler:{self.settings.namespace}").remote(
                self.settings, self.redis_url)
            self.scheduler = Managed(name="scheduler", handle=handle, start_args=())
        if self.settings.provisioning is not None:
            handle = provisioner_actor(cpus).options(name=f"provisioner:{self.settings.namespace}").remote(
                self.settings, self.redis_url)
            self.provisioner = Managed(name="provisioner", handle=handle, start_args=())
        await asyncio.gather(*(self._start(m) for m in self._all()))

    def _spawn_writers(self, entity: str) -> list[Managed]:
        Writer = writer_actor(self.settings.ray.actor_cpus)
        plan = assign_partitions(self.settings.streams.partitions, self.replicas[entity])
        managed = []
        for replica, partitions in enumerate(plan):
            handle = Writer.options(name=f"writer:{self.settings.namespace}:{entity}:{replica}").remote(
                self.settings, entity, self.redis_url, replica=replica, epoch=self.epoch[entity])
            managed.append(Managed(name=f"writer:{entity}:{replica}", handle=handle,
                                   start_args=(partitions,)))
        return managed

    def _all(self) -> list[Managed]:
        return [*self.pollers.values(), *(m for ms in self.writers.values() for m in ms), *self._jobs()]

    def _jobs(self) -> list[Managed]:
        """The scheduler and the provisioner, when configured."""
        return [m for m in (self.scheduler, self.provisioner) if m is not None]

    async def _start(self, managed: Managed) -> None:
        await managed.handle.start.remote(*managed.start_args)
        managed.healthy = True

    # -- watch -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Check health every ``check_interval`` until ``stop`` is set. Never raises."""
        interval = self.settings.supervisor.check_interval
        while not stop.is_set():
            began = time.monotonic()
            try:
                await self.check()
                await self._rescale_if_asked()
                await self._publish_health()
                await self._trim_desk()
                await sweep_slas(self.redis, self.keys, self.settings.sla, int(time.time() * 1000))
            except RedisError as exc:
                logger.warning("supervisor: Redis unavailable ({}); continuing", exc)
            except Exception:
                logger.exception("supervisor step failed; continuing")
            took = time.monotonic() - began
            if took > interval * 5:
                logger.warning("supervisor step took {:.1f}s", took)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def check(self) -> None:
        """Ask every actor for its health; (re)start any whose loop is not running (a Ray restart
        re-runs ``__init__`` only, so the supervisor starts the loop again)."""
        await asyncio.gather(*(self._check_one(m) for m in self._all()))

    async def _check_one(self, managed: Managed) -> None:
        timeout = max(2.0, self.settings.supervisor.check_interval * 3)
        try:
            managed.last = await asyncio.wait_for(managed.handle.health.remote(), timeout)
        except Exception as exc:  # actor restarting or unreachable: try again next tick
            if managed.healthy:
                logger.warning("{} unreachable ({}); Ray restarts it", managed.name, type(exc).__name__)
            managed.healthy = False
            return
        if not managed.last.get("running"):
            managed.restarts += 1
            logger.warning("{} is up but not running (restarted by Ray); starting it", managed.name)
            try:
                await asyncio.wait_for(managed.handle.start.remote(*managed.start_args), timeout)
            except Exception as exc:
                logger.warning("starting {} failed: {}", managed.name, exc)
                managed.healthy = False
                return
        managed.healthy = True

    @property
    def ready(self) -> bool:
        return bool(self._all()) and all(m.healthy for m in self._all())

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "node": self.node,
            "uptime_s": round(time.time() - self.started_at, 1),
            "actors": {m.name: {"healthy": m.healthy, "restarts": m.restarts, **m.last} for m in self._all()},
        }

    async def _publish_health(self) -> None:
        ttl_ms = int(self.settings.supervisor.health_ttl * 1000)
        await self.redis.psetex(self.keys.health(self.node), ttl_ms, json.dumps(self.status()))

    # -- scale -------------------------------------------------------------------------------
    async def _trim_desk(self) -> None:
        """Forget settled exceptions older than ``streams.exception_retention`` (open ones stay)."""
        if time.monotonic() - self._desk_trimmed_at < self.settings.streams.trim_interval:
            return
        self._desk_trimmed_at = time.monotonic()
        retention_ms = int(self.settings.streams.exception_retention * 1000)
        now = int(time.time() * 1000)
        dropped = await trim_settled(self.redis, self.keys, retention_ms, now)
        await trim_streams(self.redis, self.keys, retention_ms, int(self.settings.streams.audit_retention * 1000), now)
        if dropped:
            logger.info("exception desk: {} settled exceptions older than the retention dropped", dropped)

    async def _load_control(self) -> None:
        """The replicas wanted now: the config's, with the overrides ``accord scale`` left on top (an
        override deleted by ``accord scale --reset`` gives the config's value back)."""
        control = text_map(await self.redis.hgetall(self.keys.control()))
        self.replicas = {entity: wanted.replicas for entity, wanted in desired_replicas(self.settings, control).items()}

    async def _rescale_if_asked(self) -> None:
        before = dict(self.replicas)
        await self._load_control()
        changed = [e for e in self.replicas if self.replicas[e] != before[e]]
        for entity in changed:
            logger.info("rescaling {} writers {} -> {}", entity, before[entity], self.replicas[entity])
            await self._stop_all(self.writers[entity])
            self.epoch[entity] += 1
            self.writers[entity] = self._spawn_writers(entity)
            await asyncio.gather(*(self._start(m) for m in self.writers[entity]))

    # -- drain -------------------------------------------------------------------------------
    async def drain(self) -> None:
        """Stop pollers, the scheduler and the provisioner first (no new records), then writers (finish and ack the batch
        in hand)."""
        await self._stop_all([*self.pollers.values(), *self._jobs()])
        await self._stop_all([m for ms in self.writers.values() for m in ms])
        await self.redis.delete(self.keys.health(self.node))

    async def _stop_all(self, managed: list[Managed]) -> None:
        import ray

        timeout = self.settings.supervisor.drain_timeout

        async def stop(m: Managed) -> None:
            try:
                await asyncio.wait_for(m.handle.stop.remote(), timeout)
            except Exception as exc:
                logger.warning("{} did not stop cleanly: {}", m.name, exc)
            ray.kill(m.handle, no_restart=True)

        await asyncio.gather(*(stop(m) for m in managed))


@dataclass(frozen=True)
class Replicas:
    """How many writer replicas of an entity run, and why: ``config`` or an ``override`` (``accord scale``)."""

    replicas: int
    source: str
    configured: int


def desired_replicas(settings: Settings, control: dict[str, str]) -> dict[str, Replicas]:
    """Each entity's replicas: its config value, or the override in the control hash (clamped to
    1..streams.partitions; an override that is not a number is ignored and logged)."""
    wanted = {}
    for entity, ent in settings.entities.items():
        override = control.get(f"replicas:{entity}")
        wanted[entity] = Replicas(ent.replicas, "config", ent.replicas)
        if override is None:
            continue
        try:
            replicas = int(override)
        except ValueError:
            logger.warning("control replicas:{} = {!r} is not a number; using the config's {}", entity, override,
                           ent.replicas)
            continue
        wanted[entity] = Replicas(max(1, min(replicas, settings.streams.partitions)), "override", ent.replicas)
    return wanted


async def set_replicas(redis: Redis, keys: Keys, entity: str, replicas: int) -> None:
    """Ask the running supervisor to rescale an entity's writers (``accord scale``)."""
    await redis.hset(keys.control(), f"replicas:{entity}", replicas)


async def reset_replicas(redis: Redis, keys: Keys, entity: str) -> bool:
    """Drop the override of an entity's replicas, so the config's value applies again (False: there was none)."""
    return bool(await redis.hdel(keys.control(), f"replicas:{entity}"))
