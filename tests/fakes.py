"""An in-memory system behind the Connector contract, for unit tests of poller and writer logic.

Integration tests use the real sandboxes; this double only lets unit tests script failures precisely.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from accord.connectors.base import CallStats, Page, SourceRecord, WriteOp, WriteResult
from accord.connectors.errors import ConnectorError, Permanent


class MemorySystem:
    def __init__(self, system: str, batch_size: int = 10) -> None:
        self.system = system
        self.batch_size = batch_size
        self.records: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.gids: dict[str, str | None] = {}
        self.deleted: set[str] = set()
        self.clock = itertools.count(1)
        self.ids = itertools.count(1)
        self.fail_batches: list[ConnectorError] = []
        self.fail_records: dict[str, ConnectorError] = {}  # gid -> error for every write of it
        self.write_calls = 0
        self.creates = 0
        self.stats = CallStats()

    # a "user" of the system
    def user_create(self, fields: dict[str, Any]) -> str:
        rid = f"{self.system}-{next(self.ids)}"
        self.records[rid] = dict(fields)
        self.versions[rid] = next(self.clock)
        self.gids[rid] = None
        return rid

    def user_update(self, rid: str, fields: dict[str, Any]) -> None:
        self.records[rid].update(fields)
        self.versions[rid] = next(self.clock)

    def user_delete(self, rid: str) -> None:
        self.deleted.add(rid)
        self.versions[rid] = next(self.clock)

    # the Connector contract
    def entities(self) -> Sequence[str]:
        return ("account",)

    async def fetch(self, entity: str, cursor: str | None) -> Page:
        since = int(cursor or 0)
        changed = sorted((v, rid) for rid, v in self.versions.items() if v > since)
        records = [SourceRecord(id=rid, version=v, deleted=rid in self.deleted, fields=dict(self.records[rid]),
                                gid=self.gids[rid]) for v, rid in changed]
        return Page(records=records, cursor=str(max([since, *(v for v, _ in changed)])), more=False)

    async def write(self, entity: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        self.write_calls += 1
        assert len(ops) <= self.batch_size
        if self.fail_batches:
            raise self.fail_batches.pop(0)
        return [self._apply(op) for op in ops]

    def _apply(self, op: WriteOp) -> WriteResult:
        if op.gid in self.fail_records:
            return WriteResult(gid=op.gid, ok=False, error=self.fail_records[op.gid])
        rid = op.target_id
        created = False
        if rid is None:
            rid = next((r for r, g in self.gids.items() if g == op.gid), None)
        if rid is None:
            if op.kind == "delete":
                return WriteResult(gid=op.gid, ok=False, error=Permanent(self.system, "nothing to delete"))
            rid = f"{self.system}-{next(self.ids)}"
            self.records[rid], self.gids[rid], created = {}, op.gid, True
            self.creates += 1
        if op.kind == "delete":
            self.records[rid]["status"] = "inactive"
        else:
            self.records[rid].update(op.fields)
        self.versions[rid] = next(self.clock)
        return WriteResult(gid=op.gid, ok=True, target_id=rid, version=self.versions[rid], created=created,
                           fields=dict(op.fields))

    async def find_created(self, entity: str, gids: Sequence[str], since_ms: int) -> dict[str, SourceRecord]:
        return {g: SourceRecord(id=r, version=self.versions[r], gid=g) for r, g in self.gids.items() if g in gids}

    async def aclose(self) -> None:
        return None
