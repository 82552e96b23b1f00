"""The operator's tools through the real daemon (Ray actors, real Redis, the three sandboxes over HTTP): an
exception edited and retried to success from the desk, replay and resync each run twice without a
duplicate, a deliberate mismatch found by reconciliation with the offending record listed, and the
locked-record policies on time in a closed period."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import msgspec
import pytest

from accord.actors.desk import ExceptionDesk, Filters
from accord.actors.reconcile.reconciler import Reconciler
from accord.config.settings import LockedPolicy
from accord.redis_server import EmbeddedRedis
from accord.replay import Selection, replay
from accord.sandboxes.harvest.seed import new_project
from accord.streams.scope import Scope
from accord.streams.state import Cursors
from tests.helpers import wait_for
from tests.integration.test_daemon_e2e import Running, running_daemon

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow]


def _erp_customers(run: Running, name: str) -> list[dict[str, Any]]:
    return [c for c in run.world.erp.records("Customer") if c["DisplayName"] == name and not c.get("Job")]


async def _open(run: Running, **filters: Any) -> list[Any]:
    return await ExceptionDesk(run.redis, Scope.of(run.settings)).list(Filters(**filters))


async def test_desk_replay_resync_and_reconciliation(ray_session: None, redis_servers: dict[str, EmbeddedRedis],
                                                      tmp_path: Any) -> None:
    async with running_daemon(redis_servers["6.2"], tmp_path, three_systems=True) as run:
        world = run.world
        world.seed(4, random.Random(31), consultants=2)
        await run.agreement(timeout=90)

        # 1. the ERP already has a "Globex" of another country: the CRM's new Globex is refused (6240)
        world.erp.user_create("Customer", {"DisplayName": "Globex", "BillAddr": {"Country": "DE"}})
        crm_id = world.crm.user_create("Account", {"Name": "Globex", "BillingCountryCode": "US",
                                                   "CurrencyIsoCode": "USD"})
        async def refused() -> list[Any]:
            return [e for e in await _open(run, reason="permanent", system="erp") if e.record.source_id == crm_id]

        [entry] = await wait_for(refused, timeout=60, message="the refused create on the desk")
        assert "6240" in entry.record.message or "Duplicate" in entry.record.message
        desk = ExceptionDesk(run.redis, Scope.of(run.settings))
        await desk.retry(entry.record.exception_id, "finance", {"name": "Globex (US)"})
        await wait_for(lambda: _erp_customers(run, "Globex (US)"), timeout=60, message="the edited customer")
        world.crm.user_update("Account", crm_id, {"Name": "Globex (US)"})  # sales follow finance's naming
        await run.agreement(timeout=90)
        assert len(_erp_customers(run, "Globex (US)")) == 1 and len(_erp_customers(run, "Globex")) == 1
        assert (await desk.get(entry.record.exception_id)).status.state == "retried"

        # 2. replay and resync, each twice: every write is an update of a known record, none a create
        customers = len(world.erp.records("Customer"))
        clients = len(world.psa.records("clients"))
        for run_id in ("a", "b"):
            report = await replay(run.redis, Scope.of(run.settings), Selection(entity="account", target="erp"), run_id)
            assert report.replayed >= 5
            await Cursors(run.redis, run.keys).request_resync("crm", "account", 0, f"resync-{run_id}")
            await wait_for(lambda: _resync_done(run), timeout=60, message="the resync to finish")
            await run.agreement(timeout=90)
        assert len(world.erp.records("Customer")) == customers and len(world.psa.records("clients")) == clients
        assert await _open(run) == []

        # 3. an ERP time activity edited behind Accord's back: reconciliation lists it
        entry = _approved_time(world, "Reconciled P001")
        await wait_for(lambda: len(_erp_time(run, "Reconciled P001")) == 1, timeout=90, message="time in the ERP")
        [activity] = [row for row in world.erp.realm().tables["TimeActivity"].values()
                      if row.wire["Id"] == _erp_time(run, "Reconciled P001")[0]["Id"]]
        activity.wire["Hours"] = int(activity.wire.get("Hours") or 0) + 3
        job = run.settings.reconcile["billable_hours"]
        reconciler = Reconciler(run.settings, run.redis)
        try:
            found = await reconciler.run("billable_hours", job)
        finally:
            await reconciler.aclose()
        [finding] = [f for f in found.findings if f.kind == "mismatched"]
        assert finding.target_id == activity.wire["Id"] and finding.source_id == str(entry)
        assert "hours" in finding.differences and found.mismatched == 1 and not found.agrees
        assert [t for t in found.totals if not t.agrees], "the month's hours disagree too"


def _approved_time(world: Any, project: str) -> int:
    """A new project with one approved billable time entry in the PSA; returns the entry's id."""
    client = next(c for c in world.psa.records("clients") if c["is_active"] and "accord:" in str(c["address"]))
    pid = new_project(world.psa, random.Random(5), client["id"], client["name"], world.psa_seed, name=project)
    user = next(a["user"]["id"] for a in world.psa.records("user_assignments") if a["project"]["id"] == pid)
    entry = world.psa.log_time(user, pid, world.psa_seed["tasks"][0], "2026-11-03", 2.0, "Workshop")
    world.psa.approve_time([entry])
    return int(entry)


async def _resync_done(run: Running) -> bool:
    return not (await Cursors(run.redis, run.keys).position("crm", "account")).in_resync


@pytest.mark.parametrize("policy", ["block", "review", "adjust"])
async def test_locked_record_policies_on_time_in_a_closed_period(
        ray_session: None, redis_servers: dict[str, EmbeddedRedis], tmp_path: Any, policy: str) -> None:
    closed = LockedPolicy(target="erp", policy=policy, measure="hours", date_field="work_date",  # type: ignore[arg-type]
                          closed_through=dt.date(2026, 10, 31))

    def lock(settings: Any) -> Any:
        entity = msgspec.structs.replace(settings.entities["time_entry"], locked=closed)
        return msgspec.structs.replace(settings, entities={**settings.entities, "time_entry": entity})

    async with running_daemon(redis_servers["6.2"], tmp_path, three_systems=True, adjust=lock) as run:
        world = run.world
        world.seed(3, random.Random(41), consultants=2)
        await run.agreement(timeout=90)
        client = next(c for c in world.psa.records("clients") if c["is_active"] and "accord:" in str(c["address"]))
        pid = new_project(world.psa, random.Random(5), client["id"], client["name"], world.psa_seed,
                          name="Closed Period P001")
        user = next(a["user"]["id"] for a in world.psa.records("user_assignments") if a["project"]["id"] == pid)
        task = world.psa_seed["tasks"][0]
        october = world.psa.log_time(user, pid, task, "2026-10-30", 2.0, "Before the close")
        november = world.psa.log_time(user, pid, task, "2026-11-03", 2.0, "After the close")
        world.psa.approve_time([october, november])
        await wait_for(lambda: len(_erp_time(run, "Closed Period P001")) == 2, timeout=150, message="time in the ERP")

        # a manager withdraws both approvals: the open period's entry leaves the ERP, the closed one is locked
        world.psa.unapprove_time([october, november])
        await wait_for(lambda: len(_erp_time(run, "Closed Period P001")) == 1, timeout=60,
                       message="the open period's entry withdrawn from the ERP")
        reason = "locked" if policy == "block" else "finance_review"
        [entry] = await wait_for(lambda: _open(run, reason=reason), timeout=60, message=f"a {reason} exception")
        assert "closed period (through 2026-10-31)" in entry.record.message
        # more hours on the closed-period entry, approved again
        world.psa.edit_time(october, hours=3.5)
        world.psa.approve_time([october])
        if policy == "adjust":
            await wait_for(lambda: sorted(w["Hours"] + w.get("Minutes", 0) / 60 for w in
                                          _erp_time(run, "Closed Period P001")) == [1.5, 2.0],
                           timeout=60, message="an adjustment of +1.5 h beside the original 2 h")
        else:
            async def second_on_desk() -> bool:
                return len(await _open(run, reason=reason, state=None)) == 2

            await wait_for(second_on_desk, timeout=60, message="the second change on the desk")
            assert [w["Hours"] for w in _erp_time(run, "Closed Period P001")] == [2]


def _erp_time(run: Running, project: str) -> list[dict[str, Any]]:
    ids = {c["Id"] for c in run.world.erp.records("Customer") if c.get("Job") and c["DisplayName"] == project}
    return [w for w in run.world.erp.records("TimeActivity") if (w.get("CustomerRef") or {}).get("value") in ids]

