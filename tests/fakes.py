"""An in-memory system behind the Connector contract, for unit tests of poller and writer logic.

Integration tests use the real sandboxes; this double only lets unit tests script failures precisely.
One ``Table`` per entity; the ``records``/``gids``/... attributes of ``MemorySystem`` are the account
table's, for brevity in tests. Lower-case keys are canonical fields; other keys are "wire-only" fields
that only configured field maps read and write.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from accord.connectors.base import CallStats, Page, SourceRecord, WriteOp, WriteResult
from accord.connectors.errors import ConnectorError, Permanent
from accord.model.entities import entity_fields


class Table:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.gids: dict[str, str | None] = {}
        self.deleted: set[str] = set()


class MemorySystem:
    def __init__(self, system: str, batch_size: int = 10, entities: Sequence[str] = ("account",)) -> None:
        self.system = system
        self.batch_size = batch_size
        self.tables = {e: Table() for e in entities}
        self.clock = itertools.count(1)
        self.ids = itertools.count(1)
        self.fail_batches: list[ConnectorError] = []
        self.fail_records: dict[str, ConnectorError] = {}  # gid -> error for every write of it
        self.write_calls = 0
        self.find_calls = 0
        self.creates = 0
        self.writes: list[WriteOp] = []
        self.stats = CallStats()

    @property
    def records(self) -> dict[str, dict[str, Any]]:
        return self.tables["account"].records

    @property
    def gids(self) -> dict[str, str | None]:
        return self.tables["account"].gids

    # a "user" of the system
    def user_create(self, fields: dict[str, Any], entity: str = "account") -> str:
        table = self.tables[entity]
        rid = f"{self.system}-{next(self.ids)}"
        table.records[rid] = dict(fields)
        table.versions[rid] = next(self.clock)
        table.gids[rid] = None
        return rid

    def user_update(self, rid: str, fields: dict[str, Any], entity: str = "account") -> None:
        table = self.tables[entity]
        table.records[rid].update(fields)
        table.versions[rid] = next(self.clock)

    def user_delete(self, rid: str, entity: str = "account") -> None:
        table = self.tables[entity]
        table.deleted.add(rid)
        table.versions[rid] = next(self.clock)

    # the Connector contract
    def entities(self) -> Sequence[str]:
        return tuple(self.tables)

    def cursor_since(self, entity: str, since_ms: int) -> str:
        return "0"  # versions here are a counter, not a clock: a resync re-reads everything

    async def fetch(self, entity: str, cursor: str | None) -> Page:
        table = self.tables[entity]
        since = int(cursor or 0)
        changed = sorted((v, rid) for rid, v in table.versions.items() if v > since)
        records = [SourceRecord(id=rid, version=v, deleted=rid in table.deleted,
                                fields={k: val for k, val in table.records[rid].items() if k.islower()},
                                gid=table.gids[rid], raw=dict(table.records[rid])) for v, rid in changed]
        return Page(records=records, cursor=str(max([since, *(v for v, _ in changed)])), more=False)

    async def write(self, entity: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        self.write_calls += 1
        assert len(ops) <= self.batch_size
        if self.fail_batches:
            raise self.fail_batches.pop(0)
        self.writes.extend(ops)
        return [self._apply(entity, self.tables[entity], op) for op in ops]

    def _apply(self, entity: str, table: Table, op: WriteOp) -> WriteResult:
        if op.gid in self.fail_records:
            return WriteResult(gid=op.gid, ok=False, error=self.fail_records[op.gid])
        rid = op.target_id
        created = False
        if rid is None:
            rid = next((r for r, g in table.gids.items() if g == op.gid), None)
        if rid is None:
            if op.kind == "delete":
                return WriteResult(gid=op.gid, ok=False, error=Permanent(self.system, "nothing to delete"))
            rid = f"{self.system}-{next(self.ids)}"
            table.records[rid], table.gids[rid], created = {}, op.gid, True
            self.creates += 1
        if op.kind == "delete" and "status" in entity_fields(entity):
            table.records[rid]["status"] = "inactive"  # a name list: deactivated, as QuickBooks does
        elif op.kind == "delete":
            table.deleted.add(rid)  # a transaction (time, expenses): really deleted
        else:
            table.records[rid].update(op.fields)
            table.records[rid].update(op.wire)  # configured field maps write wire names (CamelCase here)
        table.versions[rid] = next(self.clock)
        return WriteResult(gid=op.gid, ok=True, target_id=rid, version=table.versions[rid], created=created,
                           fields=dict(op.fields))

    async def find_created(self, entity: str, gids: Sequence[str], since_ms: int) -> dict[str, SourceRecord]:
        self.find_calls += 1
        table = self.tables[entity]
        return {g: SourceRecord(id=r, version=table.versions[r], gid=g) for r, g in table.gids.items() if g in gids}

    async def aclose(self) -> None:
        return None
