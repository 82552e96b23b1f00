"""``SalesforceConnector``: reads changes with ``queryAll`` on SystemModstamp and writes with sObject
Collections (update by Id, upsert by the Accord External ID, delete by Id).

What survives a crash: the OAuth token in the ``TokenCache`` and the poll position in the cursor the caller
stores. The de-dup pairs of a large overlap window live in memory only (``dedup``): after a restart that
window's rows are read once more. Writes are idempotent (upsert by external id; updates set absolute
values; deleting a deleted record succeeds).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import httpx
import msgspec
from loguru import logger

from accord.connectors.base import CallStats, Page, SourceRecord, TokenCache, WriteOp, WriteResult
from accord.connectors.budget import RequestBudget
from accord.connectors.errors import ConnectorError, Gone, Permanent, RateLimited, Retryable
from accord.connectors.salesforce import incremental
from accord.connectors.salesforce.dedup import (
    CURSOR_DECODER,
    MAX_RECENT,
    FetchCursor,
    Window,
    WindowMemory,
)
from accord.connectors.salesforce.mapping import (
    ENTITIES,
    EntityMap,
    MappingError,
    entity_map,
    select_fields,
    sent_values,
    soql_string,
    to_canonical,
    to_wire,
    written_projection,
)
from accord.connectors.salesforce.session import SalesforceSession
from accord.connectors.salesforce.settings import SalesforceSettings

T = TypeVar("T")
_RETRYABLE_CODES = {"UNABLE_TO_LOCK_ROW", "ALL_OR_NONE_OPERATION_ROLLED_BACK", "SERVER_UNAVAILABLE",
                    "REQUEST_RUNNING_TOO_LONG"}


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class SalesforceConnector:
    """The ``Connector`` for a Salesforce org (see ``accord.connectors.base.Connector``)."""

    def __init__(self, settings: SalesforceSettings, *, token_cache: TokenCache | None = None, budget: RequestBudget | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, stats: CallStats | None = None,
                 name: str = "salesforce") -> None:
        self.settings = settings
        self.batch_size = min(settings.batch_size, 200)
        self.stats = stats or CallStats()
        self._session = SalesforceSession(settings, system=name, token_cache=token_cache, budget=budget,
                                          transport=transport, stats=self.stats)
        self._windows = WindowMemory()
        self._settle_started: dict[str, float] = {}  # entity -> when its last settling read began
        self._clock = time.monotonic
        self._wall = time.time  # when a watermark was first seen (kept in the cursor: survives a restart)

    @property
    def system(self) -> str:
        """The configured system name (e.g. "crm"); used in errors and the rate-limit account key."""
        return self._session.system

    @system.setter
    def system(self, value: str) -> None:
        self._session.system = value

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """``(used, max)`` daily API requests from the last ``Sforce-Limit-Info`` header."""
        return self._session.api_usage

    def entities(self) -> Sequence[str]:
        return tuple(ENTITIES)

    async def aclose(self) -> None:
        await self._session.aclose()

    # -- reading ------------------------------------------------------------------------------

    def _since(self, wm: int) -> int:
        """Watermark minus overlap, floored to the SOQL second: a settling read's floor."""
        return (wm - int(self.settings.overlap * 1000)) // 1000 * 1000

    def _settle_due(self, entity: str, state: FetchCursor) -> bool:
        """A settling read re-reads from ``settled`` (late commits: a transaction may commit after a later
        one and carry an earlier stamp); it is due once per ``overlap`` (and after a restart). Reads in
        between start at the watermark's second, so a busy org's window is not re-read on every poll."""
        started = self._settle_started.get(entity)
        if state.settled is not None and state.wm is not None and state.settled > state.wm:
            return False  # every row up to the watermark's second is final: nothing left to settle
        return state.settled is None or started is None or self._clock() - started >= self.settings.overlap

    def _floor(self, state: FetchCursor, settle: bool) -> int | None:
        if state.wm is None:
            return None
        if settle:
            return state.settled if state.settled is not None else self._since(state.wm)
        return state.wm // 1000 * 1000

    def _soql(self, emap: EntityMap, where: str = "", *, thin: bool = False) -> str:
        fields = list(incremental.THIN_FIELDS) if thin else [*select_fields(
            emap.entity, multi_currency=self.settings.multi_currency,
            external_id_field=self.settings.external_id_field), "IsDeleted", "SystemModstamp"]
        return f"SELECT {', '.join(fields)} FROM {emap.sobject}{where}"

    async def _query(self, path: str, soql: str | None = None) -> dict[str, Any]:
        headers = {"Sforce-Query-Options": f"batchSize={self.settings.page_size}"}
        params = {"q": soql} if soql is not None else None
        body = await self._session.request_json("GET", path, params=params, headers=headers)
        if not isinstance(body, dict):
            raise Retryable(self.system, f"GET {path} returned {type(body).__name__}, not a query result")
        return body

    async def _begin(self, emap: EntityMap, state: FetchCursor, settle: bool, upto: int | None) -> dict[str, Any]:
        """A new ``queryAll``: settling (thin up to ``upto`` when given) or fast (keyset after ``key``)."""
        if settle:
            self._settle_started[emap.entity] = self._clock()
        clause = incremental.where(self._floor(state, settle), key=None if settle else state.key, upto=upto)
        return await self._query("queryAll", f"{self._soql(emap, clause, thin=upto is not None)} "
                                             "ORDER BY SystemModstamp ASC, Id ASC")

    @staticmethod
    def _thin_upto(state: FetchCursor, settle: bool) -> int | None:
        """A settling read after the first one is thin, up to the watermark it starts from."""
        return state.wm if settle and state.settled is not None else None

    def _final(self, state: FetchCursor, upto: int | None) -> bool:
        """Whether a thin settling read starting now sees every row that will ever be stamped in ``upto``'s
        second or before: it starts ``overlap`` (+ 1 s, the rest of that second) after the watermark was
        first seen, and a transaction commits within ``overlap`` of its stamp."""
        return (upto is not None and state.seen_at is not None
                and self._wall() - state.seen_at >= self.settings.overlap + 1.0)

    async def _whole(self, emap: EntityMap, window: Window, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A thin page's rows, the ones ``window`` does not hold read whole by Id (their current version);
        a row gone meanwhile (purged from the recycle bin) is left out."""
        unseen = [str(raw["Id"]) for raw in rows if (pair := incremental.row_pair(raw)) is None or pair not in window]
        if not unseen:
            return rows
        whole: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(unseen, incremental.REFETCH_IDS):
            body = await self._query("queryAll", self._soql(emap, incremental.ids_in(list(chunk))))
            while True:
                whole.update((str(raw["Id"]), raw) for raw in body.get("records", []))
                if body.get("done", True) or not body.get("nextRecordsUrl"):
                    break
                body = await self._query(body["nextRecordsUrl"])
        wanted = set(unseen)
        return [whole[rid] if rid in wanted else raw for raw in rows
                if (rid := str(raw["Id"])) not in wanted or rid in whole]

    def _decode_cursor(self, cursor: str | None) -> FetchCursor:
        if cursor is None:
            return FetchCursor()
        try:
            return CURSOR_DECODER.decode(cursor)
        except msgspec.DecodeError as exc:
            raise Permanent(self.system, f"poll cursor {cursor[:80]!r} is not a Salesforce cursor ({exc}); "
                                         "reset the cursor to run a full load", code="BAD_CURSOR") from exc

    def cursor_since(self, entity: str, since_ms: int) -> str:
        """Re-read from ``since_ms``: the watermark, with nothing returned yet."""
        return msgspec.json.encode(FetchCursor(wm=since_ms)).decode()

    async def fetch(self, entity: str, cursor: str | None) -> Page:
        """One page of changes after ``cursor`` (``None``: everything), deletes included (queryAll)."""
        emap = entity_map(entity)
        state = self._decode_cursor(cursor)
        settling, upto, final = state.settling, state.upto, state.final
        if state.next:
            try:
                body = await self._query(state.next)
            except Permanent as exc:
                if exc.code != "INVALID_QUERY_LOCATOR":
                    raise
                logger.bind(system=self.system, entity=entity).info("query locator expired; restarting query")
                settling, upto = True, self._thin_upto(state, True)
                final = self._final(state, upto)
                body = await self._begin(emap, state, True, upto)
        else:
            settling = self._settle_due(entity, state)
            upto = self._thin_upto(state, settling)
            final = self._final(state, upto)
            body = await self._begin(emap, state, settling, upto)
        window = self._windows.window(entity, cursor, state)
        rows: list[dict[str, Any]] = body.get("records") or []
        if upto is not None:
            try:
                rows = await self._whole(emap, window, rows)
            except BaseException:
                self._windows.keep(entity, cursor, window)  # unchanged yet: a retry of this cursor keeps it
                raise
        records, wm = self._page(emap, state.wm, window, rows)
        nxt = None if body.get("done", True) else body.get("nextRecordsUrl")
        settled = state.settled
        if settling and nxt is None and wm is not None:
            # everything stamped before it was visible to this read or an earlier one
            settled = upto // 1000 * 1000 + 1000 if final and upto is not None else self._since(upto or wm)
        if wm is not None:
            # the pairs of the watermark's second stay: fast reads read it again
            window.prune(min(settled, wm // 1000 * 1000) if settled is not None else self._since(wm), MAX_RECENT)
        # a thin read leaves the fast reads' keyset where it was, unless a row read whole moved the watermark
        key = incremental.keyset(rows, state, wm) if upto is None else (state.key if wm == state.wm else None)
        seen_at = state.seen_at if wm == state.wm else self._wall()
        position = FetchCursor(wm=wm, key=key, settled=settled, settling=settling and nxt is not None,
                               upto=upto if nxt is not None else None, final=final and nxt is not None,
                               seen_at=seen_at, next=nxt)
        saved = self._windows.save(entity, position, window)
        return Page(records=records, cursor=saved, more=nxt is not None)

    def _page(self, emap: EntityMap, wm: int | None, window: Window, rows: list[dict[str, Any]],
              ) -> tuple[list[SourceRecord], int | None]:
        """The rows' records not in ``window`` (which gains them) and the new watermark."""
        records: list[SourceRecord] = []
        for raw in rows:
            pair = incremental.row_pair(raw)
            if pair is not None and pair in window:  # a repeat from the overlap window: not mapped again
                wm = pair[1] if wm is None else max(wm, pair[1])
                continue
            record = self._record(emap, raw)
            wm = record.version if wm is None else max(wm, record.version)
            if (record.id, record.version) in window:
                continue
            window.add((record.id, record.version))
            records.append(record)
        return records, wm

    def _record(self, emap: EntityMap, raw: dict[str, Any]) -> SourceRecord:
        """One queried row as a ``SourceRecord``. A value that cannot be mapped leaves its field out and
        sets ``error`` (field, value and fix), so the poller files the record and the page flows on."""
        problems: list[str] = []

        def skipped(exc: MappingError) -> None:
            self.stats.error("unmappable")
            problems.append(f"{emap.sobject} {raw.get('Id')}: {exc.message}")
            logger.bind(system=self.system, entity=emap.entity, record=raw.get("Id"), field=exc.field,
                        reason=exc.message).warning("unmappable value left out of the record")

        fields, gid, version, deleted = to_canonical(
            emap.entity, raw, multi_currency=self.settings.multi_currency,
            external_id_field=self.settings.external_id_field, on_error=skipped)
        return SourceRecord(id=str(raw["Id"]), version=version, deleted=deleted, fields=fields, gid=gid, raw=raw,
                            modified_ms=version, error="; ".join(problems) or None)

    async def find_created(self, entity: str, gids: Sequence[str], since_ms: int) -> dict[str, SourceRecord]:
        """Live records whose external id is one of ``gids`` (keyed by the gid as given).

        ``since_ms`` is not used in the query: the external id is unique, so it narrows nothing, and
        the org's clock may disagree with Accord's.
        """
        emap = entity_map(entity)
        ext = self.settings.external_id_field
        wanted = {gid.casefold(): gid for gid in gids}
        found: dict[str, SourceRecord] = {}
        for chunk in _chunks(list(wanted.values()), 100):
            where = f" WHERE {ext} IN ({', '.join(soql_string(gid) for gid in chunk)})"
            body = await self._query("query", self._soql(emap, where))
            while True:
                for raw in body.get("records", []):
                    gid = wanted.get(str(raw.get(ext) or "").casefold())
                    if gid is not None:
                        found[gid] = self._record(emap, raw)
                if body.get("done", True) or not body.get("nextRecordsUrl"):
                    break
                body = await self._query(body["nextRecordsUrl"])
        return found

    # -- writing ------------------------------------------------------------------------------

    async def write(self, entity: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` in order-preserving results: updates by Id, creates as upserts by external id
        (re-links a record a crashed attempt created), deletes by Id. Chunked at ``batch_size``."""
        emap = entity_map(entity)
        results: list[WriteResult | None] = [None] * len(ops)
        updates: list[tuple[int, WriteOp, dict[str, Any]]] = []
        upserts: list[tuple[int, WriteOp, dict[str, Any]]] = []
        deletes: list[tuple[int, WriteOp, dict[str, Any]]] = []
        for index, op in enumerate(ops):
            if op.kind == "delete":
                if op.target_id is None:
                    results[index] = WriteResult(gid=op.gid, ok=True)  # never written: nothing to delete
                else:
                    deletes.append((index, op, {}))
                continue
            try:
                wire = {**to_wire(entity, op.fields, multi_currency=self.settings.multi_currency), **op.wire}
            except MappingError as exc:
                results[index] = WriteResult(gid=op.gid, ok=False, target_id=op.target_id, error=exc)
                continue
            if op.target_id is not None and not wire:
                results[index] = self._ok(entity, op, op.target_id, False)  # nothing Salesforce keeps
            elif op.target_id is not None:
                updates.append((index, op, {"id": op.target_id, **wire}))
            else:
                upserts.append((index, op, {self.settings.external_id_field: op.gid, **wire}))
        ext = self.settings.external_id_field
        for chunk in _chunks(updates, self.batch_size):
            await self._send_chunk(emap, "PATCH", "composite/sobjects", chunk, results)
        for chunk in _chunks(upserts, self.batch_size):
            await self._send_chunk(emap, "PATCH", f"composite/sobjects/{emap.sobject}/{ext}", chunk, results)
        for chunk in _chunks(deletes, self.batch_size):
            await self._send_chunk(emap, "DELETE", "composite/sobjects", chunk, results)
        assert all(r is not None for r in results), "every op has a result"
        return [r for r in results if r is not None]

    async def _send_chunk(self, emap: EntityMap, method: str, path: str,
                          chunk: Sequence[tuple[int, WriteOp, dict[str, Any]]],
                          results: list[WriteResult | None]) -> None:
        headers = {"Sforce-Call-Options": "client=accord"}
        correlation = ",".join(dict.fromkeys(op.correlation_id for _, op, _ in chunk if op.correlation_id))
        if correlation:
            headers["X-Correlation-ID"] = correlation[:512]
        if method == "DELETE":
            params = {"ids": ",".join(str(op.target_id) for _, op, _ in chunk), "allOrNone": "false"}
            items = await self._session.request_json("DELETE", path, params=params, headers=headers)
        else:
            records = [{"attributes": {"type": emap.sobject}, **wire} for _, _, wire in chunk]
            items = await self._session.request_json(method, path, json={"allOrNone": False, "records": records},
                                                     headers=headers)
        if not isinstance(items, list) or len(items) != len(chunk):
            raise Retryable(self.system, f"{method} {path} returned {len(items) if isinstance(items, list) else 0}"
                                         f" results for {len(chunk)} records; the batch is retried whole")
        for (index, op, wire), item in zip(chunk, items, strict=True):
            results[index] = self._result(emap, op, item, wire, deleting=method == "DELETE")

    def _ok(self, entity: str, op: WriteOp, target_id: str, created: bool) -> WriteResult:
        fields = written_projection(entity, op.fields, multi_currency=self.settings.multi_currency)
        return WriteResult(gid=op.gid, ok=True, target_id=target_id, created=created, fields=fields)

    def _result(self, emap: EntityMap, op: WriteOp, item: dict[str, Any], wire: dict[str, Any], *,
                deleting: bool) -> WriteResult:
        errors = item.get("errors") or []
        codes = [str(e.get("statusCode")) for e in errors if isinstance(e, dict)]
        if deleting and (item.get("success") or codes == ["ENTITY_IS_DELETED"]):
            return WriteResult(gid=op.gid, ok=True, target_id=op.target_id)  # already deleted: done
        if item.get("success"):
            return self._ok(emap.entity, op, str(item.get("id") or op.target_id), bool(item.get("created")))
        return WriteResult(gid=op.gid, ok=False, target_id=op.target_id,
                           error=self._record_error(emap, op, errors, wire))

    def _record_error(self, emap: EntityMap, op: WriteOp, errors: list[Any], wire: dict[str, Any],
                      ) -> ConnectorError:
        """The error of one failed record: where, Salesforce's code and message, what Accord sent in the
        fields it names (``payment.invoice = '...'``) and the wire fields themselves."""
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        code = str(first.get("statusCode") or "UNKNOWN_ERROR")
        fields = [str(f) for f in first.get("fields") or []]
        where = f"{emap.sobject} {op.target_id or f'{self.settings.external_id_field}={op.gid}'}"
        sent = "".join(f"; {item}" for item in sent_values(emap.entity, fields, wire))
        text = f"{where}: {code}: {first.get('message', '')}{sent}" + (
            f" (fields: {', '.join(fields)})" if fields else "")
        if code == "REQUEST_LIMIT_EXCEEDED":
            return RateLimited(self.system, text, retry_after=float(self.settings.limit_retry_after), code=code)
        if code in _RETRYABLE_CODES:
            return Retryable(self.system, text, code=code)
        if code == "ENTITY_IS_DELETED" and op.target_id:
            return Gone(self.system, text, code=code)
        return Permanent(self.system, text, code=code)
