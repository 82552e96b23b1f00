"""``HarvestConnector``: reads with ``updated_since`` and ``links.next`` paging, one request per write.

Reads: every list is asked for ``updated_since = watermark − overlap`` and paged through ``links.next``
to the end (payments, which Harvest lists per invoice, through their invoices: see ``billing_reader``) (time entries come sorted by spent_date, not updated_at, so a listing is never cut short).
The watermark is the highest ``updated_at`` seen; ``(id, version, content hash)`` keys inside the overlap are kept in
the cursor so a record is not returned twice. Harvest has no delete feed: ``fetch`` never reports
deletes; ``scan_ids`` lists every id so a scheduled job (every ``full_scan_interval``) can diff them.
Writes: see ``writer.HarvestWriter``.

What survives a crash: nothing. The connector is stateless (a personal access token needs no cache);
cursors, ids and versions are the caller's, and creates look up an earlier attempt before posting.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import msgspec

from accord.connectors.base import CallStats, Page, SourceRecord, TokenCache, WriteOp, WriteResult
from accord.connectors.budget import RequestBudget
from accord.connectors.errors import Permanent
from accord.connectors.harvest.billing_reader import PaymentFeed
from accord.connectors.harvest.mapping import (
    ENTITIES,
    SYSTEM,
    EntitySpec,
    format_time,
    spec_for,
    to_canonical,
)
from accord.connectors.harvest.session import HarvestSession
from accord.connectors.harvest.settings import HarvestSettings
from accord.connectors.harvest.writer import HarvestWriter

MAX_RECENT = 50_000  # de-dup keys kept in a cursor; dropping one only repeats a record, never loses it


class FetchCursor(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The poll position: the watermark the next listing starts from (epoch ms), the (id, version, content
    hash) triples already returned inside the overlap window, and for the listing in progress its
    ``links.next``, when it started and the highest ``updated_at`` it returned so far.

    A listing is sorted by date, not by ``updated_at``, and records change while it is paged: one on an
    early page updated meanwhile is not returned again. So the watermark moves only when a listing ends,
    and never past the time it started (``top`` capped at ``started``): what changed during the listing is
    read by the next one. The hash is there because Harvest stamps ``updated_at`` to the second: two edits
    in one second share a version, and the second must not be dropped as a repeat of the first."""

    wm: int | None = None
    recent: list[tuple[str, int, int]] = []
    next: str | None = None
    started: int | None = None
    top: int | None = None


_CURSOR = msgspec.json.Decoder(FetchCursor)
_ENCODER = msgspec.msgpack.Encoder(order="deterministic")


class HarvestConnector:
    """The ``Connector`` for one Harvest v2 account (see ``accord.connectors.base.Connector``).

    ``budget`` is the account's shared request budget (100 requests / 15 s); ``now`` (epoch seconds) bounds
    the look-up-before-create window. ``token_cache`` is accepted for the common signature and unused.
    """

    def __init__(self, settings: HarvestSettings, *, name: str = "harvest", token_cache: TokenCache | None = None,
                 budget: RequestBudget | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 stats: CallStats | None = None, now: Callable[[], float] = time.time) -> None:
        del token_cache  # a PAT is fixed; an OAuth token is refreshed outside Accord
        self.system = name
        self.settings = settings
        self.batch_size = 25
        self.scan_interval = float(settings.full_scan_interval)
        self.stats = stats or CallStats()
        self._now = now
        self._session = HarvestSession(settings, system=name, budget=budget, transport=transport, stats=self.stats)
        self._writer = HarvestWriter(self._session, now)
        self._payments = PaymentFeed(self._session)

    def entities(self) -> Sequence[str]:
        return tuple(ENTITIES)

    async def aclose(self) -> None:
        await self._session.aclose()

    # -- reading --------------------------------------------------------------------------------------

    def _since_ms(self, wm: int) -> int:
        return (wm - int(self.settings.overlap * 1000)) // 1000 * 1000  # Harvest stamps to the second

    def cursor_since(self, entity: str, since_ms: int) -> str:
        """Re-read from ``since_ms``: the watermark, with nothing returned yet."""
        return msgspec.json.encode(FetchCursor(wm=since_ms)).decode()

    def _decode(self, cursor: str | None) -> FetchCursor:
        if not cursor:
            return FetchCursor()
        try:
            return _CURSOR.decode(cursor)
        except msgspec.DecodeError as exc:
            raise Permanent(self.system, f"poll cursor {cursor[:80]!r} is not a Harvest cursor ({exc}); reset "
                                         "the cursor (accord resync) to reload from Harvest",
                            code="bad_cursor") from exc

    async def _list(self, spec: EntitySpec, path: str, params: dict[str, Any] | None) -> dict[str, Any]:
        return await self._session.listing(path, spec.key, params)

    def _first(self, spec: EntitySpec, since_ms: int | None, **extra: Any) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"per_page": self.settings.page_size, **extra}
        if since_ms is not None:
            params["updated_since"] = format_time(max(0, since_ms) / 1000)
        return f"/v2/{spec.path}", params

    async def fetch(self, entity: str, cursor: str | None) -> Page:
        """One page of changes after ``cursor`` (``None``: everything); no deletes (see ``scan_ids``).
        Payments are read through their invoices (``billing_reader``)."""
        spec = spec_for(entity)
        state = self._decode(cursor)
        since = self._since_ms(state.wm) if state.wm is not None else None
        params: dict[str, Any] | None
        if spec.parent is not None:  # payments: through the invoices changed since the watermark
            path, params = self._payments.invoice_query(since, self.settings.page_size)
        else:
            path, params = self._first(spec, since)
        if state.next:
            path, params = self._session.local(state.next), None
        if not state.next:
            state = msgspec.structs.replace(state, started=int(self._now() * 1000), top=None)
        if spec.parent is not None:
            body = await self._session.listing(path, "invoices", params)
            stamped, stamps = await self._payments.records(body)
        else:
            body = await self._list(spec, path, params)
            stamped = [(record, record.version) for record in self._records(spec, body)]
            stamps = [stamp for _, stamp in stamped]
        return self._page(state, stamped, stamps, (body.get("links") or {}).get("next"))

    def _page(self, state: FetchCursor, stamped: list[tuple[SourceRecord, int]], stamps: list[int],
              nxt: str | None) -> Page:
        """The new records (de-duplicated by id, stamp and content) and the cursor after them."""
        seen = set(state.recent)
        recent, top = list(state.recent), max([*stamps, *([state.top] if state.top is not None else [])], default=None)
        wm = state.wm
        if not nxt and top is not None:  # the listing ended: what it saw, not past when it started
            wm = max(wm or 0, min(top, state.started if state.started is not None else top))
        records: list[SourceRecord] = []
        for record, stamp in stamped:
            key = (record.id, stamp, zlib.crc32(_ENCODER.encode(record.fields)))
            if key in seen:
                continue
            seen.add(key)
            recent.append(key)
            records.append(record)
        if wm is not None:
            floor = self._since_ms(wm)
            recent = [key for key in recent if key[1] >= floor][-MAX_RECENT:]
        listing = {"started": state.started, "top": top} if nxt else {}
        encoded = msgspec.json.encode(FetchCursor(wm=wm, recent=recent, next=nxt, **listing)).decode()
        return Page(records=records, cursor=encoded, more=bool(nxt))

    def _records(self, spec: EntitySpec, body: dict[str, Any]) -> list[SourceRecord]:
        return [to_canonical(spec, wire) for wire in body.get(spec.key) or [] if isinstance(wire, dict)]

    def pages(self, spec: EntitySpec, since_ms: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every list answer of ``spec`` (changed since ``since_ms``), following ``links.next``."""
        path, params = self._first(spec, since_ms)
        return self._session.pages(path, spec.key, params)

    async def scan_ids(self, entity: str) -> set[str]:
        """Every id Harvest holds for ``entity`` (active and archived): a scheduled job diffs this with
        the ids Accord knows to find deleted records. Costs ``total_entries / page_size`` requests."""
        spec = spec_for(entity)
        if spec.parent is not None:
            return await self._payments.scan_ids(self.settings.page_size)
        ids: set[str] = set()
        async for body in self.pages(spec):
            ids.update(spec.record_id(wire) for wire in body.get(spec.key) or [] if isinstance(wire, dict))
        return ids

    async def find_created(self, entity: str, gids: Sequence[str], since_ms: int) -> dict[str, SourceRecord]:
        """Records carrying one of ``gids`` (external_reference or the ``accord:<gid>`` marker), changed at
        or after ``since_ms``. Tasks and resources carry no gid in Harvest: nothing is found for them
        (their creates are idempotent by natural key instead)."""
        spec = spec_for(entity)
        wanted = set(gids)
        found: dict[str, SourceRecord] = {}
        if spec.gid_field is None or not wanted:
            return found
        if spec.parent is not None:
            return await self._payments.find_created(gids, since_ms, self.settings.page_size)
        async for body in self.pages(spec, since_ms - 1000):
            for record in self._records(spec, body):
                if record.gid in wanted:
                    found[record.gid] = record
        return found

    # -- writing --------------------------------------------------------------------------------------

    async def write(self, entity: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` (one request or a few per op, run concurrently under the account limiter); one
        result per op, in order. Every failure, including 429 and 401, comes back as that op's result."""
        return await self._writer.write(spec_for(entity), ops)


__all__ = ["SYSTEM", "FetchCursor", "HarvestConnector"]
