"""How the ``TrytonConnector`` reads customer invoices (``account.invoice`` of type ``out``) and reads and
writes opportunities (``sale.opportunity``); the mapping itself is in ``sales``.

An invoice page is expanded with its lines (one read), the timesheet lines they bill (one search on
``invoice_line``), the project of those lines' works (two or three reads, as for time entries) and the
maturity dates of its lines to pay (one read). Invoices are read only: Tryton makes them from project
effort (``project.work.invoice``) and numbers them when posted, so a write of one is refused
(``Permanent``, code ``read_only``) and nothing is sent.

An opportunity is written in two steps: its values under the ``_timestamp`` read before (a stale one is
a retryable ``TrytonConcurrency``), then its state by the workflow buttons (``sales.stage_path``). Tryton
lets one edit an opportunity's values only while it is a lead or an opportunity, so an update that
reopens a closed one moves the state first and writes the values after (under a fresh ``_timestamp``).

What survives a crash: only what Tryton committed. An opportunity carries its gid on a comment line, so
a create repeated after a crash finds the record the first attempt made (its state is then moved by the
update that follows).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, ClassVar

from accord.connectors.base import SourceRecord, WriteOp
from accord.connectors.errors import Permanent
from accord.connectors.tryton import psa, sales
from accord.connectors.tryton.entities import UNFILTERED, EntityIO, gids_in, locked_write, read_by_id
from accord.connectors.tryton.session import TrytonSession
from accord.connectors.tryton.works import LineIO


class InvoiceIO(EntityIO):
    """``invoice`` ← ``account.invoice`` of type ``out`` (read only)."""

    model = sales.INVOICE
    fields = sales.INVOICE_FIELDS
    read_only: ClassVar[bool] = True

    def domain(self) -> list[Any]:
        return [["type", "=", "out"]]

    async def expand(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lines = await read_by_id(self.session, sales.INVOICE_LINE, [i for r in rows for i in r.get("lines") or []],
                                 sales.INVOICE_LINE_FIELDS)
        billed: list[dict[str, Any]] = []
        if lines:
            billed = await self.session.call(f"model.{psa.LINE}.search_read", [["invoice_line", "in", sorted(lines)]],
                                             0, None, [["date", "ASC"], ["id", "ASC"]],
                                             ["invoice_line", "work", "date"], context=UNFILTERED)
            await LineIO("time_entry", self.session).expand(billed)  # accord_project of each
        for line in lines.values():
            line["accord_billed"] = [b for b in billed if b.get("invoice_line") == line["id"]]
        due = await read_by_id(self.session, sales.MOVE_LINE, [i for r in rows for i in r.get("lines_to_pay") or []],
                               ["maturity_date"])
        for row in rows:
            row["accord_lines"] = [lines[i] for i in row.get("lines") or [] if i in lines]
            row["accord_projects"] = [b["accord_project"] for x in row["accord_lines"] for b in x["accord_billed"]
                                      if b.get("accord_project")]
            dates = [d for i in row.get("lines_to_pay") or []
                     if isinstance(d := (due.get(i) or {}).get("maturity_date"), dt.date)]
            row["accord_due"] = max(dates, default=None)
        return rows

    def to_canonical(self, row: dict[str, Any]) -> SourceRecord:
        version = psa.version_of(row)
        return SourceRecord(id=str(row["id"]), version=version, fields=sales.invoice_fields(row), gid=None,
                            modified_ms=version // 1000)

    def gid_domain(self, gids: Sequence[str]) -> list[Any]:
        return [["id", "=", -1]]  # Accord never makes an invoice in Tryton

    def refuse(self, op: WriteOp) -> Permanent:
        return Permanent(psa.SYSTEM, f"invoice {op.gid}: Tryton's invoices are read only for Accord (they are "
                                     "made in Tryton from project effort and numbered when posted); make Tryton "
                                     "the invoice's owner or drop the flow that writes it", code="read_only")

    async def create(self, op: WriteOp) -> int:
        raise self.refuse(op)

    async def update(self, op: WriteOp, current: dict[str, Any]) -> None:
        raise self.refuse(op)


class OpportunityIO(EntityIO):
    """``opportunity`` ↔ ``sale.opportunity``."""

    model = sales.OPPORTUNITY
    fields = sales.OPPORTUNITY_FIELDS

    def __init__(self, entity: str, session: TrytonSession) -> None:
        super().__init__(entity, session)
        self._currencies: dict[str, int] | None = None

    async def currencies(self) -> dict[str, int]:
        """ISO code → currency id (read once per connector; currencies are configuration)."""
        if self._currencies is None:
            rows = await self.session.call("model.currency.currency.search_read", [], 0, None, None, ["code"],
                                           context=UNFILTERED)
            self._currencies = {str(r["code"]).upper(): int(r["id"]) for r in rows if r.get("code")}
        return self._currencies

    def to_canonical(self, row: dict[str, Any]) -> SourceRecord:
        version = psa.version_of(row)
        return SourceRecord(id=str(row["id"]), version=version, fields=sales.opportunity_fields(row),
                            gid=psa.comment_gid(row.get("comment")), modified_ms=version // 1000)

    def gid_domain(self, gids: Sequence[str]) -> list[Any]:
        return [gids_in("comment", [f"accord:{gid}" for gid in gids])]

    async def _values(self, op: WriteOp) -> dict[str, Any]:
        needs = op.fields.get("currency") is not None
        return sales.opportunity_values(op.fields, await self.currencies() if needs else {})

    async def _move(self, record_id: int, current: str, target: Any) -> None:
        for button in sales.stage_path(current, target):
            await self.session.call(f"model.{self.model}.{button}", [record_id])

    async def create(self, op: WriteOp) -> int:
        vals = await self._values(op)
        if not vals.get("description"):
            raise Permanent(psa.SYSTEM, f"cannot create a Tryton opportunity for {op.gid}: opportunity.name "
                                        "missing", code="validation")
        target = op.fields.get("stage")
        path = sales.stage_path("lead", target) if target is not None else []  # refused before anything is made
        new_id = await self._create_one({**vals, "comment": psa.with_comment_gid(None, op.gid), **op.wire})
        if path:
            await self._move(new_id, "lead", target)
        return new_id

    async def update(self, op: WriteOp, current: dict[str, Any]) -> None:
        record_id, state = int(current["id"]), str(current.get("state"))
        vals = {**await self._values(op), **op.wire}
        target = op.fields.get("stage")
        moving = target is not None and target != state
        if moving:
            sales.stage_path(state, target)  # an impossible move is refused before anything is written
        stamp = current["_timestamp"]
        if moving and state not in sales.OPEN_STAGES and vals:
            await self._move(record_id, state, target)  # reopen first: a closed one's values are read only
            moving = False
            stamp = (await self.session.call(f"model.{self.model}.read", [record_id], ["_timestamp"]))[0]["_timestamp"]
        await locked_write(self.session, self.model, record_id, stamp, vals)
        if moving:
            await self._move(record_id, state, target)
