"""Closed-won provisioning processes, kept in Redis so a crash anywhere resumes at the step it was on.

One msgpack ``Provision`` per won opportunity in the ``provision`` hash, plus its next run time in the
``provision:due`` sorted set, and its (step, state) as membership of one ``provision:label`` set, so the
metrics count processes without reading them. Each save moves the label in the same atomic batch. Steps run in order (customer, project, tasks, writeback); each records what
it made (ids) before the process moves on, and each is idempotent (deterministic global ids, and the
connectors' look-up-before-create), so running a step twice never makes a second record.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from redis.asyncio import Redis

from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.replies import binary, zset_members

Step = Literal["customer", "project", "tasks", "writeback", "done"]
STEPS: tuple[Step, ...] = ("customer", "project", "tasks", "writeback", "done")


class Provision(msgspec.Struct, kw_only=True, omit_defaults=True):
    opportunity: str  # global id
    crm_id: str
    correlation_id: str
    started_ms: int
    step: Step = "customer"
    attempts: int = 0  # failed tries of the current step
    waiting_since_ms: int = 0  # the current step waits for the sync (e.g. the customer to reach the ERP)
    parked: bool = False  # stopped by an error: resumes from this step when its exception is retried
    error: str = ""
    customer_id: str = ""  # the account in the ERP
    client_id: str = ""  # the account in the PSA
    legal_entity: str = ""
    project_gid: str = ""
    project_id: str = ""  # the project in the PSA
    tasks: list[str] = []  # PSA ids of the work breakdown's tasks, in template order
    done_ms: int = 0


State = Literal["running", "parked", "done"]
LABELS: tuple[tuple[Step, State], ...] = (
    *((step, state) for step in STEPS[:-1] for state in ("running", "parked")), ("done", "done"))


def label(process: Provision) -> tuple[Step, State]:
    """Where a process stands: its step and whether it runs, is parked by an error, or is done."""
    if process.step == "done":
        return "done", "done"
    return process.step, "parked" if process.parked else "running"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Provision)


class Provisions:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def get(self, opportunity: str) -> Provision | None:
        raw = await self.redis.hget(self.keys.provisions(), opportunity)
        return _decoder.decode(binary(raw)) if raw else None

    async def all(self) -> list[Provision]:
        return [_decoder.decode(binary(v)) for v in (await self.redis.hgetall(self.keys.provisions())).values()]

    async def due(self, now_ms: int, limit: int = 50) -> list[str]:
        raw = await self.redis.zrangebyscore(self.keys.provisions_due(), "-inf", now_ms, start=0, num=limit)
        return zset_members(raw)

    def start(self, pipe: Batch, process: Provision) -> None:
        """Store a new process and run it as soon as possible. For an opportunity not started yet (the one
        provisioner checks first): HSETNX keeps an existing process, but its label would be overwritten."""
        pipe.hsetnx(self.keys.provisions(), process.opportunity, _encoder.encode(process))
        pipe.zadd(self.keys.provisions_due(), process.opportunity, 0)
        self._label(pipe, process)

    def save(self, pipe: Batch, process: Provision, next_ms: int | None) -> None:
        """Store ``process``; ``next_ms`` schedules its next run (``None``: none, it is done or parked)."""
        pipe.hset(self.keys.provisions(), process.opportunity, _encoder.encode(process))
        if next_ms is None:
            pipe.zrem(self.keys.provisions_due(), process.opportunity)
        else:
            pipe.zadd(self.keys.provisions_due(), process.opportunity, next_ms)
        self._label(pipe, process)

    def _label(self, pipe: Batch, process: Provision) -> None:
        """The process in its label's set and in no other (idempotent: a replayed batch counts once)."""
        mine = label(process)
        for each in LABELS:
            key = self.keys.provisions_labelled(*each)
            if each == mine:
                pipe.sadd(key, process.opportunity)
            else:
                pipe.srem(key, process.opportunity)

    async def counts(self) -> dict[tuple[Step, State], int]:
        """How many processes stand at each (step, state): one SCARD per label."""
        pipe = self.redis.pipeline(transaction=False)
        for each in LABELS:
            pipe.scard(self.keys.provisions_labelled(*each))
        return {each: int(n) for each, n in zip(LABELS, await pipe.execute(), strict=True)}

    async def label_once(self) -> int:
        """Label the processes started before the label sets existed (once per Redis; the flag is set last,
        so a crash only makes the next start label again). Returns how many processes were read."""
        if await self.redis.exists(self.keys.provisions_labels_built()):
            return 0
        seen = 0
        async for _, raw in self.redis.hscan_iter(self.keys.provisions(), count=500):
            pipe = Batch()
            self._label(pipe, _decoder.decode(binary(raw)))
            await pipe.apply(self.redis)
            seen += 1
        await self.redis.set(self.keys.provisions_labels_built(), 1)
        return seen
