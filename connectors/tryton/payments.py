"""How the ``TrytonConnector`` reads customer payments: ``payment`` ← the ``account.move.line`` that pays a
customer invoice (one of an ``out`` invoice's payment lines, as the pay wizard or a statement makes them).

=========== ================= =========================================================== =================
canonical   Tryton model      fields (read only)                                           Accord gid
=========== ================= =========================================================== =================
payment     account.move.line invoice ← invoice_payment (the invoice it pays); account ←   none: payments
            (paying an ``out`` party; paid_date ← date; amount ← credit − debit (a refund is are made in
            invoice)          negative); currency ← currency.code (the company's);         Tryton
                              reference ← the move's description
=========== ================= =========================================================== =================

Read only: a write is refused (``Permanent``, code ``read_only``) and nothing is sent. A payment line
removed from its invoice (the payment cancelled in Tryton) is no longer listed: the id scan finds it.

Stateless: nothing to survive a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

from accord.connectors.base import SourceRecord, WriteOp
from accord.connectors.errors import Permanent
from accord.connectors.tryton import psa
from accord.connectors.tryton.entities import EntityIO
from accord.connectors.tryton.psa import ref
from accord.connectors.tryton.sales import code_of, dec, iso

MOVE_LINE = "account.move.line"
PAYMENT_FIELDS = ("invoice_payment", "party", "date", "debit", "credit", "currency.code", "move_description_used",
                  "write_date", "create_date")


def payment_fields(row: dict[str, Any]) -> dict[str, Any]:
    """Canonical payment fields of a move line paying a customer invoice."""
    credit, debit = row.get("credit"), row.get("debit")
    amount = (credit if isinstance(credit, Decimal) else Decimal(0)) - (
        debit if isinstance(debit, Decimal) else Decimal(0))
    return {"invoice": ref(row.get("invoice_payment")), "account": ref(row.get("party")),
            "paid_date": iso(row.get("date")), "amount": dec(amount), "currency": code_of(row),
            "reference": row.get("move_description_used") or None}


class PaymentIO(EntityIO):
    """``payment`` ← ``account.move.line`` paying an ``out`` invoice (read only)."""

    model = MOVE_LINE
    fields = PAYMENT_FIELDS
    read_only: ClassVar[bool] = True

    def domain(self) -> list[Any]:
        return [["invoice_payments.type", "=", "out"]]

    def to_canonical(self, row: dict[str, Any]) -> SourceRecord:
        version = psa.version_of(row)
        return SourceRecord(id=str(row["id"]), version=version, fields=payment_fields(row), gid=None,
                            modified_ms=version // 1000)

    def gid_domain(self, gids: Sequence[str]) -> list[Any]:
        return [["id", "=", -1]]  # Accord never makes a payment in Tryton

    def refuse(self, op: WriteOp) -> Permanent:
        return Permanent(psa.SYSTEM, f"payment {op.gid}: Tryton's payments are read only for Accord (they are "
                                     "recorded in Tryton on the invoice); make Tryton the payment's owner or drop "
                                     "the flow that writes it", code="read_only")

    async def create(self, op: WriteOp) -> int:
        raise self.refuse(op)

    async def update(self, op: WriteOp, current: dict[str, Any]) -> None:
        raise self.refuse(op)
