"""Writes of invoices and payments to Harvest (the mapping is in ``billing``).

* Invoice create: **look-up-before-create** among the client's invoices: first the ``accord:<gid>``
  line in ``notes``, then the invoice ``number`` (unique per Harvest account; an invoice with that number
  and no gid line is linked and stamped, one carrying another gid is refused). Then ``POST`` with
  ``line_items_import`` (the project's time and expenses of the period get billed; when the op's lines
  name their time entries and expenses, the import is first checked to bill exactly those:
  ``billed_check``) and a ``send``
  message so the invoice is open, unless the op's status is "draft". A retry after a lost answer finds
  the first invoice and only finishes the status step.
* Invoice update: ``PATCH`` number, dates and currency (client, project and period are fixed at
  creation: they decided which time was billed); status changes through ``messages`` events (``send``,
  ``close`` for "void", ``re-open``, ``draft``). ``total``, ``tax`` and ``balance`` are Harvest's own
  sums: an op may carry them, they are not written, and the result reports what Harvest holds.
* Invoice delete: ``DELETE`` a draft (Harvest un-bills its time and expenses); close any other
  (a paid one is refused: its payments must go first).
* Payment create: look-up-before-create by the gid line among the invoice's payments, then ``POST``.
  Payments cannot be edited in Harvest: an update that changes a held field is ``Permanent``.
  Payment delete: ``DELETE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from accord.connectors.base import WriteOp, WriteResult
from accord.connectors.errors import Gone, Permanent
from accord.connectors.harvest.billed_check import billed_by_lines, check_exact, import_candidates
from accord.connectors.harvest.billing import (
    INVOICE,
    INVOICE_UPDATABLE,
    PAYMENT,
    PAYMENT_HELD,
    create_body,
    events_for,
    split_payment_id,
    wanted_status,
    with_invoice,
)
from accord.connectors.harvest.convert import (
    SYSTEM,
    EntitySpec,
    date,
    find_marker,
    gid_of,
    int_id,
    parse_time_ms,
    projection,
    strip_marker,
    to_wire,
    unref,
    with_marker,
)
from accord.connectors.harvest.session import HarvestSession

NOT_EDITABLE = "Harvest payments cannot be edited: delete and re-record it in Harvest, then retry"


def _ok(spec: EntitySpec, op: WriteOp, wire: Mapping[str, Any], created: bool) -> WriteResult:
    return WriteResult(gid=op.gid, ok=True, target_id=spec.record_id(wire), created=created,
                       version=parse_time_ms(wire.get("updated_at")), fields=projection(spec, wire, set(op.fields)))


class BillingWriter:
    """Invoice and payment ops, one at a time (``HarvestWriter`` runs ops concurrently)."""

    def __init__(self, session: HarvestSession) -> None:
        self._session = session

    async def write(self, spec: EntitySpec, op: WriteOp, headers: dict[str, str]) -> WriteResult:
        if spec.entity == "invoice":
            if op.kind == "delete":
                return await self._delete_invoice(op, headers)
            return await self._upsert_invoice(op, headers)
        if op.kind == "delete":
            return await self._delete_payment(op, headers)
        return await self._upsert_payment(op, headers)

    async def _get(self, path: str) -> dict[str, Any]:
        return await self._session.record("GET", path, None, {})

    # -- invoices ------------------------------------------------------------------------------------

    async def _upsert_invoice(self, op: WriteOp, headers: dict[str, str]) -> WriteResult:
        wanted = wanted_status(op.fields.get("status"))
        created = False
        if op.target_id is not None:
            current = await self._get(f"/v2/invoices/{int_id('invoice', 'id', op.target_id)}")
        else:
            wanted = wanted or "open"  # a new invoice is issued unless the op says "draft"
            body = create_body(op.gid, op.fields)  # validates before any request
            found = await self._find_invoice(op, body)
            if found is None:
                billed = billed_by_lines(op.fields.get("lines"))
                if billed is not None:
                    check_exact(body.get("number"), billed, await import_candidates(self._session, body), body)
                current = await self._session.record("POST", "/v2/invoices", {**body, **op.wire}, headers)
                created = True
            else:
                current = found
        path = f"/v2/invoices/{current['id']}"
        if not created:
            patch = self._invoice_patch(op, current)
            if patch:
                current = await self._session.record("PATCH", path, patch, headers)
        events = events_for(op.gid, current.get("state"), wanted)
        for event in events:
            await self._session.record("POST", f"{path}/messages", {"event_type": event}, headers)
        if events:
            current = await self._get(path)
        return _ok(INVOICE, op, current, created)

    def _invoice_patch(self, op: WriteOp, current: Mapping[str, Any]) -> dict[str, Any]:
        patch = {**to_wire(INVOICE, {k: v for k, v in op.fields.items() if k in INVOICE_UPDATABLE}), **op.wire}
        patch = {k: v for k, v in patch.items() if current.get(k) != v}
        if find_marker(current.get("notes")) != op.gid:
            patch["notes"] = with_marker(current.get("notes"), op.gid)  # linked by number: stamp the gid
        return patch

    async def _find_invoice(self, op: WriteOp, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The invoice an earlier attempt created (gid line), else the client's invoice with this number."""
        by_number: dict[str, Any] | None = None
        params = {"client_id": body["client_id"]}
        async for page in self._session.pages("/v2/invoices", "invoices", params):
            for item in page["invoices"]:
                if gid_of(INVOICE, item) == op.gid:
                    return dict(item)
                if body.get("number") is not None and item.get("number") == body["number"]:
                    by_number = dict(item)
        if by_number is not None and gid_of(INVOICE, by_number) is not None:
            raise Permanent(SYSTEM, f"invoice {op.gid}: number {body['number']!r} is already Harvest invoice "
                                    f"{by_number['id']}, linked to Accord record {gid_of(INVOICE, by_number)}; "
                                    "invoice numbers are unique in Harvest: renumber one of them in the ERP",
                            code="validation")
        return by_number

    async def _delete_invoice(self, op: WriteOp, headers: dict[str, str]) -> WriteResult:
        if op.target_id is None:
            return WriteResult(gid=op.gid, ok=True)  # never written: nothing to delete
        path = f"/v2/invoices/{int_id('invoice', 'id', op.target_id)}"
        try:
            state = (await self._get(path)).get("state")
            if state == "draft":
                await self._session.request("DELETE", path, headers=headers)
            elif state == "paid":
                raise Permanent(SYSTEM, f"invoice {op.target_id} is paid in Harvest, so it can be neither "
                                        "deleted nor closed; delete its payments first, then retry",
                                code="validation")
            elif state != "closed":
                await self._session.record("POST", f"{path}/messages", {"event_type": "close"}, headers)
        except Gone:
            pass  # already gone: done
        return WriteResult(gid=op.gid, ok=True, target_id=op.target_id)

    # -- payments ------------------------------------------------------------------------------------

    async def _payments(self, invoice_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async for page in self._session.pages(f"/v2/invoices/{invoice_id}/payments", "invoice_payments"):
            found += [dict(p) for p in page["invoice_payments"] if isinstance(p, dict)]
        return found

    async def _upsert_payment(self, op: WriteOp, headers: dict[str, str]) -> WriteResult:
        if op.target_id is not None:
            invoice_id, payment_id = split_payment_id(op.target_id)
        else:
            invoice_id = str(int_id("payment", "invoice", unref("payment", "invoice", op.fields.get("invoice"))))
            payment_id = None
        invoice = await self._get(f"/v2/invoices/{invoice_id}")
        for item in await self._payments(invoice_id):
            if str(item.get("id")) == payment_id or (payment_id is None and gid_of(PAYMENT, item) == op.gid):
                wire = with_invoice(item, invoice)
                self._refuse_edit(op, wire)
                return _ok(PAYMENT, op, wire, False)
        if payment_id is not None:
            raise Gone(SYSTEM, f"payment {op.target_id} is no longer on Harvest invoice {invoice_id}",
                       code="not_found")
        body = {k: v for k, v in {**to_wire(PAYMENT, op.fields), **op.wire}.items() if v is not None}
        if body.get("amount") is None:
            raise Permanent(SYSTEM, f"cannot record a Harvest payment for {op.gid}: amount missing",
                            code="validation")
        body["notes"] = with_marker(body.get("notes"), op.gid)
        answer = await self._session.record("POST", f"/v2/invoices/{invoice_id}/payments", body, headers)
        return _ok(PAYMENT, op, with_invoice(answer, invoice), True)

    def _refuse_edit(self, op: WriteOp, wire: Mapping[str, Any]) -> None:
        """``Permanent`` naming every held field the op would change (Harvest cannot edit a payment)."""
        held = projection(PAYMENT, wire, set(PAYMENT_HELD))
        changed = [f"{name} {held.get(name)!r} → {op.fields[name]!r}" for name in PAYMENT_HELD
                   if name in op.fields and not _same(name, held.get(name), op.fields[name])]
        if changed:
            raise Permanent(SYSTEM, f"payment {PAYMENT.record_id(wire)} ({op.gid}): {'; '.join(changed)}; "
                                    f"{NOT_EDITABLE}", code="not_editable")

    async def _delete_payment(self, op: WriteOp, headers: dict[str, str]) -> WriteResult:
        if op.target_id is None:
            return WriteResult(gid=op.gid, ok=True)
        invoice_id, payment_id = split_payment_id(op.target_id)
        try:
            await self._session.request("DELETE", f"/v2/invoices/{invoice_id}/payments/{payment_id}",
                                        headers=headers)
        except Gone:
            pass  # already gone: done
        return WriteResult(gid=op.gid, ok=True, target_id=op.target_id)


def _same(name: str, held: Any, wanted: Any) -> bool:
    if name == "amount":
        try:
            return held is not None and wanted is not None and Decimal(str(held)) == Decimal(str(wanted))
        except InvalidOperation:
            return False
    if name == "paid_date":
        return bool(held == date("payment", "paid_date", wanted))
    if name == "notes":
        return bool(held == strip_marker(wanted))
    return bool(held == (None if wanted is None else str(wanted)))
