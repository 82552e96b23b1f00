"""Quote-to-cash in the sandboxed firm: finance staff billing and collecting in the ERP, and the auditor's
check that invoices, payments, billed flags and tasks agree across the three systems.

Used by ``World``/``Activity`` (``accord.sandboxes.firm.world``); kept apart so each module stays readable.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from accord.actors.provision.process import Provisions
from accord.connectors.harvest import mapping as harvest_mapping
from accord.connectors.quickbooks import mapping as qbo_mapping
from accord.connectors.salesforce import mapping as sf_mapping
from accord.streams.keys import Keys

if TYPE_CHECKING:
    from accord.sandboxes.firm.world import Report, World


class FinanceWork:
    """What a bookkeeper does in the ERP: bill a project's approved time and expenses, record payments."""

    world: World
    rng: random.Random

    def _erp_billing_run(self) -> str:
        """Bill a project once all its approved billable work has reached the ERP (the cut-off: an
        invoice must hold exactly what the PSA will mark billed)."""
        active = {c["Id"] for c in self.world.erp.records("Customer") if not c.get("Job") and c.get("Active", True)}
        projects = [p for p in self.world.erp.records("Customer") if p.get("Job") and p.get("Active", True)
                    and _ref(p, "ParentRef") in active]
        billable = {_ref(w, "CustomerRef") for w in self.world.erp.records("TimeActivity")
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
                     if _ref(w, "CustomerRef") == erp_project["Id"] and w.get("BillableStatus") == "Billable")
        in_erp += sum(1 for p in self.world.erp.records("Purchase") for line in p.get("Line") or []
                      if _ref(line.get("AccountBasedExpenseLineDetail") or {}, "CustomerRef") == erp_project["Id"]
                      and (line.get("AccountBasedExpenseLineDetail") or {}).get("BillableStatus") == "Billable")
        return approved == in_erp

    def _billing_in_flight(self) -> set[str]:
        """Names of projects with an ERP invoice not yet in the PSA: managers hold approvals for them."""
        in_psa = {str(i["number"]) for i in self.world.psa.records("invoices")}
        names = {c["Id"]: c["DisplayName"] for c in self.world.erp.records("Customer") if c.get("Job")}
        return {names.get(_ref(i, "ProjectRef") or "", "") for i in self.world.erp.records("Invoice")
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


def _ref(wire: dict[str, Any], name: str) -> str | None:
    value = wire.get(name)
    return str(value["value"]) if isinstance(value, dict) and value.get("value") is not None else None


async def _gid(redis: Redis, keys: Keys, entity: str, system: str, system_id: Any) -> str | None:
    raw = await redis.get(keys.xid(entity, system, str(system_id)))
    return raw.decode() if raw else None


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


async def compare_billing(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    """ERP invoices and payments are in the PSA and the CRM with the same numbers; what the ERP billed is
    billed in the PSA; the CRM's roll-ups add up; won deals are estimates and provisioned."""
    await _compare_opportunities(world, redis, keys, report)
    await _compare_provisioning(world, redis, keys, report)
    psa_invoices, crm_invoices = await _twins(world, redis, keys)
    checked = 0
    for wire in world.erp.records("Invoice"):
        invoice = qbo_mapping.to_canonical("invoice", wire)
        gid = await _gid(redis, keys, "invoice", "erp", invoice.id) or invoice.gid
        checked += 1
        for system, twins in (("PSA", psa_invoices), ("CRM", crm_invoices)):
            twin = twins.get(gid or "")
            if twin is None:
                report.psa_problems.append(f"invoice {invoice.fields.get('number')}: not in the {system}")
                continue
            for name in ("number", "status"):
                if invoice.fields.get(name) != twin.get(name):
                    report.psa_problems.append(f"invoice {invoice.fields.get('number')}.{name}: ERP "
                                               f"{invoice.fields.get(name)!r} != {system} {twin.get(name)!r}")
            for name in ("total", "balance"):
                if _money(invoice.fields.get(name)) != _money(twin.get(name)):
                    report.psa_problems.append(f"invoice {invoice.fields.get('number')}.{name}: ERP "
                                               f"{invoice.fields.get(name)} != {system} {twin.get(name)}")
    report.psa_checked["invoice"] = checked
    await _compare_payments(world, redis, keys, report)
    await _compare_billed_time(world, redis, keys, report)
    _compare_rollups(world, report)


async def _twins(world: World, redis: Redis, keys: Keys) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    psa: dict[str, dict[str, Any]] = {}
    for wire in world.psa.records("invoices"):
        record = harvest_mapping.to_canonical(harvest_mapping.spec_for("invoice"), wire)
        gid = await _gid(redis, keys, "invoice", "psa", record.id) or record.gid
        if gid:
            psa[gid] = {"id": record.id, **record.fields}
    crm: dict[str, dict[str, Any]] = {}
    for wire in world.crm.records("Invoice__c"):
        fields, gid, _, _ = sf_mapping.to_canonical("invoice", wire, multi_currency=world.crm.multi_currency)
        gid = await _gid(redis, keys, "invoice", "crm", wire["Id"]) or gid
        if gid:
            crm[gid] = {"id": wire["Id"], **fields}
    return psa, crm


async def _compare_payments(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    psa_paid: dict[str, Decimal] = {}  # PSA invoice id -> total recorded
    for invoice in world.psa.records("invoices"):
        psa_paid[str(invoice["id"])] = sum((Decimal(str(p["amount"])) for p in world.psa.payments(invoice["id"])),
                                           Decimal(0))
    crm_paid: dict[str, Decimal] = {}
    for wire in world.crm.records("Payment__c"):
        crm_paid[wire["Invoice__c"]] = crm_paid.get(wire["Invoice__c"], Decimal(0)) + Decimal(str(wire["Amount__c"]))
    checked = 0
    for wire in world.erp.records("Invoice"):
        paid = Decimal(str(wire.get("TotalAmt") or 0)) - Decimal(str(wire.get("Balance") or 0))
        gid = await _gid(redis, keys, "invoice", "erp", wire["Id"])
        xref = await redis.hgetall(keys.xref("invoice", gid)) if gid else {}
        for system, recorded in (("psa", psa_paid), ("crm", crm_paid)):
            native = xref.get(system.encode())
            got = recorded.get(native.decode(), Decimal(0)) if native else Decimal(0)
            if paid and _money(got) != _money(paid):
                report.psa_problems.append(f"invoice {wire.get('DocNumber')}: {paid} paid in the ERP, "
                                           f"{got} recorded in the {system.upper()}")
        checked += 1 if paid else 0
    report.psa_checked["payment"] = len(world.erp.records("Payment"))


async def _compare_billed_time(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    """A time entry billed in the ERP is billed in the PSA (the PSA invoice imported it)."""
    billed_in_erp = [w for w in world.erp.records("TimeActivity") if w.get("BillableStatus") == "HasBeenBilled"]
    psa_billed = {str(t["id"]) for t in world.psa.records("time_entries") if t.get("is_billed")}
    for wire in billed_in_erp:
        gid = await _gid(redis, keys, "time_entry", "erp", wire["Id"])
        psa_id = await redis.hget(keys.xref("time_entry", gid), "psa") if gid else None
        if psa_id is not None and psa_id.decode() not in psa_billed:
            report.psa_problems.append(f"time entry {psa_id.decode()}: billed in the ERP, not billed in the PSA")
    report.psa_checked["billed time"] = len(billed_in_erp)


def _compare_rollups(world: World, report: Report) -> None:
    """Each CRM account's open balance is the sum of its invoices' balances (Salesforce roll-ups)."""
    by_account: dict[str, Decimal] = {}
    for wire in world.crm.records("Invoice__c"):
        by_account[wire["Account__c"]] = by_account.get(wire["Account__c"], Decimal(0)) + Decimal(
            str(wire.get("Balance__c") or 0))
    for account_id, balance in by_account.items():
        account = world.crm.get("Account", account_id) or {}
        if _money(account.get("Open_Balance__c")) != _money(balance):
            report.psa_problems.append(f"account {account_id}: open balance {account.get('Open_Balance__c')} "
                                       f"!= {balance} in its invoices")


async def _compare_opportunities(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    """Every won deal of a live CRM account is an accepted ERP estimate for the same amount; open and
    lost deals are not in the ERP."""
    estimates: dict[str, Any] = {}
    for wire in world.erp.records("Estimate"):
        record = qbo_mapping.to_canonical("opportunity", wire)
        gid = await _gid(redis, keys, "opportunity", "erp", record.id) or record.gid
        if gid:
            estimates[gid] = record
    live = {a["Id"] for a in world.crm.records("Account")}
    checked = 0
    for wire in world.crm.records("Opportunity"):
        if wire.get("AccountId") not in live:
            continue
        gid = await _gid(redis, keys, "opportunity", "crm", wire["Id"])
        twin = estimates.get(gid) if gid else None
        checked += 1
        if wire["StageName"] != "Closed Won":
            if twin is not None and twin.fields.get("is_won"):
                report.psa_problems.append(f"opportunity {wire['Id']}: {wire['StageName']} in the CRM, "
                                           "an accepted estimate in the ERP")
        elif twin is None:
            report.psa_problems.append(f"opportunity {wire['Id']}: won in the CRM, no ERP estimate")
        elif _money(twin.fields.get("amount")) != _money(wire.get("Amount")) or not twin.fields.get("is_won"):
            report.psa_problems.append(f"opportunity {wire['Id']}: estimate {twin.id} amount "
                                       f"{twin.fields.get('amount')} won={twin.fields.get('is_won')} vs CRM "
                                       f"{wire.get('Amount')}")
    report.psa_checked["opportunity"] = checked


async def _compare_provisioning(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    """Every deal won while Accord ran was provisioned: its PSA project exists with its work breakdown,
    and the deal carries the project's and the ERP customer's ids."""
    processes = await Provisions(redis, keys).all()
    for process in processes:
        if process.step != "done":
            report.psa_problems.append(f"deal {process.crm_id}: provisioning {'parked' if process.parked else 'at'} "
                                       f"step {process.step} {process.error}".rstrip())
            continue
        deal = world.crm.get("Opportunity", process.crm_id) or {}
        project = next((p for p in world.psa.records("projects") if str(p["id"]) == process.project_id), None)
        tasks = [t for t in world.psa.records("task_assignments") if str(t["project"]["id"]) == process.project_id]
        if project is None or len(tasks) != len(process.tasks):
            report.psa_problems.append(f"deal {process.crm_id}: PSA project {process.project_id} missing or "
                                       f"without its {len(process.tasks)} tasks")
        if (deal.get("PSA_Project_Id__c"), deal.get("ERP_Customer_Id__c")) != (process.project_id,
                                                                               process.customer_id):
            report.psa_problems.append(f"deal {process.crm_id}: ids on the deal {deal.get('PSA_Project_Id__c')}/"
                                       f"{deal.get('ERP_Customer_Id__c')} != {process.project_id}/"
                                       f"{process.customer_id}")
    report.psa_checked["provisioned deal"] = len(processes)
