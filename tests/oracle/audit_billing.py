"""The auditor's quote-to-cash checks: invoices, payments, billed flags, roll-ups and provisioned deals agree
across the three systems."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from accord.actors.provision.process import Provisions
from accord.connectors.harvest import mapping as harvest_mapping
from accord.connectors.quickbooks import mapping as qbo_mapping
from accord.connectors.salesforce import mapping as sf_mapping
from accord.sandboxes.firm.world import World
from accord.streams.keys import Keys
from accord.streams.replies import text_map, text_or_none
from tests.oracle.report import Report, linked_gid


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
        gid = await linked_gid(redis, keys, "invoice", "erp", invoice.id) or invoice.gid
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
        gid = await linked_gid(redis, keys, "invoice", "psa", record.id) or record.gid
        if gid:
            psa[gid] = {"id": record.id, **record.fields}
    crm: dict[str, dict[str, Any]] = {}
    for wire in world.crm.records("Invoice__c"):
        fields, gid, _, _ = sf_mapping.to_canonical("invoice", wire, multi_currency=world.crm.multi_currency)
        gid = await linked_gid(redis, keys, "invoice", "crm", wire["Id"]) or gid
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
        gid = await linked_gid(redis, keys, "invoice", "erp", wire["Id"])
        xref = text_map(await redis.hgetall(keys.xref("invoice", gid))) if gid else {}
        for system, recorded in (("psa", psa_paid), ("crm", crm_paid)):
            native = xref.get(system)
            got = recorded.get(native, Decimal(0)) if native else Decimal(0)
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
        gid = await linked_gid(redis, keys, "time_entry", "erp", wire["Id"])
        psa_id = text_or_none(await redis.hget(keys.xref("time_entry", gid), "psa")) if gid else None
        if psa_id is not None and psa_id not in psa_billed:
            report.psa_problems.append(f"time entry {psa_id}: billed in the ERP, not billed in the PSA")
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
        gid = await linked_gid(redis, keys, "opportunity", "erp", record.id) or record.gid
        if gid:
            estimates[gid] = record
    live = {a["Id"] for a in world.crm.records("Account")}
    checked = 0
    for wire in world.crm.records("Opportunity"):
        if wire.get("AccountId") not in live:
            continue
        gid = await linked_gid(redis, keys, "opportunity", "crm", wire["Id"])
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
