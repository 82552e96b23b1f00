"""``TrytonConnector``: incremental reads on ``write_date``/``create_date``, deletes by an id scan, and
writes under Tryton's optimistic locking.

Reads (``reference/tryton.md`` §3.7): a new record has ``write_date = null``, so two keyset listings run
side by side: *written* records ordered by ``(write_date, id)`` and *never written* ones (``write_date``
null) by ``(create_date, id)``. Each starts ``overlap`` seconds behind its watermark (stamps are
transaction start times and commit out of order) and pages by the last ``(stamp, id)`` it returned; the
watermark moves when a listing ends. ``(id, version)`` pairs inside the overlap are kept in the cursor so
a record is returned once per version. Inactive parties are read too (``active_test`` off).
Deletes: never in a page; ``scan_ids`` lists every id (``Capabilities(deletes="scan")``).
Writes: a create looks for an earlier attempt's record by its ``accord:<gid>`` identifier first, and
runs under the one create lock of the database (pitfall 1); an update reads the record and its
sub-records, then writes with the ``_timestamp`` it read, so an edit made in Tryton in between is a
``TrytonConcurrency`` (retryable) and nothing is overwritten blindly.

What survives a crash: nothing. Cursors, ids and versions are the caller's; a create repeated after a
crash finds the record the first attempt made (its gid identifier) instead of making a second one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from accord.connectors.base import CallStats, Page, SourceRecord, WriteOp, WriteResult
from accord.connectors.budget import RequestBudget
from accord.connectors.errors import ConnectorError, Permanent
from accord.connectors.tryton import mapping as m
from accord.connectors.tryton.codec import epoch_us, from_epoch_us
from accord.connectors.tryton.session import TrytonSession, create_lock
from accord.connectors.tryton.settings import TrytonSettings

MAX_RECENT = 50_000  # de-dup keys kept in a cursor; dropping one only repeats a record, never loses it
STREAMS = {"w": "write_date", "c": "create_date"}
UNFILTERED = {"active_test": False}


class Listing(msgspec.Struct, array_like=True):
    """One keyset listing: its watermark (µs) and, while it pages, the last ``(stamp, id)`` returned."""

    wm: int | None = None
    stamp: int | None = None
    last_id: int = 0


class FetchCursor(msgspec.Struct, kw_only=True, omit_defaults=True):
    w: Listing = msgspec.field(default_factory=Listing)
    c: Listing = msgspec.field(default_factory=Listing)
    recent: list[tuple[str, int]] = []


_CURSOR = msgspec.json.Decoder(FetchCursor)


class TrytonConnector:
    """The ``Connector`` for one Tryton database (see ``accord.connectors.base.Connector``)."""

    def __init__(self, settings: TrytonSettings, *, name: str = "tryton", budget: RequestBudget | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, stats: CallStats | None = None) -> None:
        self.system = name
        self.settings = settings
        self.batch_size = 50
        self.scan_interval = float(settings.full_scan_interval)
        self.stats = stats or CallStats()
        self.session = TrytonSession(settings, system=name, budget=budget, transport=transport, stats=self.stats)

    def entities(self) -> Sequence[str]:
        return tuple(m.MODELS)

    async def aclose(self) -> None:
        await self.session.aclose()

    # -- reading --------------------------------------------------------------------------------------

    def cursor_since(self, entity: str, since_ms: int) -> str:
        start = Listing(wm=since_ms * 1000)
        return msgspec.json.encode(FetchCursor(w=start, c=start)).decode()

    def _decode(self, cursor: str | None) -> FetchCursor:
        if not cursor:
            return FetchCursor()
        try:
            return _CURSOR.decode(cursor)
        except msgspec.DecodeError as exc:
            raise Permanent(self.system, f"poll cursor {cursor[:80]!r} is not a Tryton cursor ({exc}); reset the "
                                         "cursor (accord resync) to reload from Tryton", code="bad_cursor") from exc

    def _domain(self, key: str, listing: Listing) -> list[Any]:
        field = STREAMS[key]
        domain: list[Any] = [["write_date", "!=" if key == "w" else "=", None]]
        start, last_id = listing.stamp, listing.last_id
        if start is None and listing.wm is not None:
            start, last_id = listing.wm - int(self.settings.overlap * 1_000_000), 0
        if start is not None:
            at = from_epoch_us(start)
            domain.append(["OR", [field, ">", at], [[field, "=", at], ["id", ">", last_id]]])
        return domain

    async def _list(self, key: str, listing: Listing) -> tuple[list[dict[str, Any]], Listing, bool]:
        """One page of one listing, and the listing after it (``True``: more pages now)."""
        field = STREAMS[key]
        rows: list[dict[str, Any]] = await self.session.call(
            f"model.{m.PARTY}.search_read", self._domain(key, listing), 0, self.settings.page_size,
            [[field, "ASC"], ["id", "ASC"]], list(m.PARTY_FIELDS), context=UNFILTERED)
        if len(rows) >= self.settings.page_size:
            last = rows[-1]
            return rows, Listing(wm=listing.wm, stamp=epoch_us(last[field]), last_id=int(last["id"])), True
        top = max([epoch_us(r[field]) for r in rows if isinstance(r.get(field), dt.datetime)]
                  + [v for v in (listing.wm, listing.stamp) if v is not None], default=None)
        return rows, Listing(wm=top), False

    async def fetch(self, entity: str, cursor: str | None) -> Page:
        """Changes after ``cursor`` (``None``: everything), at most two pages of ``page_size``."""
        m.model_for(entity)
        state = self._decode(cursor)
        written, w, more_w = await self._list("w", state.w)
        fresh, c, more_c = await self._list("c", state.c)
        records = await self.expand([*written, *fresh])
        seen = set(state.recent)
        recent = list(state.recent)
        out: list[SourceRecord] = []
        for record in (m.to_canonical(entity, row) for row in records):
            key = (record.id, record.version)
            if key not in seen:
                seen.add(key)
                recent.append(key)
                out.append(record)
        floor = min((v for v in (w.wm, c.wm) if v is not None), default=0) - int(self.settings.overlap * 2_000_000)
        recent = [key for key in recent if key[1] >= floor][-MAX_RECENT:]
        encoded = msgspec.json.encode(FetchCursor(w=w, c=c, recent=recent)).decode()
        return Page(records=out, cursor=encoded, more=more_w or more_c)

    async def expand(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Party rows with their addresses, contact mechanisms and identifiers read (three calls a page)."""
        subs = (("addresses", "party.address", m.ADDRESS_FIELDS),
                ("contact_mechanisms", "party.contact_mechanism", m.MECHANISM_FIELDS),
                ("identifiers", "party.identifier", m.IDENTIFIER_FIELDS))
        for key, model, fields in subs:
            ids = sorted({i for row in rows for i in row.get(key) or []})
            found: dict[int, dict[str, Any]] = {}
            if ids:
                read = await self.session.call(f"model.{model}.read", ids, list(fields), context=UNFILTERED)
                found = {int(r["id"]): r for r in read}
            for row in rows:
                row[key] = [found[i] for i in row.get(key) or [] if i in found]
        return rows

    async def read(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The expanded parties ``ids`` with their ``_timestamp`` (a deleted one is ``Gone``)."""
        rows = await self.session.call(f"model.{m.PARTY}.read", list(ids), [*m.PARTY_FIELDS, "_timestamp"],
                                       context=UNFILTERED)
        return {int(r["id"]): r for r in await self.expand(list(rows))}

    async def scan_ids(self, entity: str) -> set[str]:
        """Every party id in Tryton, active or not: a scheduled job diffs it with Accord's to find deletes."""
        m.model_for(entity)
        ids = await self.session.call(f"model.{m.PARTY}.search", [], 0, None, None, context=UNFILTERED)
        return {str(i) for i in ids}

    async def find_created(self, entity: str, gids: Sequence[str], since_ms: int) -> dict[str, SourceRecord]:
        """Parties carrying one of ``gids`` in an ``accord:<gid>`` identifier (whenever made)."""
        m.model_for(entity)
        if not gids:
            return {}
        codes = [f"{m.GID_PREFIX}{gid}" for gid in gids]
        ids = await self.session.call(f"model.{m.PARTY}.search", [["identifiers.code", "in", codes]], 0, None,
                                      None, context=UNFILTERED)
        found = await self.read(ids) if ids else {}
        records = (m.to_canonical(entity, row) for row in found.values())
        return {r.gid: r for r in records if r.gid is not None}

    # -- writing --------------------------------------------------------------------------------------

    async def write(self, entity: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` one by one (creates under the database's create lock); a failure of one op
        comes back as its result."""
        m.model_for(entity)
        results: list[WriteResult] = []
        for op in ops:
            try:
                results.append(await self._write_one(entity, op))
            except ConnectorError as exc:
                results.append(WriteResult(gid=op.gid, ok=False, target_id=op.target_id, error=exc))
        return results

    async def _write_one(self, entity: str, op: WriteOp) -> WriteResult:
        if op.kind == "delete":
            if op.target_id is not None:
                await self.session.call(f"model.{m.PARTY}.delete", [int(op.target_id)])
            return WriteResult(gid=op.gid, ok=True, target_id=op.target_id)
        if op.target_id is not None:
            return await self._update(entity, op, int(op.target_id), created=False)
        async with create_lock(self.settings.base_url, self.settings.database):
            if op.lookup:
                earlier = await self.find_created(entity, [op.gid], 0)
                if op.gid in earlier:
                    return await self._update(entity, op, int(earlier[op.gid].id), created=True)
            new_id, = await self.session.call(f"model.{m.PARTY}.create",
                                              [{**m.create_values(op.fields, op.gid), **op.wire}])
        return await self._result(entity, op, int(new_id), created=True)

    async def _update(self, entity: str, op: WriteOp, party_id: int, *, created: bool) -> WriteResult:
        current = (await self.read([party_id]))[party_id]
        vals = {**m.update_values(op.fields, current), **op.wire}
        if vals:
            stamp = {f"{m.PARTY},{party_id}": current["_timestamp"]}
            await self.session.call(f"model.{m.PARTY}.write", [party_id], vals, context={"_timestamp": stamp})
        return await self._result(entity, op, party_id, created=created)

    async def _result(self, entity: str, op: WriteOp, party_id: int, *, created: bool) -> WriteResult:
        record = m.to_canonical(entity, (await self.read([party_id]))[party_id])
        held = {k: record.fields.get(k) for k in op.fields if k in record.fields}
        return WriteResult(gid=op.gid, ok=True, target_id=str(party_id), version=record.version, created=created,
                           fields=held)


__all__ = ["FetchCursor", "TrytonConnector"]
