"""The Harvest sandbox's invoice states, payments and messages, and the rendered invoice (reference 3.8).

``BillingStore`` is the sandbox account's store: ``invoices.InvoiceStore`` (invoice rows, the import of
time and expenses) plus what happens after an invoice exists:

* ``POST /v2/invoices/{id}/messages``: ``event_type`` ``send`` (draft → open; an open or paid invoice
  stays as it is), ``close`` (open → closed), ``re-open`` (closed → open, or paid when nothing is due),
  ``draft`` (open → draft; refused once payments exist). No ``event_type``: an email to ``recipients``,
  which also marks a draft as sent. A transition from another state is a 422 [unverified message].
* ``POST /v2/invoices/{id}/payments``: ``amount`` (> 0, at most what is due), ``paid_date`` or
  ``paid_at`` (default today), ``notes``; only on open invoices [unverified]. When nothing is left due the
  invoice becomes paid (``paid_at`` / ``paid_date`` of the last payment); deleting a payment makes it
  open again. Both bump the invoice's ``updated_at``. There is no route to edit or fetch one payment.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from accord.connectors.harvest.convert import format_time
from accord.sandboxes.harvest.invoices import InvoiceStore, decimal_of, money
from accord.sandboxes.harvest.store import HarvestError, invalid

EVENTS = {"send": ("draft", "open", "paid"), "close": ("open",), "re-open": ("closed",), "draft": ("open",)}
OWNER = {"id": 1_782_884, "name": "Account Owner", "email": "owner@sandbox.example"}
_MESSAGE_FLAGS = ("attach_pdf", "send_me_a_copy", "thank_you")


class BillingStore(InvoiceStore):
    """The sandbox account's tables, invoices with their states, payments and messages included."""

    def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        if resource == "invoice_payments":
            return self.add_payment(body)
        if resource == "invoice_messages":
            return self.add_message(body)
        return super().create(resource, body)

    def delete(self, resource: str, rid: int | str) -> None:
        if resource == "invoice_payments":
            return self.delete_payment(rid)
        return super().delete(resource, rid)

    # -- sums ------------------------------------------------------------------------------------------

    def payments_of(self, invoice_id: int) -> list[dict[str, Any]]:
        return sorted((p for p in self.tables["invoice_payments"].values() if p["invoice_id"] == invoice_id),
                      key=lambda p: p["id"])

    def totals(self, row: dict[str, Any]) -> dict[str, Decimal]:
        """amount, due_amount, tax_amount, tax2_amount and discount_amount of an invoice row."""
        lines = row["line_items"]
        subtotal = sum((decimal_of(li["amount"]) for li in lines), Decimal(0))
        out = {"discount_amount": subtotal * decimal_of(row["discount"]) / 100}
        for name, flag in (("tax", "taxed"), ("tax2", "taxed2")):
            taxed = sum((decimal_of(li["amount"]) for li in lines if li.get(flag)), Decimal(0))
            out[f"{name}_amount"] = taxed * decimal_of(row[name]) / 100
        out["amount"] = subtotal - out["discount_amount"] + out["tax_amount"] + out["tax2_amount"]
        paid = sum((decimal_of(p["amount"]) for p in self.payments_of(row["id"])), Decimal(0))
        out["due_amount"] = out["amount"] - paid
        return {k: v.quantize(Decimal("0.01")) for k, v in out.items()}

    # -- messages: the invoice's state machine -----------------------------------------------------------

    def add_message(self, body: dict[str, Any]) -> dict[str, Any]:
        invoice = self.get("invoices", body.get("invoice_id", ""))
        event = body.get("event_type")
        if event is None and not body.get("recipients"):
            raise invalid("Recipients can't be blank")
        if event is not None and event not in EVENTS:
            raise invalid("Event type is not included in the list")
        self._transition(invoice, event or "send")
        stamp = self._stamp(None)
        row = {"id": self._new_id("invoice_messages"), "invoice_id": invoice["id"], "event_type": event,
               "recipients": body.get("recipients") or [], "subject": body.get("subject"), "body": body.get("body"),
               **{flag: bool(body.get(flag)) for flag in _MESSAGE_FLAGS}, "created_at": stamp, "updated_at": stamp}
        self.tables["invoice_messages"][row["id"]] = row
        return row

    def _transition(self, invoice: dict[str, Any], event: str) -> None:
        state = invoice["state"]
        if state not in EVENTS[event]:
            raise invalid(f"This invoice is {state}: it cannot take the {event!r} event")  # [unverified]
        now = format_time(self.now())
        if event == "send" and state == "draft":
            invoice.update(state="open", sent_at=now)
        elif event == "close":
            invoice.update(state="closed", closed_at=now)
        elif event == "re-open":
            settled = bool(self.payments_of(invoice["id"])) and self.totals(invoice)["due_amount"] <= 0
            invoice.update(state="paid" if settled else "open", closed_at=None)
        elif event == "draft":
            if self.payments_of(invoice["id"]):
                raise invalid("Invoices with payments cannot be marked as draft")  # [unverified]
            invoice.update(state="draft", sent_at=None)
        invoice["updated_at"] = self._stamp(invoice)

    # -- payments --------------------------------------------------------------------------------------------

    def add_payment(self, body: dict[str, Any]) -> dict[str, Any]:
        invoice = self.get("invoices", body.get("invoice_id", ""))
        if invoice["state"] in ("draft", "closed"):
            raise invalid(f"Payments cannot be recorded on a {invoice['state']} invoice")  # [unverified]
        if body.get("amount") is None:
            raise invalid("Amount can't be blank")
        try:
            amount = Decimal(str(body["amount"]))
        except InvalidOperation:
            raise invalid("Amount is not a number") from None
        if amount <= 0:
            raise invalid("Amount must be greater than 0")
        if amount > self.totals(invoice)["due_amount"]:
            raise invalid("Amount must be less than or equal to the amount due")  # [unverified]
        paid_date = str(body.get("paid_date") or str(body.get("paid_at") or "")[:10] or self._today())
        try:
            dt.date.fromisoformat(paid_date)
        except ValueError:
            raise invalid("Paid date is not a valid date") from None
        stamp = self._stamp(None)
        row = {"id": self._new_id("invoice_payments"), "invoice_id": invoice["id"], "amount": money(amount),
               "paid_at": body.get("paid_at") or f"{paid_date}T{format_time(stamp)[11:]}", "paid_date": paid_date,
               "recorded_by": OWNER["name"], "recorded_by_email": OWNER["email"], "notes": body.get("notes"),
               "transaction_id": None, "payment_gateway": {"id": None, "name": None},
               "created_at": stamp, "updated_at": stamp}
        self.tables["invoice_payments"][row["id"]] = row
        self._settle(invoice)
        return row

    def delete_payment(self, rid: int | str) -> None:
        row = self.get("invoice_payments", rid)
        del self.tables["invoice_payments"][row["id"]]
        self._settle(self.tables["invoices"][row["invoice_id"]])

    def _settle(self, invoice: dict[str, Any]) -> None:
        payments = self.payments_of(invoice["id"])
        due = self.totals(invoice)["due_amount"]
        if invoice["state"] == "open" and payments and due <= 0:
            last = max(payments, key=lambda p: (p["paid_date"], p["id"]))
            invoice.update(state="paid", paid_at=last["paid_at"], paid_date=last["paid_date"])
        elif invoice["state"] == "paid" and due > 0:
            invoice.update(state="open", paid_at=None, paid_date=None)
        invoice["updated_at"] = self._stamp(invoice)

    # -- rendering -------------------------------------------------------------------------------------------

    def render(self, resource: str, row: dict[str, Any]) -> dict[str, Any]:
        stamps = {"created_at": format_time(row["created_at"]), "updated_at": format_time(row["updated_at"])}
        if resource == "invoices":
            return {**self._render_invoice(row), **stamps}
        if resource == "invoice_payments":
            keep = ("id", "amount", "paid_at", "paid_date", "recorded_by", "recorded_by_email", "notes",
                    "transaction_id", "payment_gateway")
            return {**{k: row[k] for k in keep}, **stamps}
        if resource == "invoice_messages":
            return {"id": row["id"], "sent_by": OWNER["name"], "sent_by_email": OWNER["email"],
                    "sent_from": OWNER["name"], "sent_from_email": OWNER["email"], "recipients": row["recipients"],
                    "subject": row["subject"], "body": row["body"], "include_link_to_client_invoice": False,
                    **{flag: row[flag] for flag in _MESSAGE_FLAGS}, "event_type": row["event_type"],
                    "reminder": False, "send_reminder_on": None, **stamps}
        return super().render(resource, row)

    def _render_invoice(self, row: dict[str, Any]) -> dict[str, Any]:
        sums = {k: money(v) for k, v in self.totals(row).items()}
        client = self.tables["clients"].get(row["client_id"]) or {}
        lines = [{"id": li["id"], "project": self._brief("projects", li["project_id"], "name", "code"),
                  **{k: li[k] for k in ("kind", "description", "quantity", "unit_price", "amount", "taxed", "taxed2")}}
                 for li in row["line_items"]]
        return {"id": row["id"], "client": {"id": row["client_id"], "name": client.get("name")}, "line_items": lines,
                "estimate": None, "retainer": None, "creator": {"id": OWNER["id"], "name": OWNER["name"]},
                "client_key": row["client_key"], "number": row["number"], "purchase_order": row["purchase_order"],
                "amount": sums["amount"], "due_amount": sums["due_amount"], "tax": row["tax"],
                "tax_amount": sums["tax_amount"], "tax2": row["tax2"], "tax2_amount": sums["tax2_amount"],
                "discount": row["discount"], "discount_amount": sums["discount_amount"], "subject": row["subject"],
                "notes": row["notes"], "currency": row["currency"], "state": row["state"],
                "period_start": row["period_start"], "period_end": row["period_end"],
                "issue_date": row["issue_date"], "due_date": row["due_date"], "payment_term": row["payment_term"],
                "payment_options": [], "sent_at": row["sent_at"], "paid_at": row["paid_at"],
                "paid_date": row["paid_date"], "closed_at": row["closed_at"], "recurring_invoice_id": None}


__all__ = ["BillingStore", "HarvestError"]
