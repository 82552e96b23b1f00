"""The QuickBooks Online connector (ERP): accounts and projects (Customer), resources (Employee), tasks
(Item), time (TimeActivity), expenses (Purchase), invoices, payments and won deals (opportunity ↔
Estimate; see ``mapping``).

Reads: a full load pages the query language, then change data capture (``/cdc``) takes over from the
server time of the load's first page, minus an overlap, de-duplicated by ``(id, SyncToken)``. A CDC
answer at the 1000-object cap, or a watermark older than CDC's 30-day window, falls back to paging a
query over ``Metadata.LastUpdatedTime >= since``. Queries order by ``Id``, which is stable while users
edit: ordering by LastUpdatedTime would move an edited record behind the pages already read and shift
an unread one into them, skipping it. Writes: see ``writer.BatchWriter``.

What survives a crash: nothing. The connector is stateless apart from OAuth tokens, which live in the
``TokenCache``; cursors, ids and versions are the caller's, and every write is idempotent (requestid).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from loguru import logger

from accord.connectors.base import CallStats, Page, SourceRecord, TokenCache, WriteOp, WriteResult
from accord.connectors.budget import RequestBudget
from accord.connectors.errors import Retryable
from accord.connectors.quickbooks.api import QboApi
from accord.connectors.quickbooks.cdc import CdcGather
from accord.connectors.quickbooks.cursor import (
    RECENT_MAX,
    CdcCursor,
    QueryCursor,
    decode,
    encode,
    from_epoch_ms,
    parse_time,
    shift,
)
from accord.connectors.quickbooks.mapping import (
    DELETED_VERSION,
    ENTITIES,
    EntitySpec,
    MappingError,
    spec_for,
    to_canonical,
)
from accord.connectors.quickbooks.settings import QuickBooksSettings
from accord.connectors.quickbooks.webhooks import parse_webhook, verify_webhook
from accord.connectors.quickbooks.writer import MAX_BATCH, BatchWriter

__all__ = ["QuickBooksConnector", "parse_webhook", "verify_webhook"]

CDC_SAFE_AGE = 29 * 86400.0  # CDC covers 30 days; older watermarks re-read through the query


def _pair(row: dict[str, Any]) -> tuple[str, int]:
    """``(id, version)`` of a QBO object as ``to_canonical`` reads them (a deleted stub outranks all)."""
    version = DELETED_VERSION if row.get("status") == "Deleted" else int(row.get("SyncToken", 0))
    return str(row.get("Id")), version


class QuickBooksConnector:
    """One QuickBooks Online company, as an Accord ``Connector``.

    ``budget`` is the realm's shared request budget; ``now`` (epoch seconds) decides when
    the access token is due for a refresh and when a watermark is too old for CDC.
    """

    def __init__(self, settings: QuickBooksSettings, *, name: str = "quickbooks",
                 token_cache: TokenCache | None = None, budget: RequestBudget | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, stats: CallStats | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.system = name
        self.settings = settings
        self.batch_size = min(settings.batch_size, MAX_BATCH)
        self.stats = stats or CallStats()
        self._now = now
        self._api = QboApi(settings, system=name, token_cache=token_cache, budget=budget,
                           transport=transport, stats=self.stats, now=now)
        self._cdc = CdcGather(lambda params: self._api.call("GET", "/cdc", params=params))
        self._writer = BatchWriter(self._api, settings.page_size, {
            "income_account": settings.income_account_id, "expense_account": settings.expense_account_id,
            "payment_account": settings.payment_account_id})

    def entities(self) -> Sequence[str]:
        return tuple(ENTITIES)

    # -- reads ----------------------------------------------------------------------------------
    def cursor_since(self, entity: str, since_ms: int) -> str:
        """Re-read from ``since_ms`` with a query (CDC only reaches back 30 days)."""
        since = dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC).isoformat(timespec="seconds")
        return encode(QueryCursor(after=since))

    async def fetch(self, entity: str, cursor: str | None) -> Page:
        spec = spec_for(entity)
        state = decode(cursor)
        if isinstance(state, CdcCursor):
            if self._now() - parse_time(state.since).timestamp() <= CDC_SAFE_AGE:
                return await self._fetch_cdc(spec, state)
            state = QueryCursor(after=shift(state.since, -self.settings.overlap))
        return await self._fetch_query(spec, state)

    async def _fetch_query(self, spec: EntitySpec, state: QueryCursor) -> Page:
        size = self.settings.page_size
        body = await self._api.query(self._select(spec, state.after, state.start, size))
        rows = (body.get("QueryResponse") or {}).get(spec.qbo) or []
        since = state.since or self._server_time(body)
        seen = {(str(i), int(v)) for i, v in state.recent}  # returned already: skipped before mapping
        records = self._records(spec, [row for row in rows if _pair(row) not in seen])
        recent = self._recent(state.recent, records, since)
        if len(rows) < size:
            return Page(records=records, cursor=encode(CdcCursor(since=since, recent=recent)))
        following = QueryCursor(start=state.start + len(rows), since=since, after=state.after, recent=recent)
        return Page(records=records, cursor=encode(following), more=True)

    async def _fetch_cdc(self, spec: EntitySpec, state: CdcCursor) -> Page:
        changed_since = shift(state.since, -self.settings.overlap)
        read = await self._cdc.read(spec.cdc, changed_since)  # with other entities' reads arriving now
        if read.capped:  # capped: page this window through the query instead, skipping what was returned
            # already (without ``recent`` every cap re-read the whole window, all of it again)
            return Page(records=[], cursor=encode(QueryCursor(after=changed_since, recent=state.recent)), more=True)
        records = self._records(spec, read.objects)
        seen = {(str(i), int(v)) for i, v in state.recent}
        since = self._server_time(read.body)
        fresh = [r for r in records if (r.id, r.version) not in seen]
        return Page(records=fresh, cursor=encode(CdcCursor(since=since, recent=self._recent([], records, since))))

    def _server_time(self, body: dict[str, Any]) -> str:
        stamp = body.get("time")
        if not isinstance(stamp, str) or not stamp:
            raise Retryable(self.system, "QuickBooks answered without the server `time` the next watermark "
                                         "is taken from; the call will be repeated")
        return stamp

    def _recent(self, kept: list[tuple[str, int]], records: list[SourceRecord], since: str) -> list[tuple[str, int]]:
        """``(id, version)`` of the records the next CDC call (from ``since`` minus the overlap) returns
        again; a second of slack because QBO stamps records to the second."""
        horizon = parse_time(since).timestamp() * 1000 - self.settings.overlap * 1000 - 1000
        return [*kept, *((r.id, r.version) for r in records if r.modified_ms >= horizon)][-RECENT_MAX:]

    async def find_created(self, entity: str, gids: Sequence[str], since_ms: int) -> dict[str, SourceRecord]:
        """Records carrying one of ``gids`` in their gid marker, changed at or after ``since_ms``."""
        spec = spec_for(entity)
        wanted = set(gids)
        found: dict[str, SourceRecord] = {}
        start, size = 1, self.settings.page_size
        after = from_epoch_ms(max(0, since_ms - 1000))
        while wanted:
            body = await self._api.query(self._select(spec, after, start, size))
            rows = (body.get("QueryResponse") or {}).get(spec.qbo) or []
            for record in self._records(spec, rows):
                if record.gid in wanted:
                    found[record.gid] = record
            if len(rows) < size:
                break
            start += len(rows)
        return found

    @staticmethod
    def _select(spec: EntitySpec, after: str | None, start: int, size: int) -> str:
        where = ["Active IN (true, false)"] if spec.name_list else []
        if spec.where:
            where.append(spec.where)
        if after is not None:
            where.append(f"Metadata.LastUpdatedTime >= '{after}'")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return f"SELECT * FROM {spec.qbo}{clause} ORDERBY Id STARTPOSITION {start} MAXRESULTS {size}"

    def _records(self, spec: EntitySpec, rows: list[dict[str, Any]]) -> list[SourceRecord]:
        records = []
        for row in rows:
            if row.get("status") != "Deleted" and not spec.accepts(row):
                continue  # e.g. a project in the Customer table while reading accounts
            def report(exc: MappingError, row: dict[str, Any] = row) -> None:
                self.stats.error("unmappable")
                logger.bind(system=self.system, entity=spec.canonical, record_id=row.get("Id"), field=exc.field,
                            reason=exc.message).warning("unmappable value left out of the record")
            records.append(to_canonical(spec.canonical, row, on_error=report))
        return records

    # -- writes ---------------------------------------------------------------------------------
    async def write(self, entity: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` in batches of at most 30; one result per op, in order (see ``writer``)."""
        return await self._writer.write(spec_for(entity), ops)

    # -- webhooks -------------------------------------------------------------------------------
    @staticmethod
    def verify_webhook(body: bytes, signature: str, verifier: str) -> bool:
        """Whether ``signature`` (``intuit-signature``) is the base64 HMAC-SHA256 of ``body``."""
        return verify_webhook(body, signature, verifier)

    def parse_webhook(self, body: bytes) -> list[tuple[str, str, str]]:
        """``(QBO entity name, id, operation)`` for this company's changes in a notification."""
        return parse_webhook(body, self.settings.realm_id)

    async def aclose(self) -> None:
        await self._api.aclose()
