"""Closed-won provisioning processes, kept in Redis so a crash anywhere resumes at the step it was on.

One msgpack ``Provision`` per won opportunity in the ``provision`` hash, plus its next run time in the
``provision:due`` sorted set. Steps run in order (customer, project, tasks, writeback); each records what
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

    def save(self, pipe: Batch, process: Provision, next_ms: int | None) -> None:
        """Store ``process``; ``next_ms`` schedules its next run (``None``: none, it is done or parked)."""
        pipe.hset(self.keys.provisions(), process.opportunity, _encoder.encode(process))
        if next_ms is None:
            pipe.zrem(self.keys.provisions_due(), process.opportunity)
        else:
            pipe.zadd(self.keys.provisions_due(), process.opportunity, next_ms)
