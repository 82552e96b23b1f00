"""Quote-to-cash through the real daemon (Ray actors, real Redis, the three sandboxes over HTTP): a won
deal provisioned exactly once despite faults at every step and a killed provisioner; approved time and
expenses billed in the ERP with invoice and payment status reaching the PSA and the CRM, with a fault storm
on the PSA's invoice endpoints and the invoice writer killed mid-flow."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
import ray

from accord.actors.desk import ExceptionDesk, Filters
from accord.actors.provision.process import Provisions
from accord.redis_server import EmbeddedRedis
from accord.sandboxes.harvest.seed import new_project
from accord.streams.audit import AuditTrail
from accord.streams.scope import Scope
from tests.helpers import wait_for
from tests.integration.test_daemon_e2e import Running, running_daemon

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow]


def _project_in_erp(run: Running, name: str) -> str | None:
    return next((c["Id"] for c in run.world.erp.records("Customer") if c.get("Job") and c["DisplayName"] == name), None)


def _psa_invoice(run: Running, number: str) -> dict[str, Any] | None:
    return next((i for i in run.world.psa.records("invoices") if i["number"] == number), None)


def _crm_invoice(run: Running, number: str) -> dict[str, Any] | None:
    return next((i for i in run.world.crm.records("Invoice__c") if i["Name"] == number), None)


async def _approved_work_in_erp(run: Running, rng: random.Random) -> tuple[int, str]:
    """A new project with three time entries and an expense, approved: returns (PSA project, ERP project)."""
    world = run.world
    client = next(c for c in world.psa.records("clients") if c["is_active"] and "accord:" in str(c["address"]))
    pid = new_project(world.psa, rng, client["id"], client["name"], world.psa_seed, name="Billing Pilot P001")
    user = next(a["user"]["id"] for a in world.psa.records("user_assignments") if a["project"]["id"] == pid)
    task = world.psa_seed["tasks"][0]
    entries = [world.psa.log_time(user, pid, task, f"2026-11-{day:02d}", hours, "Workshop")
               for day, hours in ((2, 2.0), (3, 1.5), (4, 4.0))]
    expense = world.psa.user_create("expenses", {
        "project_id": pid, "user_id": user, "expense_category_id": world.psa_seed["expense_categories"][0],
        "spent_date": "2026-11-04", "total_cost": 120.0, "notes": "Client visit", "billable": True})
    world.psa.approve_time(entries)
    world.psa.approve_time([expense], resource="expenses")

    def all_in_erp() -> str | None:
        erp_project = _project_in_erp(run, "Billing Pilot P001")
        time_in = [w for w in world.erp.records("TimeActivity") if (w.get("CustomerRef") or {}).get("value") == erp_project]
        spent = [p for p in world.erp.records("Purchase")
                 if any((line.get("AccountBasedExpenseLineDetail") or {}).get("CustomerRef", {}).get("value")
                        == erp_project for line in p.get("Line") or [])]
        return erp_project if erp_project and len(time_in) == 3 and len(spent) == 1 else None

    erp_project = await wait_for(all_in_erp, timeout=90, message="approved time and expense in the ERP")
    return pid, erp_project


async def test_approved_time_is_billed_and_paid_and_every_system_shows_it(
        ray_session: None, redis_servers: dict[str, EmbeddedRedis], tmp_path: Any) -> None:
    async with running_daemon(redis_servers["7" if "7" in redis_servers else "6.2"], tmp_path,
                              three_systems=True) as run:
        rng = random.Random(11)
        run.world.seed(4, rng, consultants=3)
        await run.agreement(timeout=90)
        pid, erp_project = await _approved_work_in_erp(run, rng)

        # the PSA refuses and drops invoice calls for a while, and the invoice writer dies mid-flow
        run.world.psa.faults.add("invoices", "503", 2)
        run.world.psa.faults.add("invoices", "drop", 1)  # created, but the answer is lost: retried, not doubled
        run.world.crm.faults.add("composite", "429", 1)
        invoice_id = run.world.erp.billing_run(erp_project)
        assert invoice_id is not None
        number = run.world.erp.get("Invoice", invoice_id)["DocNumber"]
        supervisor = run.daemon.supervisor
        assert supervisor is not None
        await wait_for(lambda: run.world.psa.started["invoices"] > 0, timeout=60, message="an invoice call")
        ray.kill(supervisor.writers["invoice"][0].handle, no_restart=False)

        psa_invoice = await wait_for(lambda: (_psa_invoice(run, number) or {}).get("state") == "open"
                                     and _psa_invoice(run, number), timeout=90, message="the open invoice in the PSA")
        crm_invoice = await wait_for(lambda: _crm_invoice(run, number), timeout=90, message="the invoice in the CRM")
        total = Decimal(str(run.world.erp.get("Invoice", invoice_id)["TotalAmt"]))
        assert Decimal(str(psa_invoice["amount"])) == total > Decimal("120")  # 7.5 h at the task's rate + 120
        assert psa_invoice["state"] == "open" and crm_invoice["Status__c"] == "Open"
        billed = [t for t in run.world.psa.records("time_entries") if t["project"]["id"] == pid]
        assert all(t["is_billed"] and t["invoice"]["number"] == number for t in billed)

        # the client pays in two parts; the PSA and the CRM follow
        run.world.erp.user_record_payment(invoice_id, 500.0, reference="ACH-1")
        run.world.erp.user_record_payment(invoice_id, float(total - 500), reference="ACH-2")

        def paid_everywhere() -> bool:
            psa = _psa_invoice(run, number) or {}
            crm = _crm_invoice(run, number) or {}
            account = run.world.crm.get("Account", crm.get("Account__c", "")) or {}
            return (psa.get("state") == "paid" and len(run.world.psa.payments(psa["id"])) == 2
                    and crm.get("Status__c") == "Paid" and Decimal(str(crm.get("Amount_Paid__c") or 0)) == total
                    and Decimal(str(account.get("Open_Balance__c") or 0)) == 0
                    and Decimal(str(account.get("Invoiced_Total__c") or 0)) >= total)

        await wait_for(paid_everywhere, timeout=90, message="the payments in the PSA and the CRM")
        report = await run.agreement(timeout=90)
        assert report.psa_checked["invoice"] == 1 and report.psa_checked["payment"] == 2
        assert report.psa_checked["task"] > 0 and report.psa_checked["billed time"] == 3
        assert run.world.psa.faults.pending() == 0
        assert len([i for i in run.world.psa.records("invoices") if i["number"] == number]) == 1
        assert len([i for i in run.world.crm.records("Invoice__c") if i["Name"] == number]) == 1
        assert supervisor.writers["invoice"][0].restarts >= 1
        desk = await ExceptionDesk(run.redis, Scope.of(run.settings)).list(Filters())
        assert [e.record.message for e in desk] == []


async def test_a_won_deal_is_provisioned_exactly_once_despite_faults_and_a_killed_provisioner(
        ray_session: None, redis_servers: dict[str, EmbeddedRedis], tmp_path: Any) -> None:
    async with running_daemon(redis_servers["6.2"], tmp_path, three_systems=True) as run:
        world = run.world
        world.seed(3, random.Random(21), consultants=2)
        await run.agreement(timeout=90)
        account = next(a for a in world.crm.records("Account") if a.get("CurrencyIsoCode"))
        deal = world.crm.user_create("Opportunity", {
            "AccountId": account["Id"], "Name": "Pilot assessment", "StageName": "Proposal/Price Quote",
            "CloseDate": "2026-11-20", "Amount": 48000.0, "Service_Line__c": "Advisory",
            "Billing_Model__c": "Fixed Fee", "Delivery_Region__c": "NA", "CurrencyIsoCode": account["CurrencyIsoCode"]})
        await wait_for(lambda: run.redis.exists(run.keys.xid("opportunity", "crm", deal)), timeout=30,
                       message="the deal read by Accord")
        # faults at each step: the PSA's projects and tasks refuse and drop calls, the CRM write-back is throttled
        world.psa.faults.add("projects", "503", 2)
        world.psa.faults.add("projects", "drop", 1)
        world.psa.faults.add("task_assignments", "503", 6)
        world.crm.faults.add("composite", "429", 1)
        world.crm.user_update("Opportunity", deal, {"StageName": "Closed Won"})

        provisions = Provisions(run.redis, run.keys)

        async def at_tasks() -> bool:
            return any(p.step == "tasks" and p.crm_id == deal for p in await provisions.all())

        await wait_for(at_tasks, timeout=60, message="provisioning at the tasks step")
        supervisor = run.daemon.supervisor
        assert supervisor is not None and supervisor.provisioner is not None
        ray.kill(supervisor.provisioner.handle, no_restart=False)

        def written_back() -> dict[str, Any] | None:
            row = world.crm.get("Opportunity", deal) or {}
            return row if row.get("PSA_Project_Id__c") and row.get("ERP_Customer_Id__c") else None

        row = await wait_for(written_back, timeout=90, message="the project and customer ids on the deal")
        projects = [p for p in world.psa.records("projects") if p["name"].startswith("Pilot assessment #")]
        assert [str(p["id"]) for p in projects] == [row["PSA_Project_Id__c"]]
        tasks = sorted(t["task"]["name"] for t in world.psa.records("task_assignments")
                       if t["project"]["id"] == projects[0]["id"])
        assert tasks == ["Assessment / Interviews", "Assessment / Report"]
        customer = world.erp.get("Customer", row["ERP_Customer_Id__c"])
        assert customer is not None and customer["DisplayName"] == account["Name"]
        report = await run.agreement(timeout=90)
        assert report.psa_checked["provisioned deal"] >= 1  # the seeded deals won after Accord started, too
        assert len([c for c in world.erp.records("Customer") if c["DisplayName"] == projects[0]["name"]]) == 1
        assert supervisor.provisioner.restarts >= 1
        [process] = [p for p in await provisions.all() if p.crm_id == deal]
        assert process.step == "done" and process.legal_entity == "Northwind Consulting Inc."
        trail = [e.kind for e in await AuditTrail(run.keys, 60).read(run.redis, process.correlation_id)]
        assert trail.index("provisioning started") < trail.index("provisioned customer") < trail.index(
            "provisioned project") < trail.index("provisioned tasks") < trail.index("provisioned writeback")
        assert await ExceptionDesk(run.redis, Scope.of(run.settings)).list(Filters()) == []
