"""Reading invoice payments: Harvest lists payments only per invoice (``/v2/invoices/{id}/payments``).

The payment feed polls **invoices** updated since the cursor (recording or deleting a payment bumps its
invoice's ``updated_at``) and lists the payments of those that have any (``due_amount`` below
``amount``), so the feed's watermark is the invoices' ``updated_at``. A payment is reported again
whenever its invoice changes later (at least once, never lost). Deleted payments are found by
``scan_ids`` (every invoice with payments, every payment). Invoices are listed ``PARENT_PAGE`` at a time
so one poll costs at most ``PARENT_PAGE + 1`` requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from accord.connectors.base import SourceRecord
from accord.connectors.harvest.billing import PAYMENT, has_payments, with_invoice
from accord.connectors.harvest.convert import format_time, parse_time_ms, to_canonical
from accord.connectors.harvest.session import HarvestSession

PARENT_PAGE = 100


class PaymentFeed:
    """Payments of the invoices in a list answer, with the invoices' ``updated_at`` stamps."""

    def __init__(self, session: HarvestSession) -> None:
        self._session = session

    def invoice_query(self, since_ms: int | None, page_size: int) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"per_page": min(page_size, PARENT_PAGE)}
        if since_ms is not None:
            params["updated_since"] = format_time(max(0, since_ms) / 1000)
        return "/v2/invoices", params

    async def _of(self, invoice: Mapping[str, Any]) -> list[dict[str, Any]]:
        if not has_payments(invoice):
            return []
        found: list[dict[str, Any]] = []
        async for body in self._session.pages(f"/v2/invoices/{invoice['id']}/payments", PAYMENT.key):
            found += [with_invoice(p, invoice) for p in body[PAYMENT.key] if isinstance(p, dict)]
        return found

    async def records(self, body: Mapping[str, Any]) -> tuple[list[tuple[SourceRecord, int]], list[int]]:
        """``(payment record, its invoice's updated_at ms)`` pairs, and every invoice's stamp."""
        invoices = [w for w in body.get("invoices") or [] if isinstance(w, dict) and w.get("id") is not None]
        lists = await asyncio.gather(*(self._of(invoice) for invoice in invoices))
        stamps = [parse_time_ms(invoice.get("updated_at")) for invoice in invoices]
        pairs = [(to_canonical(PAYMENT, wire), stamp) for stamp, wires in zip(stamps, lists, strict=True)
                 for wire in wires]
        return pairs, stamps

    async def _all(self, since_ms: int | None, page_size: int) -> AsyncIterator[SourceRecord]:
        path, params = self.invoice_query(since_ms, page_size)
        async for body in self._session.pages(path, "invoices", params):
            pairs, _ = await self.records(body)
            for record, _stamp in pairs:
                yield record

    async def scan_ids(self, page_size: int) -> set[str]:
        return {record.id async for record in self._all(None, page_size)}

    async def find_created(self, gids: Sequence[str], since_ms: int, page_size: int) -> dict[str, SourceRecord]:
        wanted = set(gids)
        return {record.gid: record async for record in self._all(since_ms - 1000, page_size)
                if record.gid in wanted and record.gid is not None}
