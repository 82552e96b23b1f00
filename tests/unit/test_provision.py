"""Closed-won provisioning on in-memory systems: customer checked and linked, project and work breakdown
made once, ids written back; faults, a crash between steps, and a parked step resumed from the desk."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from accord.actors.desk import ExceptionDesk, Filters
from accord.actors.poll.poller import Poller
from accord.actors.provision.process import Provisions
from accord.actors.provision.provisioner import GROUP, Provisioner
from accord.actors.write.writer import Writer
from accord.config.load import loads
from accord.connectors.errors import Permanent, Retryable
from accord.streams.keys import Keys
from accord.streams.log import ensure_groups
from accord.streams.scope import Scope
from tests.fakes import MemorySystem
from tests.helpers import CRM_AND_ERP, PSA

ENTITIES = ("account", "opportunity", "project", "task")
CONFIG = 'namespace = "pv"\n[streams]\npartitions = 2\nretry_backoff_cap = "1ms"\n' + CRM_AND_ERP + PSA + """
[entities.account]
owner = "crm"
systems = ["crm", "psa", "erp"]
[entities.opportunity]
owner = "crm"
systems = ["crm", "erp"]
when = { erp = { is_won = true } }
exclude = { erp = ["project", "project_ref", "customer_ref"] }
[entities.project]
owner = "psa"
systems = ["psa", "erp"]
[entities.task]
owner = "psa"
systems = ["psa", "erp"]
[provisioning]
crm = "crm"
psa = "psa"
erp = "erp"
required = ["name", "country"]
currencies = ["USD", "EUR"]
legal_entities = { NA = "Firm US LLC", EMEA = "Firm Europe BV" }
wait_timeout = "1h"
retry_backoff_cap = "1ms"
[provisioning.templates.default]
phases = [
  { name = "Discovery", tasks = [{ name = "Workshops", budget_hours = 16 }] },
  { name = "Delivery", tasks = [{ name = "Build" }, { name = "Travel", billable = false }] },
]
"""


class World:
    def __init__(self, redis: Redis) -> None:
        self.settings = loads(CONFIG, env={})
        self.redis = redis
        self.keys = Keys("pv")
        self.systems = {s: MemorySystem(s, entities=ENTITIES) for s in ("crm", "psa", "erp")}
        self.pollers = {s: Poller(self.settings, s, "", connector=c, redis=redis) for s, c in self.systems.items()}
        self.writers = {e: Writer(self.settings, e, "", connectors=dict(self.systems), redis=redis)  # type: ignore[arg-type]
                        for e in ENTITIES}
        for writer in self.writers.values():
            writer.assign(range(2))
        self.provisioner = self.new_provisioner()

    def new_provisioner(self) -> Provisioner:
        return Provisioner(self.settings, "", redis=self.redis, connectors=dict(self.systems))  # type: ignore[arg-type]

    async def setup(self) -> World:
        for entity in ENTITIES:
            extra = [GROUP] if entity == "opportunity" else []
            await ensure_groups(self.redis, self.keys, entity, [*self.settings.targets_of(entity), *extra], 2)
        return self

    async def settle(self, rounds: int = 4) -> None:
        for _ in range(rounds):
            for entity in ENTITIES:
                for system, poller in self.pollers.items():
                    if system in self.settings.entities[entity].systems:
                        await poller.poll_page(entity)
                while await self.writers[entity].sweep():
                    pass
            await self.provisioner.intake()
            await self.provisioner.run_due()

    def table(self, system: str, entity: str) -> dict[str, dict[str, Any]]:
        return self.systems[system].tables[entity].records


@pytest.fixture
async def world(any_redis: Redis) -> World:
    return await World(any_redis).setup()


def _won_deal(world: World, **account: Any) -> tuple[str, str]:
    crm = world.systems["crm"]
    acct = crm.user_create({"name": "Acme", "country": "US", "currency": "USD", **account}, "account")
    deal = crm.user_create({"account": acct, "name": "Acme rollout", "stage": "Negotiation", "is_won": False,
                            "amount": "90000", "delivery_region": "NA", "service_line": "Implementation"},
                           "opportunity")
    return acct, deal


async def test_a_won_deal_is_provisioned_once_with_ids_written_back(world: World) -> None:
    _, deal = _won_deal(world)
    await world.settle()
    assert world.table("psa", "project") == {}, "nothing happens before the deal is won"
    world.systems["crm"].user_update(deal, {"stage": "Closed Won", "is_won": True}, "opportunity")
    await world.settle()

    [(project_id, project)] = world.table("psa", "project").items()
    assert project["name"].startswith("Acme rollout #") and project["contract_value"] == "90000"
    assert float(project["budget_hours"]) == 16, "the budget is the work breakdown's hours"
    tasks = sorted(t["name"] for t in world.table("psa", "task").values())
    assert tasks == ["Delivery / Build", "Delivery / Travel", "Discovery / Workshops"]
    customer_id = next(iter(world.table("erp", "account")))
    opp = world.table("crm", "opportunity")[deal]
    assert (opp["project_ref"], opp["customer_ref"]) == (project_id, customer_id)
    assert len(world.table("erp", "project")) == 1, "the provisioned project syncs to the ERP like any other"
    [process] = await Provisions(world.redis, world.keys).all()
    assert process.step == "done" and process.legal_entity == "Firm US LLC" and len(process.tasks) == 3

    writes = sum(s.write_calls for s in world.systems.values())
    world.systems["crm"].user_update(deal, {"amount": "95000"}, "opportunity")  # a later change of a won deal
    await world.settle()
    assert len(world.table("psa", "project")) == 1 and len(world.table("psa", "task")) == 3
    assert sum(s.write_calls for s in world.systems.values()) > writes  # the amount still syncs


async def test_faults_and_a_crash_between_steps_make_nothing_twice(world: World) -> None:
    _, deal = _won_deal(world)
    await world.settle()
    psa = world.systems["psa"]
    psa.fail_batches = [Retryable("psa", "503"), Retryable("psa", "timeout")]
    world.systems["crm"].user_update(deal, {"stage": "Closed Won", "is_won": True}, "opportunity")
    for system in ("crm",):
        await world.pollers[system].poll_page("opportunity")
    await world.provisioner.intake()
    for _ in range(3):
        await world.provisioner.run_due()
    world.provisioner = world.new_provisioner()  # the provisioner dies and a new one resumes
    await world.settle()
    assert len(world.table("psa", "project")) == 1 and len(world.table("psa", "task")) == 3
    assert psa.fail_batches == []
    assert await ExceptionDesk(world.redis, Scope.of(world.settings)).list(Filters()) == []


async def test_a_failing_step_parks_and_the_desk_resumes_it_from_that_step(world: World) -> None:
    _, deal = _won_deal(world, country=None)  # the ERP requires a country
    await world.settle()
    world.systems["crm"].user_update(deal, {"stage": "Closed Won", "is_won": True}, "opportunity")
    await world.settle()
    desk = ExceptionDesk(world.redis, Scope.of(world.settings))
    [entry] = await desk.list(Filters(reason="provisioning"))
    assert "stopped at step `customer`" in entry.record.message and "lacks country" in entry.record.message
    assert world.table("psa", "project") == {}

    acct = next(iter(world.table("crm", "account")))
    world.systems["crm"].user_update(acct, {"country": "US"}, "account")
    await world.settle()
    assert world.table("psa", "project") == {}, "a parked process waits for the operator"
    await desk.retry(entry.record.exception_id, "ops")
    await world.settle()
    assert len(world.table("psa", "project")) == 1
    assert (await desk.get(entry.record.exception_id)).status.state == "retried"
    assert await desk.list(Filters()) == []


async def test_a_permanent_write_error_names_the_step_and_the_retry_does_not_recreate(world: World) -> None:
    _, deal = _won_deal(world)
    await world.settle()
    psa = world.systems["psa"]
    world.systems["crm"].user_update(deal, {"stage": "Closed Won", "is_won": True}, "opportunity")
    await world.pollers["crm"].poll_page("opportunity")
    await world.provisioner.intake()
    [process] = await Provisions(world.redis, world.keys).all()
    psa.fail_records[f"prov{process.opportunity}.1"] = Permanent("psa", "422 task name taken")
    await world.settle()
    desk = ExceptionDesk(world.redis, Scope.of(world.settings))
    [entry] = await desk.list(Filters(reason="provisioning"))
    assert "stopped at step `tasks`" in entry.record.message and "task name taken" in entry.record.message
    psa.fail_records.clear()
    await desk.retry(entry.record.exception_id, "ops")
    await world.settle()
    assert len(world.table("psa", "project")) == 1 and len(world.table("psa", "task")) == 3
    assert psa.creates == 5  # the client (account sync), the project and three tasks, each once


async def test_deals_won_before_accord_first_read_the_crm_are_history(world: World) -> None:
    _, deal = _won_deal(world)
    world.systems["crm"].user_update(deal, {"stage": "Closed Won", "is_won": True}, "opportunity")
    await world.settle()
    assert world.table("psa", "project") == {} and await Provisions(world.redis, world.keys).all() == []
    assert len(world.table("erp", "opportunity")) == 1, "it still syncs (as a won deal) to the ERP"


async def test_processes_are_metrics_by_step_and_state(world: World) -> None:
    from accord.pipeline_metrics import render

    _, deal = _won_deal(world, country=None)
    await world.settle()
    world.systems["crm"].user_update(deal, {"stage": "Closed Won", "is_won": True}, "opportunity")
    await world.settle()
    body = (await render(world.redis, world.settings)).decode()
    assert 'accord_provisioning_processes{state="parked",step="customer"} 1.0' in body
    assert 'accord_provisioning_processes{state="running",step="customer"} 0.0' in body
    assert 'accord_provisioning_processes{state="done",step="done"} 0.0' in body

    acct = next(iter(world.table("crm", "account")))
    world.systems["crm"].user_update(acct, {"country": "US"}, "account")
    desk = ExceptionDesk(world.redis, Scope.of(world.settings))
    [entry] = await desk.list(Filters(reason="provisioning"))
    await desk.retry(entry.record.exception_id, "ops")
    await world.settle()
    store = Provisions(world.redis, world.keys)
    counts = await store.counts()
    assert counts[("done", "done")] == 1 and sum(counts.values()) == 1, "moved, not copied, between labels"

    # processes saved by a version without label sets are counted once the daemon starts
    await world.redis.delete(*(world.keys.provisions_labelled(*each) for each in counts),
                             world.keys.provisions_labels_built())
    assert sum((await store.counts()).values()) == 0
    assert await store.label_once() == 1 and await store.label_once() == 0
    assert (await store.counts())[("done", "done")] == 1


async def test_a_malformed_entry_is_acked_and_the_deals_after_it_start(world: World) -> None:
    _, deal = _won_deal(world)
    await world.settle()
    await world.redis.xadd(world.keys.changes("opportunity", 0), {"d": b"\xc1 not msgpack"})
    world.systems["crm"].user_update(deal, {"stage": "Closed Won", "is_won": True}, "opportunity")
    await world.settle()
    assert len(world.table("psa", "project")) == 1
    for partition in range(2):
        pending = await world.redis.xpending(world.keys.changes("opportunity", partition), Keys.group(GROUP))
        assert pending["pending"] == 0
