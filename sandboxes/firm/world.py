"""The sandboxed firm's systems: the Salesforce-shaped CRM, the Harvest-shaped PSA and the QuickBooks-shaped
ERP on localhost ports, seeded with a services firm's clients, people and deals.

The people who work in them are ``activity``. Used by ``accord demo``, the end-to-end tests and the
benchmarks, so all exercise the same firm.
"""

from __future__ import annotations

import random

import msgspec

from accord.config.settings import Settings
from accord.sandboxes.harvest.sandbox import HarvestState
from accord.sandboxes.harvest.sandbox import build_app as build_harvest
from accord.sandboxes.harvest.seed import seed_firm
from accord.sandboxes.quickbooks.sandbox import QuickBooksState
from accord.sandboxes.quickbooks.sandbox import build_app as build_qbo
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.salesforce.sandbox import build_app as build_sf
from accord.sandboxes.salesforce.seed import (
    seed_accounts,
    seed_contacts,
    seed_opportunities,
)
from accord.sandboxes.server import SandboxServer

CLIENT_ID, CLIENT_SECRET, REFRESH = "accord-demo", "demo-secret", "demo-refresh-0"
HARVEST_TOKEN, HARVEST_ACCOUNT = "demo-pat", "1234567"


class World:
    """The CRM, PSA and ERP sandboxes, served over HTTP so Ray actors in other processes reach them.

    Quotas (see ``sandboxes.quota``): the ERP keeps QuickBooks' real per-minute (``qbo_rate_limit``) and
    in-flight (``qbo_concurrency``) quotas per realm. The demo raises the rest so it settles quickly: the
    CRM's daily limit (``sf_api_limit``), the PSA's per-token limit per 15 s (``psa_rate_limit``) and the
    ERP's per-second (``qbo_per_second``, real: 10) and ``/batch`` per minute (``qbo_batch_limit``, real:
    40) quotas; at the real ones the demo's final reconciliation reads the ERP faster than 10 requests/s
    and gets 429s it does not retry. A benchmark passes the real numbers. ``quota_scale`` divides every
    window of all three.
    """

    def __init__(self, *, qbo_rate_limit: int = 500, qbo_concurrency: int = 10, sf_api_limit: int = 1_000_000,
                 sf_max_batch: int = 2000, qbo_per_second: int = 1_000_000, qbo_batch_limit: int = 1_000_000,
                 psa_rate_limit: int = 100_000, quota_scale: float = 1.0) -> None:
        self.crm = SalesforceState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, api_limit=sf_api_limit,
                                   max_batch=sf_max_batch, quota_scale=quota_scale)
        self.erp = QuickBooksState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH,
                                   rate_limit=qbo_rate_limit, max_concurrent=qbo_concurrency,
                                   per_second_limit=qbo_per_second, batch_limit=qbo_batch_limit,
                                   quota_scale=quota_scale)
        self.crm_server = SandboxServer(build_sf(self.crm))
        self.erp_server = SandboxServer(build_qbo(self.erp))
        self.psa = HarvestState(account_id=HARVEST_ACCOUNT, tokens=(HARVEST_TOKEN,), rate_limit=psa_rate_limit,
                                quota_scale=quota_scale)
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
        """``settings`` with the CRM and ERP systems (and the PSA, when configured) pointed at these sandboxes."""
        systems = dict(settings.systems)
        systems[crm] = msgspec.structs.replace(systems[crm], base_url=self.crm_server.url,
                                               client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        systems[erp] = msgspec.structs.replace(
            systems[erp], base_url=self.erp_server.url,
            token_url=f"{self.erp_server.url}/oauth2/v1/tokens/bearer", realm_id=self.erp.realm_id,
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH)
        if "psa" in systems:
            systems["psa"] = msgspec.structs.replace(systems["psa"], base_url=self.psa_server.url,
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
