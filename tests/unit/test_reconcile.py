"""Reconciliation finds missing, extra and mismatched records and per-period totals, and files each
finding as an exception once however often it runs."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from accord.actors.desk import ExceptionDesk, Filters
from accord.actors.reconcile.reconciler import Reconciler
from accord.streams.scope import Scope
from tests.unit.test_sync import CONFIG, Rig

JOB = """
[reconcile.accounts]
entity = "account"
source = "crm"
target = "erp"
fields = ["name", "country"]
open_exceptions = true
"""


@pytest.fixture
async def rig(any_redis: Redis) -> Rig:
    return await Rig(any_redis, CONFIG + JOB).setup()


async def test_a_deliberate_mismatch_is_found_with_the_offending_records(rig: Rig) -> None:
    ids = [rig.crm.user_create({"name": n, "country": "US"}) for n in ("Acme", "Globex", "Initech")]
    await rig.settle()
    reconciler = Reconciler(rig.settings, rig.redis, {"crm": rig.crm, "erp": rig.erp})
    job = rig.settings.reconcile["accounts"]
    clean = await reconciler.run("accounts", job)
    assert clean.agrees and clean.compared == 3

    by_name = {f["name"]: rid for rid, f in rig.erp.records.items()}
    rig.erp.records[by_name["Acme"]]["name"] = "Acme (typo)"  # behind Accord's back: no new version
    rig.erp.tables["account"].deleted.add(by_name["Globex"])
    stray = rig.erp.user_create({"name": "Created in the ERP", "country": "US"})
    report = await reconciler.run("accounts", job)

    assert (report.compared, report.missing, report.extra, report.mismatched) == (2, 1, 1, 1)
    found = {f.kind: f for f in report.findings}
    assert found["mismatched"].differences == {"name": ["Acme", "Acme (typo)"]}
    assert found["mismatched"].source_id == ids[0] and found["mismatched"].target_id == by_name["Acme"]
    assert found["missing"].source_id == ids[1]
    assert found["extra"].target_id == stray and found["extra"].gid == ""

    again = await reconciler.run("accounts", job)
    assert again.mismatched == 1
    desk = await ExceptionDesk(rig.redis, Scope.of(rig.settings)).list(Filters(reason="reconcile"))
    assert len(desk) == 3, "a finding is filed once, not on every run"
    assert any("Acme (typo)" in e.record.message for e in desk)
    stored = await rig.redis.hget(rig.keys.reconcile("accounts"), "mismatched")
    assert stored == b"1"


async def test_the_scheduler_runs_a_due_job_once_and_not_again_before_its_interval(any_redis: Redis) -> None:
    from accord.actors.reconcile.scheduler import Scheduler

    rig = await Rig(any_redis, CONFIG + JOB + 'interval = "1h"\n').setup()
    rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    scheduler = Scheduler(rig.settings, "", redis=any_redis, connectors={"crm": rig.crm, "erp": rig.erp})
    reconciler = scheduler.reconciler()
    assert await scheduler.tick(reconciler) == 1  # never ran: due at once
    assert await scheduler.tick(reconciler) == 0  # next due in an hour
    assert await any_redis.hget(rig.keys.reconcile("accounts"), "compared") == b"1"
    await any_redis.set(rig.keys.lease("reconcile", "accounts", 0), "another daemon")
    await any_redis.hdel(rig.keys.reconcile("accounts"), "ran_ms")
    assert await scheduler.tick(reconciler) == 0, "a job another daemon holds the lease of is not run twice"


async def test_findings_and_open_exceptions_are_metrics(rig: Rig) -> None:
    from accord.pipeline_metrics import render

    rig.crm.user_create({"name": "Acme", "country": "US"})
    await rig.settle()
    rig.erp.user_create({"name": "Created in the ERP", "country": "US"})
    await Reconciler(rig.settings, rig.redis, {"crm": rig.crm, "erp": rig.erp}).run(
        "accounts", rig.settings.reconcile["accounts"])
    body = (await render(rig.redis, rig.settings)).decode()
    assert 'accord_reconcile_findings{job="accounts",kind="extra"} 1.0' in body
    assert 'accord_reconcile_findings{job="accounts",kind="mismatched"} 0.0' in body
    assert 'accord_exceptions_open{entity="account",reason="reconcile"} 1.0' in body
    assert "accord_reconcile_last_run_timestamp_seconds" in body


def test_a_condition_can_ask_for_any_value_or_one_of_several() -> None:
    from accord.actors.governance import meets

    assert meets({"project": "p1", "status": "active"}, {"project": "*", "status": ["active", "open"]})
    assert not meets({"project": None}, {"project": "*"})
    assert not meets({}, {"project": "*"})
    assert not meets({"status": "closed"}, {"status": ["active", "open"]})
    assert meets({"billable": True}, {"billable": True}) and not meets({"billable": False}, {"billable": True})
