"""Ops of one process that wait for QuickBooks' batch window, pooled so that no batch goes out half empty.

While enough batches of a process already wait for the realm's ``/batch`` window, the writer's further
chunks put their ops here. Each chunk then sends its own ops singly, a few at a time, until the wait for
the window shortens; then whichever chunk notices takes up to a full batch of pooled ops, from any chunk,
and sends them as one batch. Every op's outcome reaches its own chunk through a future.

Nothing here survives a crash: a pooled op is in a chunk that is still in hand, and the writer retries a
chunk that did not finish (a create whose reply was lost is looked up by its gid marker first).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from accord.connectors.base import WriteOp, WriteResult
from accord.connectors.errors import Retryable
from accord.connectors.quickbooks.mapping import EntitySpec

_owners = itertools.count()


@dataclass(eq=False)
class Pooled:
    """One op waiting to be sent, singly or in a batch; ``outcome`` is ``None`` for a stale SyncToken."""

    spec: EntitySpec
    op: WriteOp
    item: dict[str, Any]
    salt: str
    owner: int
    outcome: asyncio.Future[WriteResult | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    def resolve(self, outcome: WriteResult | None) -> None:
        """Hand the outcome to the op's chunk (unless that chunk already gave up on it)."""
        if not self.outcome.done():
            self.outcome.set_result(outcome)


class SpillPool:
    """The ops of one process waiting for a batch, oldest first."""

    def __init__(self) -> None:
        self._waiting: list[Pooled] = []

    @staticmethod
    def new_owner() -> int:
        return next(_owners)

    def put(self, spec: EntitySpec, ops: Iterable[tuple[WriteOp, dict[str, Any]]], salt: str, owner: int) -> list[Pooled]:
        pooled = [Pooled(spec, op, item, salt, owner) for op, item in ops]
        self._waiting.extend(pooled)
        return pooled

    def take(self, qbo: str, count: int, owner: int | None = None) -> list[Pooled]:
        """Up to ``count`` waiting ops of entity ``qbo`` (of one ``owner`` if given), removed from the pool."""
        taken: list[Pooled] = []
        for pooled in self._waiting:
            if len(taken) == count:
                break
            if pooled.spec.qbo == qbo and (owner is None or pooled.owner == owner):
                taken.append(pooled)
        chosen = set(map(id, taken))
        self._waiting = [p for p in self._waiting if id(p) not in chosen]
        return taken

    def withdraw(self, owner: int) -> None:
        """Drop what ``owner`` still has waiting (it gave up: its chunk is retried as a whole)."""
        self._waiting = [p for p in self._waiting if p.owner != owner]

    def __len__(self) -> int:
        return len(self._waiting)


def settle(pooled: list[Pooled], system: str, why: str) -> None:
    """Give every op still without an outcome a retryable failure (its sender stopped mid-way)."""
    for p in pooled:
        p.resolve(WriteResult(gid=p.op.gid, ok=False, error=Retryable(system, why)))
