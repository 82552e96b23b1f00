"""The account flow both ways through the real daemon: Ray actors, a real Redis (6.2 and 7), and the
CRM and ERP sandboxes over HTTP, with faults injected and actors killed mid-batch."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import ray
from redis.asyncio import Redis

from accord.app import Daemon
from accord.connectors.quickbooks import mapping as qbo_mapping
from accord.redis_server import EmbeddedRedis
from accord.sandboxes.firm.activity import Activity
from accord.sandboxes.firm.demo import demo_settings
from accord.sandboxes.firm.world import World
from accord.streams.exceptions import decode_exception
from accord.streams.keys import Keys
from accord.streams.state import Stats
from tests.helpers import wait_for
from tests.oracle.audit import compare
from tests.oracle.report import Report

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow]


class Running:
    def __init__(self, daemon: Daemon, world: World, redis: Redis) -> None:
        self.daemon = daemon
        self.world = world
        self.redis = redis
        self.settings = daemon.settings
        self.keys = Keys(self.settings.namespace)

    async def report(self) -> Report:
        return await compare(self.world, self.redis, self.settings)

    async def agreement(self, timeout: float = 60) -> Report:  # noqa: ASYNC109
        last: list[Report] = []

        async def agree() -> Report | None:
            report = await self.report()
            last[:] = [report]
            return report if report.agree else None

        try:
            return await wait_for(agree, timeout=timeout, interval=0.25, message="CRM and ERP to agree")
        except AssertionError as exc:
            report = last[0]
            detail = (report.summary(), report.mismatches[:5], report.missing_in_erp[:5], report.extra_in_erp[:5],
                      report.psa_problems[:5], await self.exceptions())
            raise AssertionError(f"{exc}: {detail}") from None

    async def exceptions(self) -> list[Any]:
        return [decode_exception(v) for v in (await self.redis.hgetall(self.keys.exception_index())).values()]

    def erp_customers_per_gid(self) -> Counter[str]:
        return Counter(qbo_mapping.to_canonical("account", w).gid or "?" for w in self.world.erp.records("Customer"))


@contextlib.asynccontextmanager
async def running_daemon(server: EmbeddedRedis, tmp: Any, *, three_systems: bool = False,
                         prepare: Callable[[World], None] | None = None, adjust: Callable[[Any], Any] | None = None,
                         **tweaks: Any) -> AsyncIterator[Running]:
    world = World().start()
    if prepare is not None:
        prepare(world)  # the systems as they were before Accord was installed
    redis = Redis.from_url(server.url)
    await redis.flushall()
    settings = world.configure(demo_settings(str(tmp), 0))
    streams = msgspec.structs.replace(settings.streams, lease_ttl=2.0, retry_backoff_cap=1.0, **tweaks)
    # Salesforce's daily-limit refusal carries no Retry-After; wait 0.5 s instead of the default minute
    systems = {**settings.systems, "crm": msgspec.structs.replace(settings.systems["crm"], limit_retry_after=0.5)}
    settings = msgspec.structs.replace(
        settings, namespace=f"e2e{random.randrange(10**6)}", streams=streams, systems=systems,
        redis=msgspec.structs.replace(settings.redis, url=server.url),
        supervisor=msgspec.structs.replace(settings.supervisor, check_interval=0.2),
        # idle entities back off to 3 s, not the default 60 s: a test's change after a quiet spell is seen soon
        entities={name: msgspec.structs.replace(ent, poll_interval=0.3, poll_max_interval=3.0)
                  for name, ent in settings.entities.items()}
        if three_systems else
        {"account": msgspec.structs.replace(settings.entities["account"], poll_interval=0.3,
                                            systems=["crm", "erp"], exclude={})})
    if not three_systems:  # accounts only: the demo's provisioning and reconciliation need other entities
        settings = msgspec.structs.replace(settings, provisioning=None, reconcile={}, sla={})
    if adjust is not None:
        settings = adjust(settings)
    daemon = Daemon(settings)
    ready = asyncio.Event()

    async def on_ready(_: Daemon) -> None:
        ready.set()

    task = asyncio.create_task(daemon.run(on_ready=on_ready, signals=False, own_ray=False))
    try:
        await wait_for(lambda: ready.is_set() or task.done(), timeout=60, message="daemon ready")
        if task.done():
            task.result()
        yield Running(daemon, world, redis)
    finally:
        daemon.stop_event.set()
        code = await asyncio.wait_for(task, timeout=60)
        assert code == 0
        await redis.aclose()
        world.stop()


async def test_accounts_sync_both_ways_with_fault_storm(ray_session: None, redis_server: EmbeddedRedis,
                                                        tmp_path: Any) -> None:
    async with running_daemon(redis_server, tmp_path) as run:
        rng = random.Random(1)
        run.world.seed(25, rng)
        report = await run.agreement()
        assert report.checked == 25
        # a 429/5xx/timeout storm on the ERP's writes (a batch, or single requests for a few fresh changes)
        # and the CRM's API while people keep working
        run.world.erp.faults.add("batch,customer", "429", 3, retry_after=0.2)
        run.world.erp.faults.add("batch,customer", "503", 2)
        run.world.erp.faults.add("batch,customer", "drop", 1)  # the ERP applies the write, the response is lost
        run.world.erp.faults.add("cdc", "timeout", 1, delay=0.5)
        run.world.crm.faults.add("query", "503", 2)
        run.world.crm.faults.add("composite", "429", 2)
        activity = Activity(run.world, rng)
        for _ in range(60):
            activity.step()
        report = await run.agreement()
        assert run.world.erp.faults.pending() == 0 and run.world.crm.faults.pending() == 0
        assert activity.done.get("erp: tax id set", 0) + activity.done.get("erp: payment terms set", 0) > 0
        counts = run.erp_customers_per_gid()
        assert counts and max(counts.values()) == 1, "a CRM account was created twice in the ERP"
        assert await run.exceptions() == []
        # metrics are served from Redis at scrape time
        import httpx

        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{run.daemon.http_port}/metrics")).text
        assert 'accord_records_written_total{entity="account",system="erp"}' in body
        assert "accord_stream_lag_seconds" in body and "accord_api_rate_limited_total" in body
        # a webhook is a hint on the system's intake stream (the poller fetches the data itself); one that
        # cannot be verified (no verifier configured for the ERP here) is refused
        async with httpx.AsyncClient() as client:
            hook = await client.post(f"http://127.0.0.1:{run.daemon.http_port}/webhooks/erp?entity=account",
                                     content=b"{}")
            unknown = await client.post(f"http://127.0.0.1:{run.daemon.http_port}/webhooks/nope", content=b"{}")
            desk = await client.get(f"http://127.0.0.1:{run.daemon.http_port}/exceptions")
            admin = await client.get(f"http://127.0.0.1:{run.daemon.admin_port}/exceptions")
        assert (hook.status_code, unknown.status_code) == (403, 404)
        assert await run.redis.xlen(run.keys.intake("erp")) == 0
        assert desk.status_code == 404 and admin.status_code == 200  # the desk is on the admin listener only


async def test_killed_writer_mid_batch_and_killed_poller_lose_and_duplicate_nothing(
        ray_session: None, redis_servers: dict[str, EmbeddedRedis], tmp_path: Any) -> None:
    async with running_daemon(redis_servers["6.2"], tmp_path) as run:
        rng = random.Random(2)
        run.world.seed(10, rng)
        await run.agreement()
        supervisor = run.daemon.supervisor
        assert supervisor is not None
        writer = supervisor.writers["account"][0]
        # the next ERP write (a batch, or a single request for a few fresh changes) hangs for 3 s; the
        # writer is killed while the request is in flight
        run.world.erp.faults.add("batch,customer", "slow", 1, delay=3.0)

        def writes_started() -> int:
            return run.world.erp.started["batch"] + run.world.erp.started["customer"]
        started = writes_started()
        run.world.seed(12, rng)
        await wait_for(lambda: writes_started() > started, timeout=30, message="a write in flight")
        ray.kill(writer.handle, no_restart=False)
        # and the CRM poller dies too, while more changes land
        activity = Activity(run.world, rng)
        for _ in range(15):
            activity.step()
        ray.kill(supervisor.pollers["crm"].handle, no_restart=False)
        for _ in range(15):
            activity.step()
        report = await run.agreement(timeout=90)
        assert report.checked >= 22
        counts = run.erp_customers_per_gid()
        assert max(counts.values()) == 1, f"duplicates after the kill: {counts.most_common(3)}"
        names = Counter(w["DisplayName"] for w in run.world.erp.records("Customer"))
        assert max(names.values()) == 1
        assert writer.restarts >= 1 and supervisor.pollers["crm"].restarts >= 1
        assert await run.exceptions() == []


async def test_scaling_writers_live_keeps_every_record_once(ray_session: None,
                                                            redis_servers: dict[str, EmbeddedRedis],
                                                            tmp_path: Any) -> None:
    from accord.supervisor import set_replicas

    async with running_daemon(redis_servers["6.2"], tmp_path) as run:
        rng = random.Random(3)
        run.world.seed(10, rng)
        await run.agreement()
        supervisor = run.daemon.supervisor
        assert supervisor is not None
        await set_replicas(run.redis, run.keys, "account", 3)  # what `accord scale` does
        await wait_for(lambda: len(supervisor.writers["account"]) == 3
                       and all(m.healthy for m in supervisor.writers["account"]), timeout=60,
                       message="three healthy writer replicas")
        run.world.seed(15, rng)
        report = await run.agreement(timeout=90)
        assert report.checked == 25
        held = [m.last.get("leases", 0) for m in supervisor.writers["account"]]
        await wait_for(lambda: sum(m.last.get("leases", 0) for m in supervisor.writers["account"]) == 32,
                       timeout=30, message="all 16 partitions x 2 targets leased across the replicas")
        assert len(held) == 3
        assert max(run.erp_customers_per_gid().values()) == 1


@pytest.mark.timeout(400)  # ~50 s on a quiet machine; its own waits allow 390 s on a busy one
async def test_three_systems_converge_under_concurrent_edits_without_duplicates_or_loops(
        ray_session: None, redis_servers: dict[str, EmbeddedRedis], tmp_path: Any) -> None:
    async with running_daemon(redis_servers["7" if "7" in redis_servers else "6.2"], tmp_path,
                              three_systems=True) as run:
        rng = random.Random(4)
        run.world.seed(8, rng, consultants=4)
        await run.agreement(timeout=90)
        activity = Activity(run.world, rng)
        for _ in range(80):  # sales, finance, project managers and consultants at work at once
            activity.step()
        await run.agreement(timeout=120)
        # two non-owner edits of a CRM-owned field: in the PSA and in the ERP
        client = next(c for c in run.world.psa.records("clients") if c["is_active"])
        run.world.psa.user_update("clients", client["id"], {"name": "Renamed in the PSA"})
        customer = next(c for c in run.world.erp.records("Customer") if not c.get("Job") and c.get("Active"))
        run.world.erp.user_update("Customer", customer["Id"], {"DisplayName": "Renamed in the ERP"})
        report = await run.agreement(timeout=120)  # includes the PSA: clients, people, projects, time
        assert report.psa_checked["time entries"] > 0 and report.psa_checked["project"] > 0
        # no duplicates anywhere: every record Accord made exists once in each sandbox
        for table, entity in (("Customer", "account"), ("Customer", "project"), ("Employee", "resource"),
                              ("TimeActivity", "time_entry")):
            gids = [qbo_mapping.to_canonical(entity, w).gid for w in run.world.erp.records(table)
                    if entity not in ("account", "project") or bool(w.get("Job")) == (entity == "project")]
            made = [g for g in gids if g]
            assert len(made) == len(set(made)), f"duplicate {entity} in the ERP"
        markers = [c["address"] for c in run.world.psa.records("clients") if "accord:" in str(c.get("address"))]
        assert len(markers) == len(set(markers))
        for table, entity in (("Item", "task"), ("Estimate", "opportunity"), ("Purchase", "expense")):
            made = [g for w in run.world.erp.records(table) if (g := qbo_mapping.to_canonical(entity, w).gid)]
            assert len(made) == len(set(made)), f"duplicate {entity} in the ERP"
        for table, key in (("invoices", "number"), ("projects", "name"), ("task_assignments", "id")):
            values = [r[key] for r in run.world.psa.records(table)]
            assert len(values) == len(set(values)), f"duplicate {table} in the PSA"
        for sobject in ("Invoice__c", "Payment__c", "Contact"):
            ids = [r["Accord_Id__c"] for r in run.world.crm.records(sobject) if r.get("Accord_Id__c")]
            assert len(ids) == len(set(ids)), f"duplicate {sobject} in the CRM"
        assert report.psa_checked["opportunity"] > 0 and report.psa_checked["task"] > 0
        counts = await Stats(run.keys).read(run.redis, Stats.RECORDS)
        assert counts.get(("violations", "psa", "account"), 0) >= 1
        assert counts.get(("violations", "erp", "account"), 0) >= 1
        # no echo loop: with nobody working, three more polls of every system write nothing
        writes = _write_requests(run.world)
        supervisor = run.daemon.supervisor
        assert supervisor is not None
        pages = {s: m.last.get("pages", 0) for s, m in supervisor.pollers.items()}
        await wait_for(lambda: all(m.last.get("pages", 0) >= pages[s] + 3 for s, m in supervisor.pollers.items()),
                       timeout=60, message="three more polls of every system")
        assert _write_requests(run.world) == writes
        assert await run.exceptions() == []


def _write_requests(world: World) -> int:
    crm = sum(1 for r in world.crm.requests.entries() if r.method in ("POST", "PATCH", "DELETE"))
    psa = sum(1 for r in world.psa.requests.entries() if r.method in ("POST", "PATCH", "DELETE"))
    erp = world.erp.requests.count("batch") + world.erp.requests.count("customer")
    return crm + psa + erp



async def test_records_already_in_the_erp_are_linked_by_tax_id_and_email_not_duplicated(
        ray_session: None, redis_servers: dict[str, EmbeddedRedis], tmp_path: Any) -> None:
    pre_customers: dict[str, str] = {}
    pre_employees: list[str] = []

    def before_accord(world: World) -> None:
        crm_ids = world.seed(6, random.Random(5), consultants=3)
        # the ERP already knows three of the clients (other names, same tax ids, billed in their currency: a
        # QuickBooks customer's currency never changes after its creation) and two of the people
        for crm_id in crm_ids[:3]:
            account = world.crm.get("Account", crm_id) or {}
            tax = account.get("Tax_Id__c") or f"TX-{crm_id[-4:]}"
            world.crm.user_update("Account", crm_id, {"Tax_Id__c": tax})
            pre_customers[crm_id] = world.erp.user_create("Customer", {
                "DisplayName": f"{account['Name']} (finance's spelling)", "PrimaryTaxIdentifier": tax,
                "CurrencyRef": {"value": account.get("CurrencyIsoCode") or "USD"}})
        for user in world.psa.records("users")[:2]:
            pre_employees.append(world.erp.user_create("Employee", {
                "GivenName": user["first_name"], "FamilyName": user["last_name"],
                "PrimaryEmailAddr": {"Address": user["email"].upper()}}))

    async with running_daemon(redis_servers["6.2"], tmp_path, three_systems=True, prepare=before_accord) as run:
        await run.agreement(timeout=90)
        customers = [c for c in run.world.erp.records("Customer") if not c.get("Job")]
        assert len(customers) == 6, "a pre-existing customer was duplicated"
        for crm_id, erp_id in pre_customers.items():
            gid = await run.redis.get(run.keys.xid("account", "crm", crm_id))
            assert gid == await run.redis.get(run.keys.xid("account", "erp", erp_id))
            crm_name = (run.world.crm.get("Account", crm_id) or {})["Name"]
            assert (run.world.erp.get("Customer", erp_id) or {})["DisplayName"] == crm_name  # the CRM owns it
        assert len(run.world.erp.records("Employee")) == 3
        for erp_id in pre_employees:
            assert await run.redis.get(run.keys.xid("resource", "erp", erp_id)) is not None
        counts = await Stats(run.keys).read(run.redis, Stats.RECORDS)
        assert counts[("matched", "erp", "account")] == 3 and counts[("matched", "erp", "resource")] == 2
