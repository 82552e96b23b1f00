"""Locked-record policies: changes to billed or closed-period records, and withdrawn approvals, are
blocked, sent to finance or adjusted; unlocked withdrawals leave the target."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from accord.actors.desk import ExceptionDesk, Filters
from accord.actors.poll.poller import Poller
from accord.actors.write.writer import Writer
from accord.config.load import loads
from accord.streams.keys import Keys
from accord.streams.log import ensure_groups
from accord.streams.scope import Scope
from tests.fakes import MemorySystem
from tests.helpers import CRM_AND_ERP, PSA

ENTITIES = ("time_entry", "invoice")
CONFIG = 'namespace = "lk"\n[streams]\npartitions = 2\nretry_backoff_cap = "1ms"\n' + CRM_AND_ERP + PSA + """
[entities.time_entry]
owner = "psa"
systems = ["psa", "erp"]
when = { erp = { approval = "approved" } }
locked = { target = "erp", policy = "{policy}", measure = "hours", date_field = "work_date", closed_through = "2026-10-31" }
[entities.invoice]
owner = "erp"
systems = ["erp", "psa"]
"""


class World:
    def __init__(self, redis: Redis, policy: str) -> None:
        self.settings = loads(CONFIG.replace("{policy}", policy), env={})
        self.redis = redis
        self.keys = Keys("lk")
        self.psa = MemorySystem("psa", entities=ENTITIES)
        self.erp = MemorySystem("erp", entities=ENTITIES)
        systems = {"psa": self.psa, "erp": self.erp}
        self.pollers = {s: Poller(self.settings, s, "", connector=c, redis=redis) for s, c in systems.items()}
        self.writers = {e: Writer(self.settings, e, "", connectors=dict(systems), redis=redis)  # type: ignore[arg-type]
                        for e in ENTITIES}
        for writer in self.writers.values():
            writer.assign(range(2))

    async def setup(self) -> World:
        for entity in ENTITIES:
            await ensure_groups(self.redis, self.keys, entity, self.settings.targets_of(entity), 2)
        return self

    async def settle(self, rounds: int = 4) -> None:
        for _ in range(rounds):
            for entity in ENTITIES:
                for poller in self.pollers.values():
                    await poller.poll_page(entity)
                while await self.writers[entity].sweep():
                    pass

    def erp_time(self) -> list[dict[str, Any]]:
        table = self.erp.tables["time_entry"]
        return [t for rid, t in table.records.items() if rid not in table.deleted]

    async def exceptions(self) -> list[str]:
        return sorted(e.record.reason for e in await ExceptionDesk(self.redis, Scope.of(self.settings)).list(Filters()))


async def _approved(world: World, day: str = "2026-11-03", hours: str = "4") -> str:
    rid = world.psa.user_create({"work_date": day, "hours": hours, "approval": "approved"}, "time_entry")
    await world.settle()
    assert [t["hours"] for t in world.erp_time()] == [hours]
    return rid


async def _bill(world: World) -> None:
    """The ERP invoices every time entry it holds (its invoice lines name them)."""
    lines = [{"time_entry": rid, "amount": "100"} for rid in world.erp.tables["time_entry"].records]
    world.erp.user_create({"number": "1001", "status": "open", "lines": lines}, "invoice")
    await world.settle()


@pytest.mark.parametrize("policy", ["block", "review"])
async def test_a_billed_record_changed_in_the_psa_is_blocked_or_sent_to_finance(any_redis: Redis, policy: str) -> None:
    world = await World(any_redis, policy).setup()
    rid = await _approved(world)
    await _bill(world)
    world.psa.user_update(rid, {"hours": "5"}, "time_entry")
    await world.settle()
    assert [t["hours"] for t in world.erp_time()] == ["4"], "nothing is written to a billed record"
    assert await world.exceptions() == ["locked" if policy == "block" else "finance_review"]


async def test_adjust_writes_the_increase_as_a_new_record_and_sends_a_decrease_to_finance(any_redis: Redis) -> None:
    world = await World(any_redis, "adjust").setup()
    rid = await _approved(world)
    await _bill(world)
    world.psa.user_update(rid, {"hours": "5.5"}, "time_entry")
    await world.settle()
    assert sorted(t["hours"] for t in world.erp_time()) == ["1.5", "4"], "the original stays, the delta is added"
    world.psa.user_update(rid, {"hours": "6"}, "time_entry")
    await world.settle()
    assert sorted(t["hours"] for t in world.erp_time()) == ["0.5", "1.5", "4"], "adjustments add up, never twice"
    assert await world.exceptions() == []
    world.psa.user_update(rid, {"hours": "2"}, "time_entry")
    await world.settle()
    assert sorted(t["hours"] for t in world.erp_time()) == ["0.5", "1.5", "4"]
    assert await world.exceptions() == ["finance_review"]


async def test_a_closed_period_locks_records_that_are_not_billed(any_redis: Redis) -> None:
    world = await World(any_redis, "block").setup()
    rid = await _approved(world, day="2026-10-15")
    world.psa.user_update(rid, {"hours": "3"}, "time_entry")
    await world.settle()
    assert [t["hours"] for t in world.erp_time()] == ["4"]
    [reason] = await world.exceptions()
    desk = await ExceptionDesk(world.redis, Scope.of(world.settings)).list(Filters())
    assert reason == "locked" and "closed period (through 2026-10-31)" in desk[0].record.message


async def test_a_withdrawn_approval_leaves_the_erp_unless_the_record_is_locked(any_redis: Redis) -> None:
    world = await World(any_redis, "review").setup()
    open_entry = await _approved(world)
    world.psa.user_update(open_entry, {"approval": "rejected"}, "time_entry")
    await world.settle()
    assert world.erp_time() == [], "an unbilled entry whose approval is withdrawn leaves the ERP"
    billed = await _approved(world, hours="2")
    await _bill(world)
    world.psa.user_update(billed, {"approval": "submitted"}, "time_entry")
    await world.settle()
    assert [t["hours"] for t in world.erp_time()] == ["2"]
    assert await world.exceptions() == ["finance_review"]



async def test_reconciliation_counts_adjustments_with_their_original(any_redis: Redis) -> None:
    from accord.actors.reconcile.reconciler import Reconciler
    from accord.config.settings import ReconcileJob

    world = await World(any_redis, "adjust").setup()
    rid = await _approved(world)
    await _bill(world)
    world.psa.user_update(rid, {"hours": "6"}, "time_entry")
    await world.settle()
    job = ReconcileJob(entity="time_entry", source="psa", target="erp", fields=["hours"], sum=["hours"],
                       period="work_date")
    report = await Reconciler(world.settings, world.redis, {"psa": world.psa, "erp": world.erp}).run("hours", job)
    assert report.agrees and report.compared == 1 and [t.source for t in report.totals] == ["6"]
