"""A sandboxed firm: the Salesforce-shaped CRM and QuickBooks-shaped ERP sandboxes on localhost ports,
seeded with clients, plus the people who work in them (an activity generator) and an auditor that
compares the two systems record by record.

Used by ``accord demo``, the end-to-end tests and the benchmark, so all three exercise the same thing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.asyncio import Redis

from accord.config.settings import Settings
from accord.connectors.harvest import mapping as harvest_mapping
from accord.connectors.quickbooks import mapping as qbo_mapping
from accord.connectors.salesforce import mapping as sf_mapping
from accord.sandboxes.firm.world_billing import FinanceWork, compare_billing
from accord.sandboxes.harvest.sandbox import HarvestState
from accord.sandboxes.harvest.sandbox import build_app as build_harvest
from accord.sandboxes.harvest.seed import new_project, seed_firm
from accord.sandboxes.quickbooks.sandbox import QuickBooksState
from accord.sandboxes.quickbooks.sandbox import build_app as build_qbo
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.salesforce.sandbox import build_app as build_sf
from accord.sandboxes.salesforce.seed import (
    account_fields,
    contact_fields,
    next_stage,
    seed_accounts,
    seed_contacts,
    seed_opportunities,
)
from accord.sandboxes.server import SandboxServer
from accord.streams.keys import Keys

CLIENT_ID, CLIENT_SECRET, REFRESH = "accord-demo", "demo-secret", "demo-refresh-0"
HARVEST_TOKEN, HARVEST_ACCOUNT = "demo-pat", "1234567"
COMPARED_FIELDS = ("name", "website", "billing_address", "country", "currency", "tax_id", "payment_terms")


class World:
    """The CRM and ERP sandboxes, served over HTTP so Ray actors in other processes reach them."""

    def __init__(self, *, qbo_rate_limit: int = 500, qbo_concurrency: int = 10, sf_api_limit: int = 1_000_000,
                 sf_max_batch: int = 2000) -> None:
        self.crm = SalesforceState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, api_limit=sf_api_limit,
                                   max_batch=sf_max_batch)
        self.erp = QuickBooksState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH,
                                   rate_limit=qbo_rate_limit, max_concurrent=qbo_concurrency)
        self.crm_server = SandboxServer(build_sf(self.crm))
        self.erp_server = SandboxServer(build_qbo(self.erp))
        self.psa = HarvestState(account_id=HARVEST_ACCOUNT, tokens=(HARVEST_TOKEN,), rate_limit=100_000)
        self.psa_server = SandboxServer(build_harvest(self.psa))
        self.psa_seed: dict[str, list[int]] = {}

    def start(self) -> World:
        self.crm_server.start()
        self.erp_server.start()
        self.psa_server.start()
        return self

    def stop(self) -> None:
        self.crm_server.stop()
        self.erp_server.stop()
        self.psa_server.stop()

    def configure(self, settings: Settings, crm: str = "crm", erp: str = "erp") -> Settings:
        """``settings`` with the CRM and ERP systems pointed at these sandboxes."""
        systems = dict(settings.systems)
        systems[crm] = msgspec.structs.replace(systems[crm], base_url=self.crm_server.url,  # type: ignore[type-var]
                                               client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        systems[erp] = msgspec.structs.replace(
            systems[erp], base_url=self.erp_server.url,  # type: ignore[type-var]
            token_url=f"{self.erp_server.url}/oauth2/v1/tokens/bearer", realm_id=self.erp.realm_id,
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH)
        if "psa" in systems:
            systems["psa"] = msgspec.structs.replace(systems["psa"], base_url=self.psa_server.url,  # type: ignore[type-var]
                                                     account_id=HARVEST_ACCOUNT, access_token=HARVEST_TOKEN)
        return msgspec.structs.replace(settings, systems=systems)

    def seed(self, accounts: int, rng: random.Random, *, consultants: int = 0) -> list[str]:
        """Clients in the CRM; with ``consultants``, the PSA's people and standard tasks too (its
        clients arrive from the CRM through Accord)."""
        if consultants:
            self.psa_seed = seed_firm(self.psa, rng, clients=0, consultants=consultants, weeks=0)
        ids = seed_accounts(self.crm, accounts, rng)
        if consultants:
            seed_contacts(self.crm, ids, rng)
            seed_opportunities(self.crm, ids, rng)
        return ids


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
        psa = bool(self.world.psa_seed)
        if roll < 0.10:
            action = self._crm_create()
        elif psa and roll < 0.12:
            action = self._crm_new_contact()
        elif psa and roll < 0.16:
            action = self._crm_deal_moves()
        elif roll < (0.35 if psa else 0.55):
            action = self._crm_edit()
        elif roll < (0.38 if psa else 0.60):
            action = self._crm_delete()
        elif roll < (0.55 if psa else 1.0):
            action = self._erp_finance()
        elif roll < 0.63:
            action = self._psa_new_project()
        elif roll < 0.78:
            action = self._psa_log_time()
        elif roll < 0.83:
            action = self._psa_log_expense()
        elif roll < 0.91:
            action = self._psa_approve()
        elif roll < 0.96:
            action = self._erp_billing_run()
        else:
            action = self._erp_payment()
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


@dataclass
class Mismatch:
    gid: str
    field: str
    crm: Any
    erp: Any


@dataclass
class Report:
    """The auditor's verdict: the two systems agree when every list is empty."""

    checked: int = 0
    deleted_checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    missing_in_erp: list[str] = field(default_factory=list)  # CRM account ids with no ERP customer
    extra_in_erp: list[str] = field(default_factory=list)  # ERP customer ids with no CRM account
    not_deactivated: list[str] = field(default_factory=list)  # deleted in CRM, still active in ERP
    psa_checked: dict[str, int] = field(default_factory=dict)  # entity -> records compared with the PSA
    psa_problems: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return not (self.mismatches or self.missing_in_erp or self.extra_in_erp or self.not_deactivated
                    or self.psa_problems)

    def summary(self) -> str:
        verdict = "AGREE" if self.agree else "DISAGREE"
        text = (f"{verdict}: {self.checked} live accounts compared field by field, {self.deleted_checked} deleted "
                f"ones checked; {len(self.mismatches)} field mismatches, {len(self.missing_in_erp)} missing in "
                f"the ERP, {len(self.extra_in_erp)} extra in the ERP, {len(self.not_deactivated)} not deactivated")
        if self.psa_checked:
            checked = ", ".join(f"{n} {e}" for e, n in self.psa_checked.items())
            text += f"; PSA: {checked} checked, {len(self.psa_problems)} problems"
        return text


async def compare(world: World, redis: Redis, settings: Settings, crm: str = "crm") -> Report:
    """Compare every CRM account with its ERP customer (linked through the global id)."""
    keys = Keys(settings.namespace)
    erp_by_gid: dict[str, dict[str, Any]] = {}
    for wire in world.erp.records("Customer"):
        if wire.get("Job"):
            continue  # a project (sub-customer), not an account
        record = qbo_mapping.to_canonical("account", wire)
        gid = await _gid(redis, keys, "account", "erp", record.id) or record.gid  # linked, or made by Accord
        if gid:
            erp_by_gid[gid] = {"id": record.id, **record.fields}
    report = Report()
    matched: set[str] = set()
    multi = world.crm.multi_currency
    for wire in world.crm.records("Account", include_deleted=True):
        raw = await redis.get(keys.xid("account", crm, wire["Id"]))
        gid = raw.decode() if raw else None
        erp = erp_by_gid.get(gid) if gid else None
        if gid and erp:
            matched.add(gid)
        if wire.get("IsDeleted"):
            report.deleted_checked += 1
            if erp is not None and erp.get("status") != "inactive":
                report.not_deactivated.append(wire["Id"])
            continue
        report.checked += 1
        if erp is None:
            report.missing_in_erp.append(wire["Id"])
            continue
        fields, _, _, _ = sf_mapping.to_canonical("account", wire, multi_currency=multi)
        for name in COMPARED_FIELDS:
            if fields.get(name) != erp.get(name):
                report.mismatches.append(Mismatch(gid=gid or "", field=name, crm=fields.get(name), erp=erp.get(name)))
    report.extra_in_erp = [e["id"] for g, e in erp_by_gid.items() if g not in matched]
    if world.psa_seed:
        await _compare_psa(world, redis, keys, report)
    return report


def _by_gid(records: list[Any]) -> dict[str, Any]:
    return {r.gid: r for r in records if r.gid}


async def _gid(redis: Redis, keys: Keys, entity: str, system: str, system_id: Any) -> str | None:
    raw = await redis.get(keys.xid(entity, system, str(system_id)))
    return raw.decode() if raw else None


async def _compare_psa(world: World, redis: Redis, keys: Keys, report: Report) -> None:
    """CRM accounts are PSA clients; PSA projects, people and approved billable time are in the ERP."""
    spec = harvest_mapping.spec_for
    clients = _by_gid([harvest_mapping.to_canonical(spec("account"), w) for w in world.psa.records("clients")])
    for wire in world.crm.records("Account", include_deleted=True):
        gid = await _gid(redis, keys, "account", "crm", wire["Id"])
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
        gid = await _gid(redis, keys, "contact", "psa", record.id) or record.gid
        if gid:
            psa[gid] = record
    live_accounts = {a["Id"] for a in world.crm.records("Account")}
    checked = 0
    for wire in world.crm.records("Contact"):
        if wire.get("AccountId") not in live_accounts:
            continue
        gid = await _gid(redis, keys, "contact", "crm", wire["Id"])
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
    erp: dict[str, Any] = {}
    for wire in world.erp.records(erp_table):
        if keep is None or keep(wire):
            twin = qbo_mapping.to_canonical(entity, wire)
            gid = await _gid(redis, keys, entity, "erp", twin.id) or twin.gid
            if gid:
                erp[gid] = twin
    checked = 0
    for wire in world.psa.records(psa_table):
        if psa_keep is not None and not psa_keep(wire):
            continue
        record = harvest_mapping.to_canonical(harvest_mapping.spec_for(entity), wire)
        if record.fields.get("status") == "inactive" or record.fields.get("active") is False:
            continue
        gid = await _gid(redis, keys, entity, "psa", record.id)
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
        gid = await _gid(redis, keys, "time_entry", "psa", record.id)
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
    erp: dict[str, Any] = {}
    for wire in world.erp.records("Purchase"):
        twin = qbo_mapping.to_canonical("expense", wire)
        gid = await _gid(redis, keys, "expense", "erp", twin.id) or twin.gid
        if gid:
            erp[gid] = twin
    expected = 0
    for wire in world.psa.records("expenses"):
        record = harvest_mapping.to_canonical(harvest_mapping.spec_for("expense"), wire)
        gid = await _gid(redis, keys, "expense", "psa", record.id)
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
