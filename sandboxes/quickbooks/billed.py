"""What an invoice bills: the time and the billable expenses its sales lines link, the check that
nothing is billed twice, and the status changes billing causes.

A sales line bills a TimeActivity through ``LinkedTxn {"TxnType": "TimeActivity", "TxnId": ...}`` and an
expense through ``LinkedTxn {"TxnType": "Purchase", "TxnId": ..., "TxnLineId": ...}``. The reference
(api-wire-formats §4) documents only the TimeActivity link; how QBO links a billable expense to an
invoice line is not documented there, so the sandbox uses TxnType "Purchase" (``TxnLineId``, the
expense line's Id, is optional: without it the link covers every expense line of the Purchase that
names a customer). Creating or changing an invoice marks what it newly links HasBeenBilled; a link
removed (by an update, a void or a delete) makes the time or expense line Billable again. Side-effect
changes go through ``Realm.touch`` (SyncToken and LastUpdatedTime move, a change event is emitted).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from accord.sandboxes.quickbooks.rulebase import (
    BILLABLE,
    BILLED,
    EXPENSE_LINE,
    bad_ref,
    business,
    live,
)

if TYPE_CHECKING:
    from accord.sandboxes.quickbooks.store import Realm

TIME, PURCHASE = "TimeActivity", "Purchase"
Link = tuple[str, str, str | None]  # (TxnType, TxnId, TxnLineId)


def line_links(line: Mapping[str, Any]) -> set[Link]:
    """The time and expense links of one invoice line."""
    out: set[Link] = set()
    for link in line.get("LinkedTxn") or []:
        kind = link.get("TxnType")
        if kind == TIME:
            out.add((TIME, str(link.get("TxnId")), None))
        elif kind == PURCHASE:
            part = link.get("TxnLineId")
            out.add((PURCHASE, str(link.get("TxnId")), str(part) if part is not None else None))
    return out


def invoice_links(wire: Mapping[str, Any] | None) -> set[Link]:
    return {x for line in (wire or {}).get("Line") or [] for x in line_links(line)}


def expense_lines(purchase: Mapping[str, Any], line_id: str | None) -> list[dict[str, Any]]:
    """The expense lines a link covers: the one with ``line_id``, else every line naming a customer."""
    return [line for line in purchase.get("Line") or [] if line.get("DetailType") == EXPENSE_LINE
            and (str(line.get("Id")) == line_id if line_id is not None
                 else (line.get(EXPENSE_LINE) or {}).get("CustomerRef") is not None)]


def check_line(realm: Realm, line: Mapping[str, Any], invoice_id: str) -> None:
    """Refuse a link to a missing record (2500) or to one another invoice already billed (6000)."""
    mine = invoice_links(live(realm, "Invoice", invoice_id))
    for kind, txn_id, line_id in sorted(line_links(line), key=str):
        if kind == TIME:
            time = live(realm, TIME, txn_id)
            if time is None:
                raise bad_ref("Line.LinkedTxn", txn_id, TIME)
            billed = time.get("BillableStatus") == BILLED
        else:
            purchase = live(realm, PURCHASE, txn_id)
            if purchase is None:
                raise bad_ref("Line.LinkedTxn", txn_id, PURCHASE)
            covered = expense_lines(purchase, line_id)
            if not covered:
                raise bad_ref("Line.LinkedTxn.TxnLineId", line_id, f"expense line of Purchase {txn_id}",
                              "link an AccountBasedExpenseLineDetail line that names a customer")
            billed = any((x.get(EXPENSE_LINE) or {}).get("BillableStatus") == BILLED for x in covered)
        if billed and (kind, txn_id, line_id) not in mine:
            raise business(f"{kind} {txn_id} has already been billed on another invoice")


def mark(realm: Realm, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, now: float) -> None:
    """Bill what ``new`` links and ``old`` did not; make billable again what only ``old`` linked."""
    before, after = invoice_links(old), invoice_links(new)
    changes = [(x, BILLABLE) for x in before - after] + [(x, BILLED) for x in after - before]
    for (kind, txn_id, _), status in sorted(changes, key=lambda c: (c[1] == BILLED, str(c[0]))):
        if kind == TIME and live(realm, TIME, txn_id) is not None:
            realm.touch(TIME, txn_id, {"BillableStatus": status}, now)
    for txn_id in sorted({txn for (kind, txn, _), _s in changes if kind == PURCHASE}, key=lambda i: (len(i), i)):
        purchase = live(realm, PURCHASE, txn_id)
        if purchase is None:
            continue
        lines = copy.deepcopy(purchase.get("Line") or [])
        for (kind, txn, line_id), status in sorted(changes, key=lambda c: c[1] == BILLED):
            if kind == PURCHASE and txn == txn_id:
                for line in expense_lines({"Line": lines}, line_id):
                    line[EXPENSE_LINE]["BillableStatus"] = status
        realm.touch(PURCHASE, txn_id, {"Line": lines}, now)
