"""``TrytonConnector``: incremental reads on ``write_date``/``create_date``, deletes by an id scan, and
writes under Tryton's optimistic locking, for every entity of ``mapping.MODELS`` (each entity's model,
expansion and writes are its ``EntityIO`` in ``entities``/``works``).

Reads (``reference/tryton.md`` §3.7): a new record has ``write_date = null``, so keyset listings run
side by side: *written* records ordered by ``(write_date, id)`` and *never written* ones (``write_date``
null) by ``(create_date, id)``, plus any listing the entity adds (a resource follows its party's
``write_date`` too). Each starts ``overlap`` seconds behind its watermark (stamps are transaction start
times and commit out of order) and pages by the last ``(stamp, id)`` it returned; the watermark moves
when a listing ends. ``(id, version)`` pairs inside the overlap are kept in the cursor so a record is
returned once per version (and, unless the version needs the expansion, neither filtered nor expanded
again). Inactive records are read too (``active_test`` off). Once a whole read that started ``overlap`` + 1 s
after the watermarks last moved has not moved them, they are *final* (every transaction stamped up to them
has committed): until something is stamped past them, a poll is one ``search_count`` instead of a
``search_read`` per listing re-reading the overlap.
Deletes: never in a page; ``scan_ids`` lists every id (``Capabilities(deletes="scan")``).
Writes: a create looks for an earlier attempt's record by its gid marker first, and runs under the one
create lock of the database (pitfall 1: every create, sequence-numbered or not, one at a time); an
update reads the record (and its party for a resource), then writes with the ``_timestamp`` it read, so
an edit made in Tryton in between is a ``TrytonConcurrency`` (retryable) and nothing is overwritten
blindly.

What survives a crash: nothing here. Cursors, ids and versions are the caller's; a create repeated after
a crash finds the record the first attempt made (its gid marker) instead of making a second one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from accord.connectors.base import CallStats, Page, SourceRecord, WriteOp, WriteResult
from accord.connectors.budget import RequestBudget
from accord.connectors.errors import ConnectorError, Permanent
from accord.connectors.tryton import mapping as m
from accord.connectors.tryton.billing import InvoiceIO, OpportunityIO
from accord.connectors.tryton.codec import epoch_us, from_epoch_us
from accord.connectors.tryton.entities import UNFILTERED, EmployeeIO, EntityIO, PartyIO
from accord.connectors.tryton.payments import PaymentIO
from accord.connectors.tryton.psa import stamp_of
from accord.connectors.tryton.psa import version_of as psa_version
from accord.connectors.tryton.session import TrytonSession, create_lock
from accord.connectors.tryton.settings import TrytonSettings
from accord.connectors.tryton.works import LineIO, WorkIO

MAX_RECENT = 50_000  # de-dup keys kept in a cursor; dropping one only repeats a record, never loses it
IO: dict[str, type[EntityIO]] = {"account": PartyIO, "resource": EmployeeIO, "project": WorkIO, "task": WorkIO,
                                 "time_entry": LineIO, "invoice": InvoiceIO, "opportunity": OpportunityIO,
                                 "payment": PaymentIO}


class Listing(msgspec.Struct, array_like=True):
    """One keyset listing: its watermark (µs) and, while it pages, the last ``(stamp, id)`` returned."""

    wm: int | None = None
    stamp: int | None = None
    last_id: int = 0


class FetchCursor(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The listings' positions, the de-dup keys of the overlap, and when the watermarks last moved
    (``seen_at``, this host's epoch seconds); ``final``: a whole read that started ``overlap`` + 1 s after
    that saw every row that will ever be stamped up to the watermarks, so until they move a poll only asks
    whether anything is stamped past them."""

    w: Listing = msgspec.field(default_factory=Listing)
    c: Listing = msgspec.field(default_factory=Listing)
    p: Listing | None = None  # a resource's party listing
    recent: list[tuple[str, int]] = []
    seen_at: float | None = None
    read_at: float | None = None  # when the read in progress (its first page) started
    final: bool = False


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
        self._io: dict[str, EntityIO] = {}
        self._wall = time.time  # when watermarks were seen (tests move it)

    def entities(self) -> Sequence[str]:
        return tuple(m.MODELS)

    async def aclose(self) -> None:
        await self.session.aclose()

    def io(self, entity: str) -> EntityIO:
        """The ``EntityIO`` of ``entity`` (an unmapped one is ``Permanent``, naming those mapped)."""
        m.model_for(entity)
        if entity not in self._io:
            self._io[entity] = IO[entity](entity, self.session)
        return self._io[entity]

    # -- reading --------------------------------------------------------------------------------------

    def cursor_since(self, entity: str, since_ms: int) -> str:
        start = Listing(wm=since_ms * 1000)
        extra = start if "p" in self.io(entity).streams else None
        return msgspec.json.encode(FetchCursor(w=start, c=start, p=extra)).decode()

    def _decode(self, cursor: str | None) -> FetchCursor:
        if not cursor:
            return FetchCursor()
        try:
            return _CURSOR.decode(cursor)
        except msgspec.DecodeError as exc:
            raise Permanent(self.system, f"poll cursor {cursor[:80]!r} is not a Tryton cursor ({exc}); reset the "
                                         "cursor (accord resync) to reload from Tryton", code="bad_cursor") from exc

    def _domain(self, io: EntityIO, key: str, listing: Listing) -> list[Any]:
        field = io.streams[key]
        domain: list[Any] = [*io.domain(), *io.stream_domain(key)]
        start, last_id = listing.stamp, listing.last_id
        if start is None and listing.wm is not None:
            start, last_id = listing.wm - int(self.settings.overlap * 1_000_000), 0
        if start is not None:
            at = from_epoch_us(start)
            domain.append(["OR", [field, ">", at], [[field, "=", at], ["id", ">", last_id]]])
        return domain

    async def _list(self, io: EntityIO, key: str, listing: Listing) -> tuple[list[dict[str, Any]], Listing, bool]:
        """One page of one listing, and the listing after it (``True``: more pages now)."""
        field = io.streams[key]
        rows: list[dict[str, Any]] = await self.session.call(
            f"model.{io.model}.search_read", self._domain(io, key, listing), 0, self.settings.page_size,
            [[field, "ASC"], ["id", "ASC"]], list(io.fields), context=UNFILTERED)
        stamps = [s for s in (stamp_of(r, field) for r in rows) if s is not None]
        if len(rows) >= self.settings.page_size and stamps:
            return rows, Listing(wm=listing.wm, stamp=epoch_us(stamps[-1]), last_id=int(rows[-1]["id"])), True
        top = max([epoch_us(s) for s in stamps] + [v for v in (listing.wm, listing.stamp) if v is not None],
                  default=None)
        return rows, Listing(wm=top), False

    async def _nothing_past(self, io: EntityIO, listings: dict[str, Listing]) -> bool:
        """Whether no row is stamped past the listings' watermarks: one ``search_count`` for every listing
        (an idle entity's poll costs one call, not one ``search_read`` per listing re-reading its overlap)."""
        domains: list[Any] = []
        for key, listing in listings.items():
            domain: list[Any] = [*io.domain(), *io.stream_domain(key)]
            if listing.wm is not None:
                domain.append([io.streams[key], ">", from_epoch_us(listing.wm)])
            domains.append(domain)
        count = await self.session.call(f"model.{io.model}.search_count", ["OR", *domains], 0, 1, context=UNFILTERED)
        return not count

    async def fetch(self, entity: str, cursor: str | None) -> Page:
        """Changes after ``cursor`` (``None``: everything), at most one page of ``page_size`` per listing."""
        io = self.io(entity)
        state = self._decode(cursor)
        listings = {"w": state.w, "c": state.c, **({"p": state.p or Listing()} if "p" in io.streams else {})}
        started = self._wall()
        paging = any(listing.stamp is not None for listing in listings.values())
        if cursor is not None and state.final and not paging and await self._nothing_past(io, listings):
            return Page(records=[], cursor=cursor, more=False)
        rows: dict[int, dict[str, Any]] = {}
        after: dict[str, Listing] = {}
        more = False
        for name, listing in listings.items():
            page, after[name], next_page = await self._list(io, name, listing)
            rows.update((int(r["id"]), r) for r in page)  # a record in two listings is expanded once
            more = more or next_page
        seen = set(state.recent)
        recent = list(state.recent)
        out: list[SourceRecord] = []
        candidates = list(rows.values())
        own = "p" not in io.streams  # a row's own stamps are its version: what an overlap re-reads costs nothing
        if own:
            candidates = [r for r in candidates if (str(r["id"]), psa_version(r)) not in seen]
        kept = await io.keep(candidates)
        if own:  # a row left out is remembered like one returned
            ids = {int(r["id"]) for r in kept}
            for key in ((str(r["id"]), psa_version(r)) for r in candidates if int(r["id"]) not in ids):
                seen.add(key)
                recent.append(key)
        for record in (io.to_canonical(row) for row in await io.expand(kept)):
            key = (record.id, record.version)
            if key not in seen:
                seen.add(key)
                recent.append(key)
                out.append(record)
        floor = min((v.wm for v in after.values() if v.wm is not None), default=0) - int(
            self.settings.overlap * 2_000_000)
        recent = [key for key in recent if key[1] >= floor][-MAX_RECENT:]
        moved = any(after[key].wm != listing.wm for key, listing in listings.items())
        seen_at = self._wall() if moved or state.seen_at is None else state.seen_at
        read_at = state.read_at if paging else started  # unknown for a cursor from an older version
        # final once a whole read, started overlap + 1 s after the watermarks last moved, did not move them
        final = not (more or moved) and state.seen_at is not None and (state.final or (
            read_at is not None and read_at - state.seen_at >= self.settings.overlap + 1.0))
        encoded = msgspec.json.encode(FetchCursor(w=after["w"], c=after["c"], p=after.get("p"), recent=recent,
                                                  seen_at=seen_at, read_at=read_at if more else None,
                                                  final=final))
        return Page(records=out, cursor=encoded.decode(), more=more)

    async def read(self, ids: Sequence[int], entity: str = "account") -> dict[int, dict[str, Any]]:
        """The expanded records ``ids`` of ``entity`` with their ``_timestamp`` (a deleted one is ``Gone``)."""
        io = self.io(entity)
        rows = await self.session.call(f"model.{io.model}.read", list(ids), [*io.fields, "_timestamp"],
                                       context=UNFILTERED)
        return {int(r["id"]): r for r in await io.expand(list(rows))}

    async def scan_ids(self, entity: str) -> set[str]:
        """Every id of ``entity`` in Tryton, active or not: a scheduled job diffs it with Accord's to find
        deletes."""
        io = self.io(entity)
        ids = await self.session.call(f"model.{io.model}.search", io.domain(), 0, None, None, context=UNFILTERED)
        return {str(i) for i in ids}

    async def find_created(self, entity: str, gids: Sequence[str], since_ms: int) -> dict[str, SourceRecord]:
        """Records of ``entity`` carrying one of ``gids`` in their gid marker (whenever made)."""
        io = self.io(entity)
        if not gids:
            return {}
        ids = await self.session.call(f"model.{io.model}.search", [*io.domain(), *io.gid_domain(gids)], 0, None,
                                      None, context=UNFILTERED)
        found = await self.read(ids, entity) if ids else {}
        records = (io.to_canonical(row) for row in found.values())
        return {r.gid: r for r in records if r.gid is not None and r.gid in gids}

    # -- writing --------------------------------------------------------------------------------------

    async def write(self, entity: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` one by one (creates under the database's create lock); a failure of one op
        comes back as its result."""
        io = self.io(entity)
        results: list[WriteResult] = []
        for op in ops:
            try:
                results.append(await self._write_one(io, op))
            except ConnectorError as exc:
                results.append(WriteResult(gid=op.gid, ok=False, target_id=op.target_id, error=exc))
        return results

    async def _write_one(self, io: EntityIO, op: WriteOp) -> WriteResult:
        if io.read_only:
            raise io.refuse(op)
        if op.kind == "delete":
            if op.target_id is not None:
                await self.session.call(f"model.{io.model}.delete", [int(op.target_id)])
            return WriteResult(gid=op.gid, ok=True, target_id=op.target_id)
        if op.target_id is not None:
            return await self._update(io, op, int(op.target_id), created=False)
        async with create_lock(self.settings.base_url, self.settings.database):
            if op.lookup:
                earlier = await self.find_created(io.entity, [op.gid], 0)
                if op.gid in earlier:
                    return await self._update(io, op, int(earlier[op.gid].id), created=True)
            new_id = await io.create(op)
        return await self._result(io, op, new_id, created=True)

    async def _update(self, io: EntityIO, op: WriteOp, record_id: int, *, created: bool) -> WriteResult:
        current = (await self.read([record_id], io.entity))[record_id]
        await io.update(op, current)
        return await self._result(io, op, record_id, created=created)

    async def _result(self, io: EntityIO, op: WriteOp, record_id: int, *, created: bool) -> WriteResult:
        record = io.to_canonical((await self.read([record_id], io.entity))[record_id])
        held = {k: record.fields.get(k) for k in op.fields if k in record.fields}
        return WriteResult(gid=op.gid, ok=True, target_id=str(record_id), version=record.version, created=created,
                           fields=held)


__all__ = ["FetchCursor", "TrytonConnector"]
