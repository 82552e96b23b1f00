"""The daemon end to end with Tryton as the ERP: the firm's Salesforce and Harvest sandboxes (the World) and
a real trytond clone, configured by ``config/examples/tryton_erp.toml`` (its ``${...}`` filled in with the
local servers, its timings narrowed for a test). Helpers read Tryton as its users see it (JSON-RPC)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from accord.app import Daemon
from accord.config.load import load
from accord.config.settings import Settings
from accord.sandboxes.firm.world import CLIENT_ID, CLIENT_SECRET, HARVEST_ACCOUNT, HARVEST_TOKEN, World
from accord.sandboxes.tryton.bootstrap import Rpc
from accord.sandboxes.tryton.runner import TrytonServer
from tests.helpers import wait_for

PROFILE = Path(__file__).resolve().parents[2] / "config" / "examples" / "tryton_erp.toml"
CURRENCIES = (("USD", "$"), ("GBP", "£"), ("CAD", "CA$"), ("AUD", "A$"))  # the template has EUR only


def profile_settings(world: World, server: TrytonServer, ids: dict[str, Any], redis_url: str,
                     data_dir: str) -> Settings:
    """The Tryton-as-ERP profile pointed at the local servers, with test timings."""
    env = {"REDIS_URL": redis_url, "ACCORD_ADMIN_TOKEN": "test-admin", "ACCORD_NAMESPACE": f"tr{random.randrange(10**6)}",
           "SF_BASE_URL": world.crm_server.url, "SF_CLIENT_ID": CLIENT_ID, "SF_CLIENT_SECRET": CLIENT_SECRET,
           "HARVEST_BASE_URL": world.psa_server.url, "HARVEST_ACCOUNT_ID": HARVEST_ACCOUNT,
           "HARVEST_TOKEN": HARVEST_TOKEN, "TRYTON_URL": server.url, "TRYTON_DATABASE": server.dbname,
           "TRYTON_LOGIN": ids["admin_login"], "TRYTON_PASSWORD": ids["admin_password"],
           "TRYTON_COMPANY_ID": str(ids["company"])}
    settings = load(PROFILE, env=env)
    systems = dict(settings.systems)
    systems["crm"] = msgspec.structs.replace(systems["crm"], limit_retry_after=0.5,
                                             rate_limit=msgspec.structs.replace(systems["crm"].rate_limit,  # type: ignore[attr-defined]
                                                                                requests=200))
    systems["psa"] = msgspec.structs.replace(systems["psa"], rate_limit=msgspec.structs.replace(
        systems["psa"].rate_limit, requests=2000))  # type: ignore[attr-defined]
    systems["erp"] = msgspec.structs.replace(systems["erp"], timeout=10.0)
    return msgspec.structs.replace(
        settings, data_dir=data_dir, systems=systems,
        ray=msgspec.structs.replace(settings.ray, num_cpus=2, actor_cpus=0.05),
        http=msgspec.structs.replace(settings.http, host="127.0.0.1", port=0, admin_host="127.0.0.1", admin_port=0),
        streams=msgspec.structs.replace(settings.streams, partitions=4, lease_ttl=2.0, retry_backoff_cap=1.0,
                                        max_deliveries=30),
        supervisor=msgspec.structs.replace(settings.supervisor, check_interval=0.2),
        # an idle entity backs off to poll_max_interval (60 s by default): a test's edit in Tryton after a quiet
        # spell would wait for that poll, so the backoff stops at 2 s here
        entities={name: msgspec.structs.replace(ent, poll_interval=0.5, poll_max_interval=2.0, replicas=1)
                  for name, ent in settings.entities.items()})


def add_currencies(rpc: Rpc) -> None:
    """What a Tryton administrator does before the sync starts: the currencies the firm's deals use."""
    rpc.call("model.currency.currency.create", [{"name": code, "symbol": symbol, "code": code,
                                                 "rounding": Decimal("0.01"), "digits": 2}
                                                for code, symbol in CURRENCIES])


@contextlib.asynccontextmanager
async def tryton_daemon(world: World, settings: Settings) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings)
    ready = asyncio.Event()

    async def on_ready(_: Daemon) -> None:
        ready.set()

    task = asyncio.create_task(daemon.run(on_ready=on_ready, signals=False, own_ray=False))
    try:
        await wait_for(lambda: ready.is_set() or task.done(), timeout=90, message="daemon ready")
        if task.done():
            task.result()
        yield daemon
    finally:
        daemon.stop_event.set()
        code = await asyncio.wait_for(task, timeout=90)
        assert code == 0


class TrytonView:
    """Tryton as its users see it, over JSON-RPC (admin)."""

    def __init__(self, rpc: Rpc) -> None:
        self.rpc = rpc

    def read(self, model: str, domain: list[Any], fields: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.rpc.call(f"model.{model}.search_read", domain, 0, None, [["id", "ASC"]],
                                                   fields)
        return rows

    def parties(self, name: str) -> list[dict[str, Any]]:
        return self.read("party.party", [["name", "=", name]], ["name", "identifiers", "contact_mechanisms"])

    def works(self, domain: list[Any]) -> list[dict[str, Any]]:
        return self.read("project.work", domain, ["name", "type", "parent", "party", "comment", "timesheet_works"])

    def lines_of(self, work_ids: list[int]) -> list[dict[str, Any]]:
        return self.read("timesheet.line", [["work.origin", "in", [f"project.work,{w}" for w in work_ids]]],
                         ["description", "duration", "date", "employee", "work", "invoice_line"])

    def website(self, party: int) -> str | None:
        rows = self.read("party.contact_mechanism", [["party", "=", party], ["type", "=", "website"]], ["value"])
        return str(rows[0]["value"]) if rows else None
