"""Quote-to-cash with Tryton as the ERP, through the real daemon (Ray actors, a real Redis, the Salesforce
and Harvest sandboxes and a real trytond), configured by ``config/examples/tryton_erp.toml``: a won deal
provisioned (party and project works in Tryton), approved Harvest time as timesheet lines, invoiced and
paid in Tryton by its users with the invoice's state reaching Harvest and Salesforce, a concurrent edit
in Tryton converging, and trytond killed mid-sync losing nothing. One daemon and one Tryton per module."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from accord.actors.provision.process import Provisions
from accord.app import Daemon
from accord.redis_server import EmbeddedRedis
from accord.sandboxes.firm.world import World
from accord.sandboxes.harvest.seed import new_project
from accord.sandboxes.tryton.bootstrap import Rpc
from accord.sandboxes.tryton.runner import TrytonServer
from accord.streams.exceptions import decode_exception
from accord.streams.keys import Keys
from tests.helpers import wait_for
from tests.tryton.e2e_rig import TrytonView, add_currencies, profile_settings, tryton_daemon
from tests.tryton.test_billing import pay

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.asyncio(loop_scope="module")]
TODAY = dt.date.today()  # the template's fiscal year is this year's


class Firm:
    def __init__(self, world: World, daemon: Daemon, redis: Redis, tryton: TrytonView, server: TrytonServer,
                 ids: dict[str, Any]) -> None:
        self.world, self.daemon, self.redis, self.tryton, self.server, self.ids = world, daemon, redis, tryton, server, ids
        self.rng = random.Random(7)

    async def exceptions(self) -> list[str]:
        index = await self.redis.hgetall(Keys(self.daemon.settings.namespace).exception_index())
        return [decode_exception(v).message for v in index.values()]

    async def wait(self, predicate: Any, message: str, timeout: float = 120) -> Any:  # noqa: ASYNC109
        """``wait_for`` that names the exceptions filed and the provisioning processes when it times out."""
        try:
            return await wait_for(predicate, timeout=timeout, interval=0.25, message=message)
        except AssertionError as exc:
            processes = [(p.crm_id, p.step, p.attempts, p.parked, p.error) for p in await Provisions(self.redis, Keys(
                self.daemon.settings.namespace)).all()]
            keys = Keys(self.daemon.settings.namespace)
            xrefs = []
            for account in self.world.crm.records("Account"):
                gid = await self.redis.get(keys.xid("account", "crm", account["Id"]))
                xrefs.append(await self.redis.hgetall(keys.xref("account", gid.decode())) if gid else None)
            raise AssertionError(f"{exc}; exceptions: {await self.exceptions()}; provisioning: {processes}; "
                                 f"accounts: {xrefs}") from None

    def psa_client(self, account: dict[str, Any]) -> dict[str, Any] | None:
        return next((c for c in self.world.psa.records("clients") if c["name"] == account["Name"]), None)

    def approved_time(self, name: str, hours: list[float], approve: int | None = None) -> tuple[int, list[int]]:
        """A new Harvest project for a synced client, with ``hours`` logged on its first task and the first
        ``approve`` entries (all by default) approved."""
        psa = self.world.psa
        client = next(c for c in psa.records("clients") if c["is_active"] and "accord:" in str(c["address"]))
        pid = new_project(psa, self.rng, client["id"], client["name"], self.world.psa_seed, name=name)
        user = next(a["user"]["id"] for a in psa.records("user_assignments") if a["project"]["id"] == pid)
        task = self.world.psa_seed["tasks"][0]
        entries = [psa.log_time(user, pid, task, (TODAY - dt.timedelta(days=i + 1)).isoformat(), h, f"Work {i}")
                   for i, h in enumerate(hours)]
        psa.approve_time(entries[:approve])
        return pid, entries

    def tryton_project(self, name: str) -> dict[str, Any] | None:
        return next(iter(self.tryton.works([["type", "=", "project"], ["name", "=", name]])), None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def firm(ray_session: None, redis_servers: dict[str, EmbeddedRedis], tryton_server: TrytonServer,
               tryton_template: tuple[Path, dict[str, Any]], rpc: Rpc,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Firm]:
    ids = tryton_template[1]
    world = World().start()
    world.seed(3, random.Random(5), consultants=2)
    add_currencies(rpc)
    redis_url = redis_servers["7" if "7" in redis_servers else "6.2"].url
    redis = Redis.from_url(redis_url)
    settings = profile_settings(world, tryton_server, ids, redis_url, str(tmp_path_factory.mktemp("accord")))
    tryton = TrytonView(rpc)
    try:
        async with tryton_daemon(world, settings) as daemon:
            firm = Firm(world, daemon, redis, tryton, tryton_server, ids)
            names = [a["Name"] for a in world.crm.records("Account")]
            await wait_for(lambda: all(len(tryton.parties(n)) == 1 for n in names), timeout=120,
                           message="the CRM's accounts as Tryton parties")
            yield firm
    finally:
        await redis.aclose()
        world.stop()


async def test_a_won_deal_provisions_the_tryton_party_and_the_project_works_via_harvest(firm: Firm) -> None:
    world = firm.world
    account = world.crm.records("Account")[0]
    if account.get("CurrencyIsoCode") not in ("USD", "EUR", "GBP"):  # provisioning.currencies
        world.crm.user_update("Account", account["Id"], {"CurrencyIsoCode": "EUR"})
        account = world.crm.get("Account", account["Id"]) or {}
    deal = world.crm.user_create("Opportunity", {
        "AccountId": account["Id"], "Name": "Tryton pilot", "StageName": "Proposal/Price Quote",
        "CloseDate": TODAY.isoformat(), "Amount": 36000.0, "Service_Line__c": "Advisory",
        "Billing_Model__c": "Fixed Fee", "Delivery_Region__c": "EMEA",
        "CurrencyIsoCode": account["CurrencyIsoCode"]})
    world.crm.user_update("Opportunity", deal, {"StageName": "Closed Won"})

    def written_back() -> dict[str, Any] | None:
        row = world.crm.get("Opportunity", deal) or {}
        return row if row.get("PSA_Project_Id__c") and row.get("ERP_Customer_Id__c") else None

    row = await firm.wait(written_back, timeout=120, message="the Harvest project and Tryton party ids on the deal")
    party, = firm.tryton.read("party.party", [["id", "=", int(row["ERP_Customer_Id__c"])]], ["name"])
    assert party["name"] == account["Name"] and len(firm.tryton.parties(account["Name"])) == 1
    project = world.psa.get("projects", int(row["PSA_Project_Id__c"]))
    assert project is not None

    def works_in_tryton() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        found = firm.tryton_project(project["name"])
        tasks = firm.tryton.works([["type", "=", "task"], ["parent", "=", found["id"]]]) if found else []
        return (found, tasks) if found and len(tasks) == 2 else None

    work, tasks = await firm.wait(works_in_tryton, timeout=120, message="the project and its tasks in Tryton")
    assert work["party"] == party["id"] and work["comment"].startswith("accord:")
    assert sorted(t["name"] for t in tasks) == ["Assessment / Interviews", "Assessment / Report"]
    assert all(t["timesheet_works"] for t in tasks)  # Tryton users can log time on them
    # a won deal is recorded in Tryton as the customer's opportunity (Tryton's workflow keeps its state)
    deals = await firm.wait(lambda: firm.tryton.read("sale.opportunity", [["description", "=", "Tryton pilot"]],
                                                    ["party", "amount", "currency.code"]),
                           timeout=60, message="the won deal in Tryton")
    assert [(d["party"], d["amount"], d["currency."]["code"]) for d in deals] == [
        (party["id"], Decimal("36000"), account["CurrencyIsoCode"])]
    assert await firm.exceptions() == []


async def test_approved_time_is_invoiced_and_paid_in_tryton_and_harvest_and_salesforce_follow(firm: Firm) -> None:
    world, tryton, rpc = firm.world, firm.tryton, firm.tryton.rpc
    pid, entries = firm.approved_time("Tryton Billing P1", [2.0, 1.5, 4.0])
    name = world.psa.get("projects", pid)["name"]  # type: ignore[index]

    def lines_in_tryton() -> list[dict[str, Any]] | None:
        work = firm.tryton_project(name)
        if not work:
            return None
        tasks = [t["id"] for t in tryton.works([["parent", "child_of", [work["id"]]]])]
        lines = tryton.lines_of(tasks)
        return lines if len(lines) == 3 else None

    lines = await firm.wait(lines_in_tryton, timeout=120, message="the approved time as Tryton timesheet lines")
    assert sorted(ln["duration"] for ln in lines) == [dt.timedelta(hours=h) for h in (1.5, 2.0, 4.0)]

    # finance in Tryton: invoice the project's timesheet, post the invoice
    work = firm.tryton_project(name)
    assert work is not None
    rpc.call("model.project.work.write", [work["id"]], {"project_invoice_method": "timesheet"})
    children = [t["id"] for t in tryton.works([["parent", "child_of", [work["id"]]]])]
    rate = next(a["hourly_rate"] for a in world.psa.records("task_assignments")  # the firm's rate, as in Harvest
                if a["project"]["id"] == pid and a["task"]["id"] == world.psa_seed["tasks"][0])
    rpc.call("model.project.work.write", children, {"product": firm.ids["product"], "list_price": Decimal(str(rate))})
    rpc.call("model.project.work.invoice", [work["id"]])
    invoice, = tryton.read("account.invoice", [["party", "=", work["party"]], ["state", "=", "draft"]], ["id"])
    rpc.call("model.account.invoice.post", [invoice["id"]])
    posted, = tryton.read("account.invoice", [["id", "=", invoice["id"]]], ["number", "total_amount"])
    number, total = posted["number"], posted["total_amount"]
    assert total == Decimal(str(rate)) * Decimal("7.5") and number

    def psa_invoice() -> dict[str, Any] | None:
        return next((i for i in world.psa.records("invoices") if i["number"] == number), None)

    def crm_invoice() -> dict[str, Any] | None:
        return next((i for i in world.crm.records("Invoice__c") if i["Name"] == number), None)

    opened = await firm.wait(lambda: (psa_invoice() or {}).get("state") == "open" and psa_invoice(), timeout=120, message="the open invoice in Harvest")
    assert Decimal(str(opened["amount"])) == total
    crm = await firm.wait(crm_invoice, timeout=120, message="the invoice in Salesforce")
    assert crm["Status__c"] == "Open" and Decimal(str(crm["Balance__c"])) == total
    billed = [world.psa.get("time_entries", e) for e in entries]
    assert all(t and t["is_billed"] and t["invoice"]["number"] == number for t in billed)

    pay(rpc, invoice["id"], total)  # the client pays; finance records it in Tryton
    paid = await firm.wait(lambda: (crm_invoice() or {}).get("Status__c") == "Paid" and crm_invoice(), timeout=120, message="the paid invoice in Salesforce")
    assert Decimal(str(paid["Balance__c"])) == 0 and Decimal(str(paid["Total__c"])) == total
    settled = await firm.wait(lambda: (psa_invoice() or {}).get("state") == "paid" and psa_invoice(), timeout=120,
                              message="the paid invoice in Harvest")
    assert [Decimal(str(p["amount"])) for p in world.psa.payments(settled["id"])] == [total]
    crm_payments = await firm.wait(lambda: [p for p in world.crm.records("Payment__c")
                                            if p["Invoice__c"] == paid["Id"]], timeout=60,
                                   message="the payment in Salesforce")
    assert [Decimal(str(p["Amount__c"])) for p in crm_payments] == [total]
    assert len([i for i in world.psa.records("invoices") if i["number"] == number]) == 1
    assert len([i for i in world.crm.records("Invoice__c") if i["Name"] == number]) == 1
    assert await firm.exceptions() == []


async def test_a_party_edited_in_tryton_while_the_crm_edits_it_converges_to_the_owner(firm: Firm) -> None:
    world, tryton, rpc = firm.world, firm.tryton, firm.tryton.rpc
    account = world.crm.records("Account")[-1]
    party, = tryton.parties(account["Name"])
    # the same moment: sales change the website in Salesforce, someone renames the party in Tryton
    world.crm.user_update("Account", account["Id"], {"Website": "https://converged.example"})
    rpc.call("model.party.party.write", [party["id"]], {"name": f"{account['Name']} (typo)"})

    def converged() -> bool:
        row, = tryton.read("party.party", [["id", "=", party["id"]]], ["name"])
        return row["name"] == account["Name"] and tryton.website(party["id"]) == "https://converged.example"

    await firm.wait(converged, timeout=120, message="the CRM's name back and its website in Tryton")
    # the CRM owns the name: the Tryton edit was reverted, never propagated
    assert world.crm.get("Account", account["Id"])["Name"] == account["Name"]  # type: ignore[index]
    assert firm.psa_client(account) is not None
    assert len(tryton.parties(account["Name"])) == 1 and tryton.parties(f"{account['Name']} (typo)") == []
    assert [a["Name"] for a in world.crm.records("Account")].count(account["Name"]) == 1


async def test_trytond_killed_mid_sync_loses_no_time_and_doubles_none(firm: Firm) -> None:
    tryton = firm.tryton
    hours = [0.5 + i * 0.25 for i in range(8)]
    pid, entries = firm.approved_time("Tryton Crash P2", hours, approve=4)
    name = firm.world.psa.get("projects", pid)["name"]  # type: ignore[index]

    def lines() -> list[dict[str, Any]]:
        work = firm.tryton_project(name)
        return tryton.lines_of([t["id"] for t in tryton.works([["parent", "child_of", [work["id"]]]])]) if work else []

    await firm.wait(lines, timeout=120, message="the first timesheet lines in Tryton")
    firm.server.kill()  # SIGKILL mid-sync: at most the first four entries had arrived
    firm.world.psa.approve_time(entries[4:])
    keys = Keys(firm.daemon.settings.namespace)

    async def read_by_accord() -> bool:  # the rest is on its way to the dead server
        return all([await firm.redis.exists(keys.xid("time_entry", "psa", str(e))) for e in entries])

    await firm.wait(read_by_accord, timeout=120, message="every entry read from Harvest")
    firm.server.start()  # the same database file and port

    def all_lines() -> list[dict[str, Any]] | None:
        found = lines()
        return found if len(found) >= len(entries) else None

    arrived = await firm.wait(all_lines, timeout=180, message="every approved entry as a Tryton timesheet line")
    markers = Counter(ln["description"].rsplit("[accord:", 1)[-1] for ln in arrived)
    assert len(arrived) == len(entries) and set(markers.values()) == {1}, markers
    assert sorted(ln["duration"] for ln in arrived) == [dt.timedelta(hours=h) for h in hours]
    assert await firm.exceptions() == []
