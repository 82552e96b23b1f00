"""The Harvest sandbox's invoicing (reference 3.2, 3.7, 3.8): invoice rows and the import of time and
expenses here (``InvoiceStore``); states, payments, messages and the rendering in ``ledger``.

* Create with free-form ``line_items`` and/or ``line_items_import`` (``project_ids`` of the invoice's
  client; ``time`` / ``expenses`` with ``summary_type`` "detailed" (the only one simulated) and an
  optional ``from`` / ``to``). The import takes the projects' billable, unbilled, not running entries of
  the range (only approved ones, ``is_closed``, when the company's approval feature is on), makes one
  line per entry ("Service": quantity = hours, unit_price = billable rate; "Expense": the total cost)
  and bills each entry: ``is_billed``, ``invoice {id, number}``, the invoiced lock.
* ``number`` is unique per account (auto-numbered when absent). ``amount`` is the lines plus tax
  (percentages ``tax`` / ``tax2`` of the taxed lines) minus ``discount``; ``due_amount`` is the amount
  less the payments. Recording a payment that leaves nothing due makes an open invoice paid (``paid_at``,
  ``paid_date``); deleting one re-opens it. Payments bump the invoice's ``updated_at``.
* States: ``send`` draft → open, ``close`` open → closed, ``re-open`` closed → open, ``draft`` open →
  draft. Only drafts can be deleted (their entries are un-billed). Payments cannot be edited.
  Rules and messages marked [unverified] are the sandbox's guess at Harvest's answer.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from accord.connectors.harvest.convert import format_time
from accord.sandboxes.harvest.store import (
    LOCKED_APPROVED,
    LOCKED_INVOICED,
    HarvestError,
    HarvestStore,
    invalid,
)

INVOICE_FIELDS: dict[str, Any] = {
    "client_id": None, "number": None, "purchase_order": None, "tax": None, "tax2": None, "discount": None,
    "subject": None, "notes": None, "currency": None, "issue_date": None, "due_date": None, "payment_term": None}
BILLING = ("invoices", "invoice_payments", "invoice_messages")
CENT = Decimal("0.01")
_LINE_FIELDS = ("project_id", "kind", "description", "quantity", "unit_price", "taxed", "taxed2")


def decimal_of(value: Any) -> Decimal:
    return Decimal(str(value or 0))


def money(value: Decimal) -> float:
    return float(value.quantize(CENT))


def invoice_filter(rows: Iterable[dict[str, Any]], q: Any) -> list[dict[str, Any]]:
    """The list filters of ``GET /v2/invoices``: client_id, project_id, state, from / to (issue_date)."""
    out = list(rows)
    if q.get("client_id"):
        out = [r for r in out if str(r["client_id"]) == q["client_id"]]
    if q.get("project_id"):
        out = [r for r in out if any(str(li.get("project_id")) == q["project_id"] for li in r["line_items"])]
    if q.get("state"):
        out = [r for r in out if r["state"] == q["state"]]
    if q.get("from"):
        out = [r for r in out if str(r["issue_date"]) >= q["from"]]
    if q.get("to"):
        out = [r for r in out if str(r["issue_date"]) <= q["to"]]
    return out


class InvoiceStore(HarvestStore):
    """``HarvestStore`` plus invoice rows and the import of time and expenses (``ledger.BillingStore``
    adds states, payments, messages and the rendering)."""

    def __init__(self, now: Callable[[], float], *, default_user_id: int | None = None,
                 approval_feature: Callable[[], bool] = lambda: True) -> None:
        super().__init__(now, default_user_id=default_user_id)
        self.approval_feature = approval_feature
        self.tables.update({name: {} for name in BILLING})
        self._ids = {"invoices": 13_150_000, "invoice_payments": 10_336_000, "invoice_messages": 27_835_000,
                     "line_items": 53_341_000}

    def _new_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _today(self) -> str:
        return format_time(self.now())[:10]

    # -- the generic entry points dispatch here ------------------------------------------------------

    def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        if resource == "invoices":
            return self.create_invoice(body)
        return super().create(resource, body)

    def update(self, resource: str, rid: int | str, body: dict[str, Any], *, system: bool = False) -> dict[str, Any]:
        if resource == "invoices":
            return self.update_invoice(rid, body)
        if resource in BILLING:
            raise HarvestError(405, {"message": "Method Not Allowed"})
        return super().update(resource, rid, body, system=system)

    def delete(self, resource: str, rid: int | str) -> None:
        if resource == "invoices":
            return self.delete_invoice(rid)
        if resource == "clients" and any(str(i["client_id"]) == str(rid) for i in self.tables["invoices"].values()):
            raise invalid("This client has invoices; archive it instead")
        return super().delete(resource, rid)

    # -- invoices --------------------------------------------------------------------------------------

    def _values(self, body: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HarvestError(400, {"message": "Invalid JSON Payload"})
        values = {k: v for k, v in body.items() if k in INVOICE_FIELDS}
        merged = {**INVOICE_FIELDS, **(row or {}), **values}
        client_id = merged["client_id"]
        if not str(client_id).isdigit() or int(client_id) not in self.tables["clients"]:
            raise invalid("Client can't be blank")
        if row is None and merged["number"] is None:
            merged["number"] = self._auto_number()
        if merged["number"] is None or not str(merged["number"]).strip():
            raise invalid("Number can't be blank")
        merged["number"] = str(merged["number"])
        rid = None if row is None else row["id"]
        if any(i["number"] == merged["number"] for i in self.tables["invoices"].values() if i["id"] != rid):
            raise invalid("Number has already been taken")
        self._check_dates({"starts_on": merged["issue_date"], "ends_on": merged["due_date"]})
        merged["issue_date"] = merged["issue_date"] or self._today()
        merged["due_date"] = merged["due_date"] or merged["issue_date"]
        merged["currency"] = merged["currency"] or self.tables["clients"][int(merged["client_id"])]["currency"]
        merged["payment_term"] = merged["payment_term"] or ("custom" if "due_date" in values else "upon receipt")
        merged["client_id"] = int(merged["client_id"])
        return merged

    @staticmethod
    def _check_dates(row: dict[str, Any]) -> None:
        for key in ("starts_on", "ends_on"):
            if row.get(key) is not None:
                try:
                    dt.date.fromisoformat(str(row[key]))
                except ValueError:
                    label = "Issue date" if key == "starts_on" else "Due date"
                    raise invalid(f"{label} is not a valid date") from None

    def _auto_number(self) -> str:
        numbers = [int(i["number"]) for i in self.tables["invoices"].values() if str(i["number"]).isdigit()]
        return str(max(numbers, default=1000) + 1)

    def _line(self, item: Any, old: dict[str, Any] | None = None) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise HarvestError(400, {"message": "Invalid JSON Payload"})
        line = {**(old or {"quantity": 1.0, "taxed": False, "taxed2": False, "description": None,
                           "project_id": None}), **{k: item[k] for k in _LINE_FIELDS if k in item}}
        if not line.get("kind"):
            raise invalid("Kind can't be blank")
        if line.get("unit_price") is None:
            raise invalid("Unit price can't be blank")
        if line["project_id"] is not None and int(line["project_id"]) not in self.tables["projects"]:
            raise invalid("Project can't be blank")
        line["id"] = old["id"] if old else self._new_id("line_items")
        line["amount"] = money(decimal_of(line["quantity"]) * decimal_of(line["unit_price"]))
        return line

    def create_invoice(self, body: dict[str, Any]) -> dict[str, Any]:
        row = self._values(body, None)
        lines = [self._line(item) for item in body.get("line_items") or []]
        imported, marks, period = self._plan_import(row["client_id"], body.get("line_items_import"))
        stamp = self._stamp(None)
        row.update(id=self._new_id("invoices"), state="draft", line_items=lines + imported,
                   period_start=period[0], period_end=period[1], sent_at=None, paid_at=None, paid_date=None,
                   closed_at=None, client_key=secrets.token_hex(20), created_at=stamp, updated_at=stamp)
        self.tables["invoices"][row["id"]] = row
        for resource, entry_id in marks:
            self.update(resource, entry_id, {"is_billed": True, "invoice": row["id"], "is_closed": True,
                                             "is_locked": True, "locked_reason": LOCKED_INVOICED}, system=True)
        return row

    def update_invoice(self, rid: int | str, body: dict[str, Any]) -> dict[str, Any]:
        row = self.get("invoices", rid)
        merged = self._values(body, row)
        if "line_items" in body:
            merged["line_items"] = self._edit_lines(row["line_items"], body["line_items"])
        merged["updated_at"] = self._stamp(row)
        self.tables["invoices"][row["id"]] = merged
        return merged

    def _edit_lines(self, lines: list[dict[str, Any]], edits: Any) -> list[dict[str, Any]]:
        out = [dict(li) for li in lines]
        for item in edits if isinstance(edits, list) else []:
            if not isinstance(item, dict) or item.get("id") is None:
                out.append(self._line(item))
                continue
            index = next((i for i, li in enumerate(out) if li["id"] == item["id"]), None)
            if index is None:
                raise invalid("Line item not found")  # [unverified]
            if item.get("_destroy"):
                del out[index]
            else:
                out[index] = self._line(item, out[index])
        return out

    def delete_invoice(self, rid: int | str) -> None:
        row = self.get("invoices", rid)
        if row["state"] != "draft":
            raise invalid("Only draft invoices can be deleted")  # [unverified]
        self.unbill(row["id"])
        for name in ("invoice_payments", "invoice_messages"):
            for child in [c["id"] for c in self.tables[name].values() if c["invoice_id"] == row["id"]]:
                del self.tables[name][child]
        del self.tables["invoices"][row["id"]]

    def unbill(self, invoice_id: int) -> None:
        """Time and expenses billed by ``invoice_id`` go back to unbilled (approved ones stay locked)."""
        for resource in ("time_entries", "expenses"):
            for entry in [r for r in self.tables[resource].values() if r.get("invoice") == invoice_id]:
                approved = bool(entry["is_closed"])
                self.update(resource, entry["id"], {"is_billed": False, "invoice": None, "is_locked": approved,
                                                    "locked_reason": LOCKED_APPROVED if approved else None},
                            system=True)

    # -- import ----------------------------------------------------------------------------------------

    def _plan_import(self, client_id: int, spec: Any) -> tuple[list[dict[str, Any]], list[tuple[str, int]],
                                                                tuple[str | None, str | None]]:
        """The lines, the entries to bill and the period of a ``line_items_import`` (nothing changed yet)."""
        if spec is None:
            return [], [], (None, None)
        ids = spec.get("project_ids") if isinstance(spec, dict) else None
        if not isinstance(ids, list) or not ids:
            raise invalid("Project ids can't be blank")
        for pid in ids:
            project = self.tables["projects"].get(int(pid)) if str(pid).isdigit() else None
            if project is None or project["client_id"] != client_id:
                raise invalid("Projects must belong to the invoice's client")  # [unverified]
        lines: list[dict[str, Any]] = []
        marks: list[tuple[str, int]] = []
        period: tuple[str | None, str | None] = (None, None)
        for resource, key in (("time_entries", "time"), ("expenses", "expenses")):
            part = spec.get(key)
            if part is None:
                continue
            if not isinstance(part, dict) or part.get("summary_type") != "detailed":
                raise invalid(f"{key.capitalize()} summary type: only \"detailed\" is simulated")
            start, end = part.get("from"), part.get("to")
            self._check_dates({"starts_on": start, "ends_on": end})
            rows = sorted(self._billable(resource, {int(p) for p in ids}, start, end),
                          key=lambda r: (r["spent_date"], r["id"]))
            lines += [self._entry_line(resource, r) for r in rows]
            marks += [(resource, r["id"]) for r in rows]
            if key == "time" or period == (None, None):
                days = [str(r["spent_date"]) for r in rows]
                period = (start or min(days, default=None), end or max(days, default=None))
        return lines, marks, period

    def _billable(self, resource: str, project_ids: set[int], start: str | None,
                  end: str | None) -> list[dict[str, Any]]:
        out = []
        for row in self.tables[resource].values():
            if row["project_id"] not in project_ids or row["is_billed"] or row.get("is_running"):
                continue
            if (start and row["spent_date"] < start) or (end and row["spent_date"] > end):
                continue
            if self.approval_feature() and not row["is_closed"]:
                continue
            if self.render(resource, row)["billable"]:
                out.append(row)
        return out

    def _entry_line(self, resource: str, row: dict[str, Any]) -> dict[str, Any]:
        wire = self.render(resource, row)
        if resource == "time_entries":
            label = f"{wire['project']['name']}: {wire['task']['name']}"
            quantity, price, kind = row["hours"], wire["billable_rate"] or 0.0, "Service"
        else:
            label = f"{wire['project']['name']}: {wire['expense_category']['name']}"
            quantity, price, kind = 1.0, row["total_cost"] or 0.0, "Expense"
        notes = f" – {row['notes']}" if row.get("notes") else ""
        return self._line({"project_id": row["project_id"], "kind": kind, "quantity": quantity,
                           "unit_price": price, "description": f"[{row['spent_date']}] {label}{notes}"})

    def bill_entries(self, resource: str, entry_ids: list[int]) -> list[int]:
        """Invoice these entries as they are (the ``bill`` helper: no billable or approval check): one
        open invoice per client; returns the invoice ids."""
        by_client: dict[int, list[dict[str, Any]]] = {}
        for rid in entry_ids:
            row = self.get(resource, rid)
            by_client.setdefault(self.tables["projects"][row["project_id"]]["client_id"], []).append(row)
        made = []
        for client_id, rows in by_client.items():
            days = sorted(str(r["spent_date"]) for r in rows)
            invoice = self.create_invoice({"client_id": client_id})
            invoice.update(line_items=[self._entry_line(resource, r) for r in rows], period_start=days[0],
                           period_end=days[-1], state="open", sent_at=format_time(self.now()))
            for row in rows:
                self.update(resource, row["id"], {"is_billed": True, "invoice": invoice["id"], "is_closed": True,
                                                  "is_locked": True, "locked_reason": LOCKED_INVOICED}, system=True)
            made.append(invoice["id"])
        return made
