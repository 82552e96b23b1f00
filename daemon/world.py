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
from accord.connectors.quickbooks import mapping as qbo_mapping
from accord.connectors.quickbooks.sandbox import QuickBooksState
from accord.connectors.quickbooks.sandbox import build_app as build_qbo
from accord.connectors.salesforce import mapping as sf_mapping
from accord.connectors.salesforce.sandbox import SalesforceState
from accord.connectors.salesforce.sandbox import build_app as build_sf
from accord.connectors.salesforce.seed import account_fields, seed_accounts
from accord.connectors.sandbox import SandboxServer
from accord.streams.keys import Keys

CLIENT_ID, CLIENT_SECRET, REFRESH = "accord-demo", "demo-secret", "demo-refresh-0"
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

    def start(self) -> World:
        self.crm_server.start()
        self.erp_server.start()
        return self

    def stop(self) -> None:
        self.crm_server.stop()
        self.erp_server.stop()

    def configure(self, settings: Settings, crm: str = "crm", erp: str = "erp") -> Settings:
        """``settings`` with the CRM and ERP systems pointed at these sandboxes."""
        systems = dict(settings.systems)
        systems[crm] = msgspec.structs.replace(systems[crm], base_url=self.crm_server.url,  # type: ignore[type-var]
                                               client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        systems[erp] = msgspec.structs.replace(
            systems[erp], base_url=self.erp_server.url,  # type: ignore[type-var]
            token_url=f"{self.erp_server.url}/oauth2/v1/tokens/bearer", realm_id=self.erp.realm_id,
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH)
        return msgspec.structs.replace(settings, systems=systems)

    def seed(self, accounts: int, rng: random.Random) -> list[str]:
        return seed_accounts(self.crm, accounts, rng)


class Activity:
    """People at work: sales edit and add clients in the CRM, finance sets tax ids and payment terms
    in the ERP. ``step()`` performs one random action and returns its name."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.done: dict[str, int] = {}

    def step(self) -> str:
        roll = self.rng.random()
        if roll < 0.12:
            action = self._crm_create()
        elif roll < 0.55:
            action = self._crm_edit()
        elif roll < 0.60:
            action = self._crm_delete()
        else:
            action = self._erp_finance()
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

    def _crm_delete(self) -> str:
        accounts = self._live_accounts()
        if len(accounts) < 5:
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

    @property
    def agree(self) -> bool:
        return not (self.mismatches or self.missing_in_erp or self.extra_in_erp or self.not_deactivated)

    def summary(self) -> str:
        verdict = "AGREE" if self.agree else "DISAGREE"
        return (f"{verdict}: {self.checked} live accounts compared field by field, {self.deleted_checked} deleted "
                f"ones checked; {len(self.mismatches)} field mismatches, {len(self.missing_in_erp)} missing in "
                f"the ERP, {len(self.extra_in_erp)} extra in the ERP, {len(self.not_deactivated)} not deactivated")


async def compare(world: World, redis: Redis, settings: Settings, crm: str = "crm") -> Report:
    """Compare every CRM account with its ERP customer (linked through the global id)."""
    keys = Keys(settings.namespace)
    erp_by_gid: dict[str, dict[str, Any]] = {}
    for wire in world.erp.records("Customer"):
        record = qbo_mapping.to_canonical("account", wire)
        if record.gid:
            erp_by_gid[record.gid] = {"id": record.id, **record.fields}
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
    return report
