"""Batched, idempotent writes to QuickBooks Online.

One ``POST /batch?requestid=...`` per at most 30 ops; while ``BATCH_WAITERS`` batches of this process
already wait for the realm's batch window (40 per minute), further ops go as single idempotent requests
(``POST /{entity}?requestid=...``) at SPARE priority, and what is left of them joins a batch as soon as
the wait shortens, so a month-end drain uses both quotas and batches keep their share of the realm's 500
requests. A few fresh changes go as single requests when no batch grant is free at once (``FEW_FRESH``). The requestid is derived from the ops' keys, so an
HTTP-level retry of the same batch is replayed by QBO (the original response comes back and nothing runs
twice). Creates carry the Accord gid marker; updates are sparse and carry the SyncToken; a delete of a
name-list record (Customer, Employee, Item) is a sparse ``Active:false``; a delete of a transaction
(TimeActivity, Purchase, Invoice, Payment, Estimate) is ``operation=delete``. A create starts from the entity's
``on_create`` wire (e.g. the configured income account of a new service Item). A write that depends on
other records (``EntitySpec.lookups``: a task's Item Name starts with its project's DisplayName) reads
each of them with one GET per ``write`` call before its batch is built. One entity per batch:
``write(entity, ops)`` is per entity, so mixed-entity batches are not sent (the sandbox accepts them). Items that fail with 5010 (stale SyncToken)
are re-read and retried once in a follow-up batch with the fresh SyncToken.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from accord.connectors.base import WriteOp, WriteResult, deep_merge
from accord.connectors.budget import Priority, current_priority, requests_as
from accord.connectors.errors import ConnectorError, Gone, Permanent, Retryable, StaleVersion
from accord.connectors.quickbooks.api import QboApi
from accord.connectors.quickbooks.faults import first_error
from accord.connectors.quickbooks.mapping import (
    DELETED_VERSION,
    EntitySpec,
    MappingError,
    project,
    to_wire,
    with_gid,
)
from accord.connectors.quickbooks.mapping_base import Lookup
from accord.connectors.quickbooks.spill import Pooled, SpillPool, settle

MAX_BATCH = 30
# batches of one process waiting for the batch window at once; further ops go singly. A retry may take the
# other channel (another requestid): a create whose answer was lost is looked up by its gid marker before it
# is sent again (the writer's ``maybe_written``), whichever channel carried it.
BATCH_WAITERS = 1
SINGLES_IN_FLIGHT = 4  # single requests of one spilled chunk sent at once
# a fresh chunk this small goes as single requests when the batch window has no grant now: a batch would
# queue behind other entities' batches (40 a minute for the realm), a single costs one of its 500 requests;
# ten at once are one second of the realm's per-second quota (a new project's tasks, a few new customers)
FEW_FRESH = 10


def request_id(entity: str, ops: Sequence[WriteOp], salt: str = "") -> str:
    """A deterministic QBO requestid (≤ 36 chars, as batch requires) for these ops."""
    text = "\n".join([entity, salt, *(op.key for op in ops)])
    return hashlib.sha1(text.encode()).hexdigest()[:36]


def correlation_header(ops: Sequence[WriteOp]) -> str:
    ids = dict.fromkeys(op.correlation_id for op in ops if op.correlation_id)
    return ",".join(ids)[:512]


def _headers(ops: Sequence[WriteOp]) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if correlation := correlation_header(ops):
        headers["X-Correlation-ID"] = correlation
    return headers


def _fill(results: dict[int, WriteResult], outcomes: Iterable[tuple[str, WriteResult | None]]) -> list[int]:
    """Put each item's outcome in ``results``; return the indexes that came back 5010 (stale SyncToken)."""
    stale: list[int] = []
    for bid, outcome in outcomes:
        if outcome is None:
            stale.append(int(bid))
        else:
            results[int(bid)] = outcome
    return stale


def _written_names(spec: EntitySpec, op: WriteOp) -> set[str]:
    if op.kind == "delete":
        return {spec.active_field} if spec.name_list and spec.active_field else set()
    return set(op.fields) & set(spec.writers)


class BatchWriter:
    """Turns ``WriteOp``s into QBO batch items and batch item responses into ``WriteResult``s."""

    def __init__(self, api: QboApi, page_size: int, accounts: Mapping[str, str] | None = None) -> None:
        self._api = api
        self._accounts = dict(accounts or {})
        self._system = api.system
        self._page_size = page_size
        self._batch_waiters = 0  # batches of this process waiting for the realm's batch window
        self._pool = SpillPool()  # ops waiting for a batch while enough batches already wait

    async def write(self, spec: EntitySpec, ops: Sequence[WriteOp]) -> list[WriteResult]:
        results: list[WriteResult] = []
        found: dict[Lookup, dict[str, Any] | None] = {}  # records read for lookups, once per call
        for start in range(0, len(ops), MAX_BATCH):
            results.extend(await self._write_chunk(spec, list(ops[start:start + MAX_BATCH]), found))
        return results

    async def read(self, spec: EntitySpec, ids: set[str]) -> dict[str, dict[str, Any]]:
        """The current wire records of ``ids`` (at most one batch), in one query."""
        if not ids:
            return {}
        quoted = ", ".join(f"'{i}'" for i in sorted(ids, key=lambda v: (len(v), v)))
        active = " AND Active IN (true, false)" if spec.name_list else ""
        body = await self._api.query(f"SELECT * FROM {spec.qbo} WHERE Id IN ({quoted}){active} "
                                     f"MAXRESULTS {max(len(ids), 1)}")
        rows = (body.get("QueryResponse") or {}).get(spec.qbo) or []
        return {str(row["Id"]): row for row in rows}

    # ------------------------------------------------------------------------------------------
    async def _look_up(self, spec: EntitySpec, ops: list[WriteOp], indexes: list[int],
                      current: Mapping[str, dict[str, Any]], found: dict[Lookup, dict[str, Any] | None]) -> None:
        """Read the records ``spec.lookups`` names for these ops into ``found`` (``None``: no such record)."""
        wanted: set[Lookup] = set()
        for i in indexes:
            op = ops[i]
            if op.kind != "delete":
                base = current.get(op.target_id) if op.target_id is not None else spec.on_create(self._accounts)
                wanted |= spec.lookups(op.fields, base or {})
        for entity, ident in sorted(wanted - found.keys()):
            try:
                body = await self._api.call("GET", f"/{entity.lower()}/{ident}")
            except Permanent as exc:
                if exc.code != "610":
                    raise
                found[(entity, ident)] = None
                continue
            record = body.get(entity)
            found[(entity, ident)] = record if isinstance(record, dict) else None

    async def _write_chunk(self, spec: EntitySpec, ops: list[WriteOp],
                           found: dict[Lookup, dict[str, Any] | None]) -> list[WriteResult]:
        results: dict[int, WriteResult] = {}
        todo: list[int] = []
        for i, op in enumerate(ops):
            if op.target_id is None and op.kind == "delete":
                results[i] = WriteResult(gid=op.gid, ok=True)  # nothing in QBO to deactivate
            elif op.target_id is not None and op.kind == "upsert" and not _written_names(spec, op):
                results[i] = WriteResult(gid=op.gid, ok=True, target_id=op.target_id, version=op.version)
            else:
                todo.append(i)
        need = {ops[i].target_id for i in todo if ops[i].target_id is not None
                and (ops[i].version is None or spec.needs_current & set(ops[i].fields))}
        current = await self.read(spec, {i for i in need if i is not None})
        await self._look_up(spec, ops, todo, current, found)
        stale = await self._run(spec, ops, todo, current, found, results, salt="")
        if stale:
            await self._retry_stale(spec, ops, stale, found, results)
        return [results[i] for i in range(len(ops))]

    async def _retry_stale(self, spec: EntitySpec, ops: list[WriteOp], stale: list[int],
                           found: dict[Lookup, dict[str, Any] | None], results: dict[int, WriteResult]) -> None:
        try:
            fresh = await self.read(spec, {str(ops[i].target_id) for i in stale})
            await self._look_up(spec, ops, stale, fresh, found)
            salt = "stale:" + ",".join(f"{ops[i].target_id}@{(fresh.get(str(ops[i].target_id)) or {}).get('SyncToken')}"
                                       for i in stale)
            still = await self._run(spec, ops, stale, fresh, found, results, salt=salt, fresh=True)
        except ConnectorError as exc:
            for i in stale:
                results.setdefault(i, WriteResult(gid=ops[i].gid, ok=False, error=exc))
            return
        for i in still:
            results[i] = WriteResult(gid=ops[i].gid, ok=False, error=StaleVersion(
                self._system, f"{spec.qbo} {ops[i].target_id} changed again while Accord retried its write "
                              "(5010 twice); it will be re-read on the next attempt", code="5010", status=400))

    async def _run(self, spec: EntitySpec, ops: list[WriteOp], indexes: list[int],
                   current: Mapping[str, dict[str, Any]], found: Mapping[Lookup, dict[str, Any] | None],
                   results: dict[int, WriteResult], *, salt: str, fresh: bool = False) -> list[int]:
        """Send one batch for ``indexes``; fill ``results`` and return the indexes that came back 5010."""
        items: dict[str, dict[str, Any]] = {}
        for i in indexes:
            try:
                items[str(i)] = self._item(spec, ops[i], current, found, fresh=fresh)
            except (MappingError, Permanent) as exc:
                results[i] = WriteResult(gid=ops[i].gid, ok=False, error=exc)
        if not items:
            return []
        if self._batch_waiters >= BATCH_WAITERS:  # enough ops of this process wait for the batch window
            return await self._run_singly(spec, ops, items, results, salt=salt)
        if await self._few_fresh_and_batches_busy(items):
            return await self._run_each(spec, ops, items, results, salt=salt)
        return await self._run_batch(spec, ops, items, results, salt=salt)

    async def _few_fresh_and_batches_busy(self, items: dict[str, dict[str, Any]]) -> bool:
        """A few just-made changes and no ``/batch`` grant free now: single requests reach QuickBooks at
        once, a batch would wait its turn behind every other entity's (a new customer's project waits)."""
        if len(items) > FEW_FRESH or current_priority() is not Priority.FRESH:
            return False
        return not await self._api.budget.available("batch")

    async def _run_each(self, spec: EntitySpec, ops: list[WriteOp], items: dict[str, dict[str, Any]],
                        results: dict[int, WriteResult], *, salt: str) -> list[int]:
        """Each item as its own request, all at once (the same outcomes as a batch of them)."""
        done = await asyncio.gather(*(self._send_single(spec, ops[int(b)], item, salt) for b, item in items.items()))
        return _fill(results, zip(items, done, strict=True))

    async def _run_batch(self, spec: EntitySpec, ops: list[WriteOp], items: dict[str, dict[str, Any]],
                         results: dict[int, WriteResult], *, salt: str) -> list[int]:
        """One batch for ``items``; fill ``results`` and return the indexes that came back 5010."""
        body = await self._send_batch(spec.canonical, [ops[int(b)] for b in items], items, salt)
        answers = {str(a.get("bId")): a for a in body.get("BatchItemResponse") or [] if isinstance(a, dict)}
        return _fill(results, ((bid, self._outcome(spec, ops[int(bid)], answers.get(bid))) for bid in items))

    async def _send_batch(self, entity: str, sent: list[WriteOp], items: dict[str, dict[str, Any]],
                          salt: str) -> dict[str, Any]:
        """One ``/batch`` request; while it waits for the realm's batch window it counts as a waiter."""
        self._batch_waiters += 1
        waiting = True
        try:
            async with self._api.budget.slot("batch"):
                self._batch_waiters, waiting = self._batch_waiters - 1, False
                return await self._api.call(
                    "POST", "/batch", params={"requestid": request_id(entity, sent, salt)},
                    json={"BatchItemRequest": [{"bId": b, **item} for b, item in items.items()]},
                    headers=_headers(sent))
        finally:
            if waiting:
                self._batch_waiters -= 1

    async def _run_singly(self, spec: EntitySpec, ops: list[WriteOp], items: dict[str, dict[str, Any]],
                          results: dict[int, WriteResult], *, salt: str) -> list[int]:
        """Pool the items (``spill``): send this chunk's own singly, a few at a time, while this process's
        batches fill the wait for the batch window; once they no longer do, send a full batch of pooled ops
        of any chunk. The same outcomes as a batch of these items."""
        owner = self._pool.new_owner()
        mine = self._pool.put(spec, ((ops[int(b)], item) for b, item in items.items()), salt, owner)
        try:
            while not all(p.outcome.done() for p in mine):
                await self._spill_step(spec, mine, owner)
        finally:
            self._pool.withdraw(owner)
            settle(mine, self._system, "the chunk stopped before this op was sent")
        return _fill(results, ((bid, pooled.outcome.result()) for bid, pooled in zip(items, mine, strict=True)))

    async def _spill_step(self, spec: EntitySpec, mine: list[Pooled], owner: int) -> None:
        """Send one batch of pooled ops, or a wave of this chunk's own singly, or wait for an outcome."""
        if self._batch_waiters < BATCH_WAITERS and (group := self._pool.take(spec.qbo, MAX_BATCH)):
            await self._send_pooled(spec, group)
        elif wave := self._pool.take(spec.qbo, SINGLES_IN_FLIGHT, owner):
            try:
                with requests_as(Priority.SPARE):  # they take what batches leave of the realm's requests
                    done = await asyncio.gather(*(self._send_single(spec, p.op, p.item, p.salt) for p in wave))
                for pooled, outcome in zip(wave, done, strict=True):
                    pooled.resolve(outcome)
            finally:
                settle(wave, self._system, "the single request was not answered")
        else:  # the rest of this chunk rides in batches other chunks send
            await asyncio.wait([p.outcome for p in mine if not p.outcome.done()], return_when=asyncio.FIRST_COMPLETED)

    async def _send_pooled(self, spec: EntitySpec, group: list[Pooled]) -> None:
        """One batch of pooled ops (of any chunks); each op's outcome goes to its own chunk."""
        items = {str(n): p.item for n, p in enumerate(group)}
        salt = ",".join(sorted({p.salt for p in group}))
        try:
            body = await self._send_batch(spec.canonical, [p.op for p in group], items, salt)
            answers = {str(a.get("bId")): a for a in body.get("BatchItemResponse") or [] if isinstance(a, dict)}
            for bid, pooled in zip(items, group, strict=True):
                pooled.resolve(self._outcome(spec, pooled.op, answers.get(bid)))
        except ConnectorError as exc:
            for pooled in group:
                pooled.resolve(WriteResult(gid=pooled.op.gid, ok=False, error=exc))
        finally:
            settle(group, self._system, "the batch was not answered")

    async def _send_single(self, spec: EntitySpec, op: WriteOp, item: dict[str, Any], salt: str) -> WriteResult | None:
        """One op as its own request; ``None`` for a stale SyncToken (5010), as in a batch."""
        params = {"requestid": request_id(spec.canonical, [op], "single:" + salt)}
        if item["operation"] == "delete":
            params["operation"] = "delete"
        try:
            body = await self._api.call("POST", f"/{spec.qbo.lower()}", params=params, json=item[spec.qbo],
                                        headers=_headers([op]))
        except StaleVersion:
            return None
        except ConnectorError as exc:
            return WriteResult(gid=op.gid, ok=False, error=exc)
        return self._outcome(spec, op, body)

    def _item(self, spec: EntitySpec, op: WriteOp, current: Mapping[str, dict[str, Any]],
              found: Mapping[Lookup, dict[str, Any] | None], *, fresh: bool) -> dict[str, Any]:
        if op.target_id is None:
            base = spec.on_create(self._accounts)
            wire = deep_merge({**base, **to_wire(spec.canonical, op.fields, base, found)}, op.wire)
            wire[spec.gid_field] = with_gid(wire.get(spec.gid_field), op.gid)
            return {"operation": "create", spec.qbo: wire}
        record = current.get(op.target_id)
        if fresh or op.version is None:
            token = record.get("SyncToken") if record is not None else None
        else:
            token = op.version
        if token is None:
            raise Gone(self._system, f"{spec.qbo} {op.target_id} was not found in QuickBooks company "
                                     f"{self._api.settings.realm_id}; relink or recreate it", code="610")
        ident = {"Id": op.target_id, "SyncToken": str(token)}
        if op.kind == "delete" and not spec.name_list:
            return {"operation": "delete", spec.qbo: ident}
        body = {"Active": False} if op.kind == "delete" else deep_merge(
            to_wire(spec.canonical, op.fields, record, found), op.wire)
        return {"operation": "update", spec.qbo: {**body, **ident, "sparse": True}}

    def _outcome(self, spec: EntitySpec, op: WriteOp, answer: dict[str, Any] | None) -> WriteResult | None:
        """The result of one batch item; ``None`` for a stale SyncToken (5010), which is retried."""
        if answer is None:
            return WriteResult(gid=op.gid, ok=False, error=Retryable(
                self._system, f"the batch response had no item for {spec.qbo} {op.target_id or op.gid}"))
        if "Fault" in answer:
            error = first_error(answer)
            code = str(error.get("code"))
            if code == "5010":
                return None
            if code == "610" and op.target_id is not None:
                return WriteResult(gid=op.gid, ok=False, error=Gone(
                    self._system, f"{spec.qbo} {op.target_id} no longer exists (610 Object Not Found)", code=code))
            what = "duplicate name" if code == "6240" else (
                "validation" if code.isdigit() and 2000 <= int(code) <= 4999 else "fault")
            text = " - ".join(str(error[k]) for k in ("message", "detail") if error.get(k))
            return WriteResult(gid=op.gid, ok=False, error=Permanent(
                self._system, f"{spec.qbo} {op.target_id or '(new)'} refused ({what}, code {code}): {text}",
                code=code, status=400))
        wire = answer.get(spec.qbo)
        if not isinstance(wire, dict) or "Id" not in wire:
            return WriteResult(gid=op.gid, ok=False, error=Retryable(
                self._system, f"the batch item for {spec.qbo} {op.target_id or op.gid} had no {spec.qbo}"))
        if wire.get("status") == "Deleted":  # a transaction delete answers with a stub, no SyncToken
            return WriteResult(gid=op.gid, ok=True, target_id=str(wire["Id"]), version=DELETED_VERSION)
        return WriteResult(gid=op.gid, ok=True, target_id=str(wire["Id"]), version=int(wire["SyncToken"]),
                           created=op.target_id is None,
                           fields=project(spec.canonical, wire, _written_names(spec, op)))
