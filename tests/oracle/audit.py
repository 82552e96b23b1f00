"""The auditor: compares the firm's three systems record by record, through the global ids Accord keeps in
Redis (CRM accounts with ERP customers and PSA clients, PSA work with the ERP; billing in ``audit_billing``).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from accord.config.settings import Settings
from accord.connectors.base import SourceRecord
from accord.connectors.harvest import mapping as harvest_mapping
from accord.connectors.quickbooks import mapping as qbo_mapping
from accord.connectors.salesforce import mapping as sf_mapping
from accord.sandboxes.firm.world import World
from accord.streams.keys import Keys
from tests.oracle.audit_billing import compare_billing
from tests.oracle.report import Mismatch, Report, linked_gid

COMPARED_FIELDS = ("name", "website", "billing_address", "country", "currency", "tax_id", "payment_terms")


async def compare(world: World, redis: Redis, settings: Settings, crm: str = "crm") -> Report:
    """Compare every CRM account with its ERP customer (linked through the global id)."""
    keys = Keys(settings.namespace)
    erp_by_gid = await _erp_customers(world, redis, keys)
    report = Report()
    matched: set[str] = set()
    for wire in world.crm.records("Account", include_deleted=True):
        gid = await linked_gid(redis, keys, "account", crm, wire["Id"])
        erp = erp_by_gid.get(gid) if gid else None
        if gid and erp:
            matched.add(gid)
        _compare_account(world, report, wire, gid, erp)
    report.extra_in_erp = [e["id"] for g, e in erp_by_gid.items() if g not in matched]
    if world.psa_seed:
        await _compare_psa(world, redis, keys, report)
    return report


async def _erp_customers(world: World, redis: Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    """ERP customers (not projects) by global id: linked through the xref to another system, or made by
    Accord. A customer finance made in the ERP has a global id as soon as a poller has read it, but is
    linked to nothing until a sync pairs it: it is finance's own record, not one Accord should have paired."""
    by_gid: dict[str, dict[str, Any]] = {}
    for wire in world.erp.records("Customer"):
        if wire.get("Job"):
            continue  # a project (sub-customer), not an account
        record = qbo_mapping.to_canonical("account", wire)
        gid = await linked_gid(redis, keys, "account", "erp", record.id)
        paired = bool(gid) and set(await redis.hkeys(keys.xref("account", gid or ""))) != {b"erp"}
        gid = (gid if paired else None) or record.gid
        if gid:
            by_gid[gid] = {"id": record.id, **record.fields}
    return by_gid


def _compare_account(world: World, report: Report, wire: dict[str, Any], gid: str | None,
                     erp: dict[str, Any] | None) -> None:
    if wire.get("IsDeleted"):
        report.deleted_checked += 1
        if erp is not None and erp.get("status") != "inactive":
            report.not_deactivated.append(wire["Id"])
        return
    report.checked += 1
    if erp is None:
        report.missing_in_erp.append(wire["Id"])
        return
    fields, _, _, _ = sf_mapping.to_canonical("account", wire, multi_currency=world.crm.multi_currency)
    report.mismatches += [Mismatch(gid=gid or "", field=name, crm=fields.get(name), erp=erp.get(name))
                          for name in COMPARED_FIELDS if fields.get(name) != erp.get(name)]


def _by_gid(records: list[Any]) -> dict[str, Any]:
    return {r.gid: r for r in records if r.gid}


async def _compare_psa(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    """CRM accounts are PSA clients; PSA projects, people and approved billable time are in the ERP."""
    spec = harvest_mapping.spec_for
    clients = _by_gid([harvest_mapping.to_canonical(spec("account"), w) for w in world.psa.records("clients")])
    for wire in world.crm.records("Account", include_deleted=True):
        gid = await linked_gid(redis, keys, "account", "crm", wire["Id"])
        client = clients.get(gid) if gid else None
        if wire.get("IsDeleted"):
            if client is not None and client.fields.get("status") != "inactive":
                report.psa_problems.append(f"client {client.id}: deleted in the CRM, active in the PSA")
        elif client is None:
            report.psa_problems.append(f"account {wire['Id']} ({wire['Name']}): no PSA client")
        elif client.fields.get("name") != wire["Name"]:
            report.psa_problems.append(f"client {client.id}: name {client.fields.get('name')!r} != {wire['Name']!r}")
    report.psa_checked["accounts"] = len(clients)
    await _compare_contacts(world, redis, keys, report)
    await _compare_psa_to_erp(world, redis, keys, report, "resource", "users", "Employee", ("name", "email"))
    await _compare_psa_to_erp(world, redis, keys, report, "project", "projects", "Customer", ("name",),
                              keep=lambda w: bool(w.get("Job")))
    await _compare_psa_to_erp(world, redis, keys, report, "task", "task_assignments", "Item", ("name",),
                              keep=lambda w: w.get("Type") == "Service", psa_keep=lambda w: w.get("is_active", True))
    await _compare_time(world, redis, keys, report)
    await _compare_expenses(world, redis, keys, report)
    await compare_billing(world, redis, keys, report)


async def _compare_contacts(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    """Every CRM contact of a live account is a PSA contact with the same name and email."""
    psa = {}
    for wire in world.psa.records("contacts"):
        record = harvest_mapping.to_canonical(harvest_mapping.spec_for("contact"), wire)
        gid = await linked_gid(redis, keys, "contact", "psa", record.id) or record.gid
        if gid:
            psa[gid] = record
    live_accounts = {a["Id"] for a in world.crm.records("Account")}
    checked = 0
    for wire in world.crm.records("Contact"):
        if wire.get("AccountId") not in live_accounts:
            continue
        gid = await linked_gid(redis, keys, "contact", "crm", wire["Id"])
        twin = psa.get(gid) if gid else None
        checked += 1
        if twin is None:
            report.psa_problems.append(f"contact {wire['Id']}: not in the PSA")
        elif (twin.fields.get("last_name"), twin.fields.get("email")) != (wire.get("LastName"), wire.get("Email")):
            report.psa_problems.append(f"contact {wire['Id']}: PSA {twin.fields.get('last_name')!r}/"
                                       f"{twin.fields.get('email')!r} != CRM {wire.get('LastName')!r}/{wire.get('Email')!r}")
    report.psa_checked["contact"] = checked


async def _compare_psa_to_erp(world: World, redis: Redis, keys: Keys, report: Report, entity: str, psa_table: str,
                              erp_table: str, fields: tuple[str, ...], keep: Any = None, psa_keep: Any = None) -> None:
    erp: dict[str, SourceRecord] = {}
    for wire in world.erp.records(erp_table):
        if keep is None or keep(wire):
            erp_record = qbo_mapping.to_canonical(entity, wire)
            gid = await linked_gid(redis, keys, entity, "erp", erp_record.id) or erp_record.gid
            if gid:
                erp[gid] = erp_record
    checked = 0
    for wire in world.psa.records(psa_table):
        if psa_keep is not None and not psa_keep(wire):
            continue
        record = harvest_mapping.to_canonical(harvest_mapping.spec_for(entity), wire)
        if record.fields.get("status") == "inactive" or record.fields.get("active") is False:
            continue
        gid = await linked_gid(redis, keys, entity, "psa", record.id)
        twin = erp.get(gid) if gid else None
        checked += 1
        if twin is None:
            report.psa_problems.append(f"{entity} {record.id}: not in the ERP")
            continue
        for name in fields:
            if record.fields.get(name) != twin.fields.get(name):
                report.psa_problems.append(f"{entity} {record.id}.{name}: PSA {record.fields.get(name)!r} != "
                                           f"ERP {twin.fields.get(name)!r}")
    report.psa_checked[entity] = checked


async def _compare_time(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    """Approved billable time is in the ERP with the same hours; nothing else is."""
    erp = _by_gid([qbo_mapping.to_canonical("time_entry", w) for w in world.erp.records("TimeActivity")])
    expected: set[str] = set()
    for wire in world.psa.records("time_entries"):
        record = harvest_mapping.to_canonical(harvest_mapping.spec_for("time_entry"), wire)
        gid = await linked_gid(redis, keys, "time_entry", "psa", record.id)
        flows = record.fields.get("approval") == "approved" and record.fields.get("billable") is True
        twin = erp.get(gid) if gid else None
        if flows:
            expected.add(gid or "")
            if twin is None:
                report.psa_problems.append(f"time entry {record.id}: approved and billable, not in the ERP")
            elif _hours(twin.fields.get("hours")) != _hours(record.fields.get("hours")):
                report.psa_problems.append(f"time entry {record.id}: hours {record.fields.get('hours')} in the PSA, "
                                           f"{twin.fields.get('hours')} in the ERP")
        elif twin is not None:
            report.psa_problems.append(f"time entry {record.id}: not approved and billable, yet in the ERP")
    report.psa_checked["time entries"] = len(expected)


async def _compare_expenses(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    """Approved billable expenses are in the ERP with the same amount; nothing else is."""
    erp: dict[str, SourceRecord] = {}
    for wire in world.erp.records("Purchase"):
        erp_record = qbo_mapping.to_canonical("expense", wire)
        gid = await linked_gid(redis, keys, "expense", "erp", erp_record.id) or erp_record.gid
        if gid:
            erp[gid] = erp_record
    expected = 0
    for wire in world.psa.records("expenses"):
        record = harvest_mapping.to_canonical(harvest_mapping.spec_for("expense"), wire)
        gid = await linked_gid(redis, keys, "expense", "psa", record.id)
        twin = erp.get(gid) if gid else None
        if record.fields.get("approval") == "approved" and record.fields.get("billable") is True:
            expected += 1
            if twin is None:
                report.psa_problems.append(f"expense {record.id}: approved and billable, not in the ERP")
            elif _hours(twin.fields.get("amount")) != _hours(record.fields.get("amount")):
                report.psa_problems.append(f"expense {record.id}: amount {record.fields.get('amount')} in the PSA, "
                                           f"{twin.fields.get('amount')} in the ERP")
        elif twin is not None:
            report.psa_problems.append(f"expense {record.id}: not approved and billable, yet in the ERP")
    report.psa_checked["expense"] = expected


def _hours(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)
