"""The firm at work: sales edits accounts, contacts and deals in the CRM, project managers start projects and
consultants log time in the PSA, managers approve it, finance bills approved work and records payments.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from accord.sandboxes.firm.world import World
from accord.sandboxes.harvest.sandbox import HarvestState
from accord.sandboxes.harvest.seed import new_project
from accord.sandboxes.salesforce.seed import (
    account_fields,
    contact_fields,
    next_stage,
)


class _PsaWork:
    """What a project manager and consultants do in the PSA."""

    world: World
    rng: random.Random

    def _synced_clients(self) -> list[dict[str, Any]]:
        return [c for c in self.world.psa.records("clients")
                if c.get("is_active") and "accord:" in str(c.get("address") or "")]

    def _psa_new_project(self) -> str:
        clients = self._synced_clients()
        if not clients:
            return self._crm_edit()  # type: ignore[attr-defined, no-any-return]
        client = self.rng.choice(clients)
        # QuickBooks needs unique customer names and projects are sub-customers there, so the firm numbers
        # its projects (two "Lumen Discovery" projects would be refused with code 6240)
        number = len(self.world.psa.records("projects")) + 1
        name = f"{client['name'].split()[0]} {self.rng.choice(('Discovery', 'Implementation', 'Support'))} P{number:03d}"
        new_project(self.world.psa, self.rng, client["id"], client["name"], self.world.psa_seed, name=name)
        return "psa: project started"

    def _psa_log_time(self) -> str:
        assignments = [a for a in self.world.psa.records("user_assignments") if a.get("is_active", True)]
        projects = {p["id"]: p for p in self.world.psa.records("projects") if p.get("is_active")}
        assignments = [a for a in assignments if a["project"]["id"] in projects]
        if not assignments:
            return self._psa_new_project()
        assignment = self.rng.choice(assignments)
        task = self.rng.choice(self.world.psa_seed["tasks"][:4])
        today = date_today(self.world.psa)
        self.world.psa.log_time(assignment["user"]["id"], assignment["project"]["id"], task, today,
                                self.rng.choice((1.0, 1.5, 2.0, 4.0)), "Client work")
        return "psa: time logged"

    def _psa_log_expense(self) -> str:
        assignments = [a for a in self.world.psa.records("user_assignments") if a.get("is_active", True)]
        projects = {p["id"] for p in self.world.psa.records("projects") if p.get("is_active")}
        assignments = [a for a in assignments if a["project"]["id"] in projects]
        if not assignments:
            return self._psa_new_project()
        assignment = self.rng.choice(assignments)
        self.world.psa.user_create("expenses", {
            "project_id": assignment["project"]["id"], "user_id": assignment["user"]["id"],
            "expense_category_id": self.rng.choice(self.world.psa_seed["expense_categories"][:3]),
            "spent_date": date_today(self.world.psa), "total_cost": float(self.rng.choice((45, 120, 380))),
            "notes": "Client visit", "billable": True})
        return "psa: expense logged"

    def _psa_approve(self) -> str:
        held = self._billing_in_flight()  # type: ignore[attr-defined]
        drafts = [t["id"] for t in self.world.psa.records("time_entries")
                  if not t.get("is_closed") and t["project"]["name"] not in held]
        expenses = [e["id"] for e in self.world.psa.records("expenses")
                    if not e.get("is_closed") and e["project"]["name"] not in held]
        if not drafts and not expenses:
            return self._psa_log_time()
        if drafts:
            self.world.psa.approve_time(drafts)
        if expenses:
            self.world.psa.approve_time(expenses, resource="expenses")
        return "psa: timesheets and expenses approved"


def date_today(state: HarvestState) -> str:
    import datetime as dt

    return dt.date.fromtimestamp(state.clock.now()).isoformat()


class FinanceWork:
    """What a bookkeeper does in the ERP: bill a project's approved time and expenses, record payments."""

    world: World
    rng: random.Random

    def _erp_billing_run(self) -> str:
        """Bill a project once all its approved billable work has reached the ERP (the cut-off: an
        invoice must hold exactly what the PSA will mark billed)."""
        active = {c["Id"] for c in self.world.erp.records("Customer") if not c.get("Job") and c.get("Active", True)}
        projects = [p for p in self.world.erp.records("Customer") if p.get("Job") and p.get("Active", True)
                    and ref(p, "ParentRef") in active]
        billable = {ref(w, "CustomerRef") for w in self.world.erp.records("TimeActivity")
                    if w.get("BillableStatus") == "Billable"}
        ready = [p for p in projects if p["Id"] in billable and self._all_work_in_erp(p)]
        if not ready:
            return self._psa_approve()  # type: ignore[attr-defined, no-any-return]
        invoice = self.world.erp.billing_run(self.rng.choice(ready)["Id"])
        return "erp: billing run" if invoice else "erp: billing run (nothing to bill)"

    def _all_work_in_erp(self, erp_project: dict[str, Any]) -> bool:
        psa_project = next((p["id"] for p in self.world.psa.records("projects")
                            if p["name"] == erp_project["DisplayName"]), None)
        if psa_project is None:
            return False
        approved = sum(1 for r in ("time_entries", "expenses") for w in self.world.psa.records(r)
                       if w["project"]["id"] == psa_project and w.get("is_closed") and w.get("billable")
                       and not w.get("is_billed"))
        in_erp = sum(1 for w in self.world.erp.records("TimeActivity")
                     if ref(w, "CustomerRef") == erp_project["Id"] and w.get("BillableStatus") == "Billable")
        in_erp += sum(1 for p in self.world.erp.records("Purchase") for line in p.get("Line") or []
                      if ref(line.get("AccountBasedExpenseLineDetail") or {}, "CustomerRef") == erp_project["Id"]
                      and (line.get("AccountBasedExpenseLineDetail") or {}).get("BillableStatus") == "Billable")
        return approved == in_erp

    def _billing_in_flight(self) -> set[str]:
        """Names of projects with an ERP invoice not yet in the PSA: managers hold approvals for them."""
        in_psa = {str(i["number"]) for i in self.world.psa.records("invoices")}
        names = {c["Id"]: c["DisplayName"] for c in self.world.erp.records("Customer") if c.get("Job")}
        return {names.get(ref(i, "ProjectRef") or "", "") for i in self.world.erp.records("Invoice")
                if str(i.get("DocNumber")) not in in_psa}

    def _erp_payment(self) -> str:
        open_invoices = [i for i in self.world.erp.records("Invoice") if Decimal(str(i.get("Balance") or 0)) > 0]
        if not open_invoices:
            return self._erp_billing_run()
        invoice = self.rng.choice(open_invoices)
        balance = Decimal(str(invoice["Balance"]))
        amount = balance if self.rng.random() < 0.7 else (balance / 2).quantize(Decimal("0.01"))
        self.world.erp.user_record_payment(invoice["Id"], float(amount), reference=f"ACH-{self.rng.randrange(10**6)}")
        return "erp: payment received"


# (upper bound of the roll, action): how often each thing happens in a day of the firm
WITH_PSA = ((0.10, "_crm_create"), (0.12, "_crm_new_contact"), (0.16, "_crm_deal_moves"), (0.35, "_crm_edit"),
            (0.38, "_crm_delete"), (0.55, "_erp_finance"), (0.63, "_psa_new_project"), (0.78, "_psa_log_time"),
            (0.83, "_psa_log_expense"), (0.91, "_psa_approve"), (0.96, "_erp_billing_run"), (1.01, "_erp_payment"))
CRM_AND_ERP = ((0.10, "_crm_create"), (0.55, "_crm_edit"), (0.60, "_crm_delete"), (1.01, "_erp_finance"))


class Activity(_PsaWork, FinanceWork):
    """People at work: sales edit and add clients in the CRM, finance sets tax ids and payment terms
    in the ERP, and (when the PSA is seeded) project managers start projects for synced clients,
    consultants log time and managers approve it, finance bills approved work and records payments.
    ``step()`` performs one random action."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.done: dict[str, int] = {}

    def step(self) -> str:
        roll = self.rng.random()
        table = WITH_PSA if self.world.psa_seed else CRM_AND_ERP
        action: str = getattr(self, next(name for bound, name in table if roll < bound))()
        self.done[action] = self.done.get(action, 0) + 1
        return action

    def _live_accounts(self) -> list[dict[str, Any]]:
        return self.world.crm.records("Account")

    def _crm_create(self) -> str:
        used = {str(r["Name"]) for r in self.world.crm.records("Account", include_deleted=True)}
        self.world.crm.user_create("Account", account_fields(self.rng, used,
                                                             multi_currency=self.world.crm.multi_currency))
        return "crm: new client"

    def _crm_edit(self) -> str:
        accounts = self._live_accounts()
        if not accounts:
            return self._crm_create()
        account = self.rng.choice(accounts)
        choice = self.rng.randrange(4)
        if choice == 0:
            slug = str(account["Name"]).split()[0].lower()
            self.world.crm.user_update("Account", account["Id"], {"Website": f"https://www.{slug}-{self.rng.randrange(99)}.example"})
            return "crm: website changed"
        if choice == 1:
            self.world.crm.user_update("Account", account["Id"],
                                       {"BillingStreet": f"{self.rng.randrange(1, 999)} Commerce Street"})
            return "crm: address changed"
        if choice == 2:
            self.world.crm.user_update("Account", account["Id"], {"Phone": f"+1 555 {self.rng.randrange(1000, 9999)}"})
            return "crm: phone changed (not synced)"
        base = str(account["Name"]).removesuffix(" Group")
        self.world.crm.user_update("Account", account["Id"], {"Name": f"{base} Group"})
        return "crm: renamed"

    def _crm_new_contact(self) -> str:
        accounts = self._live_accounts()
        if not accounts:
            return self._crm_create()
        self.world.crm.user_create("Contact", contact_fields(self.rng, self.rng.choice(accounts)))
        return "crm: new contact"

    def _crm_deal_moves(self) -> str:
        """A sales rep moves an open deal on (sometimes to Closed Won: it becomes an ERP estimate)."""
        deals = [o for o in self.world.crm.records("Opportunity") if not str(o["StageName"]).startswith("Closed")]
        if not deals:
            return self._crm_new_contact()
        deal = self.rng.choice(deals)
        stage = next_stage(str(deal["StageName"]), self.rng)
        self.world.crm.user_update("Opportunity", deal["Id"], {"StageName": stage})
        return "crm: deal won" if stage == "Closed Won" else "crm: deal moved"

    def _crm_delete(self) -> str:
        """Sales delete a prospect; a client with projects or invoices has history and is kept (a firm's
        validation rule: deleting it would cascade-delete its invoices in the CRM)."""
        with_work = {p["client"]["name"] for p in self.world.psa.records("projects")}
        billed = {i["Account__c"] for i in self.world.crm.records("Invoice__c")}
        accounts = [a for a in self._live_accounts() if a["Name"] not in with_work and a["Id"] not in billed]
        if len(self._live_accounts()) < 5 or not accounts:
            return self._crm_create()
        self.world.crm.user_delete("Account", self.rng.choice(accounts)["Id"])
        return "crm: client deleted"

    def _erp_finance(self) -> str:
        customers = [c for c in self.world.erp.records("Customer") if c.get("Active", True)]
        if not customers:
            return self._crm_edit()
        customer = self.rng.choice(customers)
        if self.rng.random() < 0.5:
            country = (customer.get("BillAddr") or {}).get("Country") or "US"
            tax = f"{country}{self.rng.randrange(10**8, 10**9)}"
            self.world.erp.user_update("Customer", customer["Id"], {"PrimaryTaxIdentifier": tax})
            return "erp: tax id set"
        term = self.rng.choice(["1", "2", "3", "4"])
        self.world.erp.user_update("Customer", customer["Id"], {"SalesTermRef": {"value": term}})
        return "erp: payment terms set"


def ref(wire: dict[str, Any], name: str) -> str | None:
    value = wire.get(name)
    return str(value["value"]) if isinstance(value, dict) and value.get("value") is not None else None
