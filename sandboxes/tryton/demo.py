"""``accord demo --profile tryton``: the demo's firm with a real Tryton server as its PSA and ERP.

The CRM is the Salesforce sandbox (seeded with clients, contacts and deals, as in the ``sandboxes``
profile); Tryton 8.2 on SQLite runs locally (``runner``): its template database is built once into the
cache folder (``--cache-dir``, default ``~/.cache/accord/tryton``; 40–55 s the first time) and copied
into the demo's data folder each run, then seeded with the firm's currencies, consultants and a payment
method. The config is ``demo_tryton.toml`` (the ``tryton_psa_erp.toml`` profile on one machine). The
firm's people are ``people.TrytonActivity``.

What survives a crash: the template in the cache folder. The clone is the run's: a new run makes a new
one (the data folder's ``tryton/``).
"""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from accord.config.settings import Settings
from accord.connectors.tryton.settings import TrytonSettings
from accord.sandboxes.firm.demo import DemoOptions, People, demo_settings
from accord.sandboxes.firm.demo_report import ApiUse
from accord.sandboxes.firm.world import CLIENT_ID, CLIENT_SECRET
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.salesforce.sandbox import build_app as build_sf
from accord.sandboxes.salesforce.seed import seed_accounts, seed_contacts, seed_opportunities
from accord.sandboxes.server import SandboxServer
from accord.sandboxes.tryton.bootstrap import Rpc
from accord.sandboxes.tryton.people import TrytonActivity, seed_tryton
from accord.streams.keys import Keys
from accord.streams.state import Stats

EXAMPLE = "demo_tryton.toml"
CRM, TRYTON = "crm", "tryton"
CONSULTANTS = 6


def default_cache() -> Path:
    return Path.home() / ".cache" / "accord" / "tryton"


def missing_tryton() -> str | None:
    """One line naming the missing ``tryton`` extra and the command that installs it, or None."""
    if importlib.util.find_spec("trytond") is None:
        return ("accord demo --profile tryton: trytond is not installed; install the tryton extra: "
                "pip install -e '.[tryton]' in a checkout")
    return None


class TrytonFirm:
    """The ``tryton`` profile's systems: the CRM sandbox and a local Tryton server (see the module)."""

    def __init__(self, options: DemoOptions) -> None:
        self.crm = SalesforceState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, api_limit=1_000_000,
                                   max_batch=2000, quota_scale=options.quota_scale)
        self.crm_server = SandboxServer(build_sf(self.crm))
        self.cache = Path(options.cache_dir) if options.cache_dir else default_cache()
        self.server: Any = None  # the TrytonServer, once ``prepare`` started it
        self.ids: dict[str, Any] = {}
        self._rpc: Rpc | None = None

    @property
    def rpc(self) -> Rpc:
        """The firm's Tryton users' session (one login: argon2 makes each costly)."""
        if self._rpc is None:
            self._rpc = Rpc(self.server.url, self.server.dbname)
            self._rpc.login(self.ids["admin_login"], self.ids["admin_password"])
        return self._rpc

    def start(self) -> None:
        self.crm_server.start()

    def stop(self) -> None:
        if self._rpc is not None:
            self._rpc.http.close()
        if self.server is not None:
            self.server.stop()
        self.crm_server.stop()

    def prepare(self, options: DemoOptions, rng: random.Random, data_dir: str) -> Settings:
        from accord.sandboxes.tryton.runner import clone, template

        template_file, self.ids = template(self.cache)
        self.server = clone(template_file, Path(data_dir) / "tryton")
        settings = demo_settings(data_dir, options.port, EXAMPLE)
        assert settings.provisioning is not None
        self.ids.update(seed_tryton(self.rpc, rng, consultants=CONSULTANTS,
                                    currencies=settings.provisioning.currencies))
        accounts = seed_accounts(self.crm, options.accounts, rng)
        seed_contacts(self.crm, accounts, rng)
        seed_opportunities(self.crm, accounts, rng)
        return self.configure(settings)

    def configure(self, settings: Settings) -> Settings:
        """``settings`` with the CRM and Tryton systems pointed at this firm's."""
        systems = dict(settings.systems)
        systems[CRM] = msgspec.structs.replace(systems[CRM], base_url=self.crm_server.url, client_id=CLIENT_ID,
                                               client_secret=CLIENT_SECRET)
        tryton = systems[TRYTON]
        assert isinstance(tryton, TrytonSettings)
        systems[TRYTON] = msgspec.structs.replace(tryton, base_url=self.server.url, database=self.server.dbname,
                                                  login=self.ids["admin_login"], password=self.ids["admin_password"])
        return msgspec.structs.replace(settings, systems=systems)

    def banner(self) -> str:
        return (f"CRM sandbox {self.crm_server.url}, Tryton {self.server.url} (database {self.server.dbname}; "
                f"the PSA and the ERP; template cached in {self.cache})")

    def people(self, rng: random.Random) -> People:
        return TrytonActivity(self, rng)

    async def api_use(self, redis: Redis, settings: Settings) -> list[ApiUse]:
        """The CRM sandbox's requests as it counted them; Tryton's as Accord's connectors counted them
        (the firm's own work in Tryton is not Accord's API use)."""
        stats = Stats(Keys(settings.namespace))
        records = await stats.read(redis, Stats.RECORDS)
        api = await stats.read(redis, Stats.API)

        def changes(system: str) -> int:
            return sum(n for key, n in records.items() if key[0] in ("written", "published") and key[1] == system)

        return [ApiUse(CRM, self.crm.requests.count(), changes(CRM),
                       tuple(Counter(e.endpoint for e in self.crm.requests.entries()).most_common())),
                ApiUse(TRYTON, int(api.get(("calls", TRYTON), 0)), changes(TRYTON))]
