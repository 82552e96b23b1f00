"""The Tryton demo firm's people at work: sales in the CRM sandbox (the ``sandboxes`` profile's sales
people), and in Tryton, over JSON-RPC as its users would: project managers set a provisioned project's
billing (invoiced on timesheets at the consulting rate), consultants log time on its tasks, finance
invoices a project's time, posts the invoice and records payments.

Stateless apart from the counts of what was done: Tryton and the CRM sandbox hold the rest.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any, Protocol

import httpx
from loguru import logger

from accord.sandboxes.firm.activity import Activity
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.tryton.bootstrap import Rpc

RATE = Decimal("120")


class TrytonWorld(Protocol):
    """What the people work in: the CRM sandbox and Tryton (a logged-in user's session)."""

    crm: SalesforceState
    ids: dict[str, Any]  # the template's bootstrap ids and the demo's seed (employees, payment method)

    @property
    def rpc(self) -> Rpc: ...


# (upper bound of the roll, action): how often each thing happens in a day of the firm
ACTIONS = ((0.10, "_crm_create"), (0.30, "_crm_edit"), (0.45, "_crm_deal_moves"), (0.75, "_tryton_log_time"),
           (0.88, "_tryton_invoice"), (1.01, "_tryton_payment"))


class TrytonActivity(Activity):
    """Sales edit, add and win deals in the CRM; consultants, managers and finance work in Tryton.
    ``step()`` performs one random action; with nothing to do yet, an action falls back to an earlier
    step of the firm's flow (no project yet: a deal moves on)."""

    world: TrytonWorld  # type: ignore[assignment]

    def __init__(self, world: TrytonWorld, rng: random.Random) -> None:
        super().__init__(world, rng)  # type: ignore[arg-type]

    def step(self) -> str:
        """One action; one Tryton refused (a user's error dialog) is logged and counted, and work goes on."""
        roll = self.rng.random()
        name = next(name for bound, name in ACTIONS if roll < bound)
        try:
            action: str = getattr(self, name)()
        except (RuntimeError, httpx.HTTPError) as exc:
            logger.warning("demo: {} was refused by Tryton: {}", name, str(exc)[:300])
            action = "tryton: an action refused"
        self.done[action] = self.done.get(action, 0) + 1
        return action

    @property
    def rpc(self) -> Rpc:
        return self.world.rpc

    def _search(self, model: str, domain: list[Any], fields: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.rpc.call(f"model.{model}.search_read", domain, 0, None,
                                                   [["id", "ASC"]], fields)
        return rows

    def _tryton_log_time(self) -> str:
        """A consultant logs time on a task of a provisioned project (its manager sets the billing first)."""
        tasks = self._search("project.work", [["type", "=", "task"], ["comment", "like", "%accord:%"],
                                              ["timesheet_works", "!=", None]], ["parent", "timesheet_works"])
        if not tasks:
            return self._crm_deal_moves()
        task = self.rng.choice(tasks)
        self._bill_on_timesheets(self._project_of(task))
        employee = self.rng.choice(self.world.ids["employees"])
        self.rpc.call("model.timesheet.line.create", [{
            "employee": employee, "work": task["timesheet_works"][0], "date": dt.date.today(),
            "duration": dt.timedelta(hours=self.rng.choice((1.0, 1.5, 2.0, 4.0))), "description": "Client work"}])
        return "tryton: time logged"

    def _project_of(self, task: dict[str, Any]) -> int:
        work = task
        while True:
            parent = self.rpc.call("model.project.work.read", [int(work["parent"])], ["type", "parent"])[0]
            if parent["type"] == "project" or not parent.get("parent"):
                return int(parent["id"])
            work = parent

    def _bill_on_timesheets(self, project: int) -> None:
        """The project manager's set-up: the project invoiced on timesheets, its works (tasks provisioned
        since included) at the consulting rate."""
        unpriced = self.rpc.call("model.project.work.search", [["parent", "child_of", [project]],
                                                                ["product", "=", None]], 0, None, None)
        if unpriced:
            self.rpc.call("model.project.work.write", unpriced, {"product": self.world.ids["product"],
                                                                 "list_price": RATE})
        row = self.rpc.call("model.project.work.read", [project], ["project_invoice_method"])[0]
        if row["project_invoice_method"] != "timesheet":
            self.rpc.call("model.project.work.write", [project], {"project_invoice_method": "timesheet"})

    def _tryton_invoice(self) -> str:
        """Finance invoices a project's time (a draft invoice), then posts it: it is numbered and open."""
        ready = self._search("project.work", [["type", "=", "project"], ["project_invoice_method", "=", "timesheet"]],
                             ["amount_to_invoice"])
        ready = [p for p in ready if (p.get("amount_to_invoice") or 0) > 0]
        if not ready:
            return self._tryton_log_time()
        self.rpc.call("model.project.work.invoice", [int(self.rng.choice(ready)["id"])])
        drafts = self.rpc.call("model.account.invoice.search", [["type", "=", "out"], ["state", "=", "draft"]],
                               0, None, None)
        if drafts:
            self.rpc.call("model.account.invoice.post", drafts)
        return "tryton: invoice posted"

    def _tryton_payment(self) -> str:
        """Finance records a customer's payment of an open invoice (in full, or half of it)."""
        open_invoices = self._search("account.invoice", [["type", "=", "out"], ["state", "=", "posted"]],
                                     ["amount_to_pay"])
        open_invoices = [i for i in open_invoices if (i.get("amount_to_pay") or 0) > 0]
        if not open_invoices:
            return self._tryton_invoice()
        invoice = self.rng.choice(open_invoices)
        due = Decimal(invoice["amount_to_pay"])
        amount = due if self.rng.random() < 0.7 else (due / 2).quantize(Decimal("0.01"))
        pay(self.rpc, int(invoice["id"]), amount, self.world.ids["payment_method"])
        return "tryton: payment received"


def pay(rpc: Rpc, invoice: int, amount: Decimal, method: int) -> None:
    """The invoice pay wizard, as a user runs it (a partial payment leaves the rest to pay)."""
    ctx = {**rpc.context, "active_model": "account.invoice", "active_id": invoice, "active_ids": [invoice]}
    sid, _, _ = rpc.post("wizard.account.invoice.pay.create", [ctx])
    try:
        view = rpc.post("wizard.account.invoice.pay.execute", [sid, {}, "start", ctx])["view"]
        start = {k: v for k, v in view["defaults"].items() if not k.endswith(".")}  # "company." etc.: display
        start.update(amount=amount, payment_method=method, date=dt.date.today(), description="customer payment")
        answer = rpc.post("wizard.account.invoice.pay.execute", [sid, {"start": start}, "choice", ctx])
        if "ask" in (answer.get("view") or {}).get("state", ""):  # partial: keep the rest to pay
            ask = {k: v for k, v in answer["view"]["defaults"].items() if not k.endswith(".")}
            ask["type"] = "partial"
            rpc.post("wizard.account.invoice.pay.execute", [sid, {"start": start, "ask": ask}, "pay", ctx])
    finally:
        rpc.post("wizard.account.invoice.pay.delete", [sid, ctx])


def seed_tryton(rpc: Rpc, rng: random.Random, *, consultants: int, currencies: list[str]) -> dict[str, Any]:
    """What the firm keeps in Tryton before Accord starts: its billing currencies, consultants (employees)
    and a payment method for customer payments. The ids of what it made."""
    known = {r["code"] for r in rpc.call("model.currency.currency.search_read", [], 0, None, None, ["code"])}
    new = [{"name": code, "symbol": code, "code": code, "rounding": Decimal("0.01"), "digits": 2}
           for code in currencies if code not in known]
    if new:
        rpc.call("model.currency.currency.create", new)
    company = rpc.context["company"]
    first = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo")
    last = ("Okafor", "Lindqvist", "Moreau", "Patel", "Rossi", "Tanaka", "Weber", "Young")
    names = rng.sample([f"{a} {b}" for a in first for b in last], consultants)
    parties = rpc.call("model.party.party.create", [{"name": name} for name in names])
    employees = rpc.call("model.company.employee.create", [{"party": p, "company": company} for p in parties])
    cash = rpc.one("account.account", [["code", "=", "1.1.1"]])
    method, = rpc.call("model.account.invoice.payment.method.create", [{
        "name": "Bank transfer", "company": company, "journal": rpc.one("account.journal", [["type", "=", "cash"]]),
        "debit_account": cash, "credit_account": cash}])
    return {"employees": list(employees), "payment_method": method}
