"""Probabilistic fault storms in every sandbox (``FaultPlan.storm`` and ``/__sandbox__/storm``): the rate,
the seed, endpoint filters, bursts, the storm's end on the sandbox clock, the kinds as each API renders
them, and the counted faults that keep working beside them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from accord.sandboxes.faults import FaultPlan
from accord.sandboxes.harvest.sandbox import HarvestState
from accord.sandboxes.harvest.sandbox import build_app as build_harvest
from accord.sandboxes.server import Clock
from tests.connectors import harvest_rig


def _decisions(plan: FaultPlan, endpoint: str, n: int) -> list[str | None]:
    out = []
    for _ in range(n):
        fault = plan.take(endpoint)
        out.append(fault.kind if fault else None)
    return out


def test_a_storm_fails_about_its_rate_of_requests_and_replays_with_its_seed() -> None:
    plans = [FaultPlan(), FaultPlan()]
    for plan in plans:
        plan.storm(0.3, ["500", "503", "timeout", "drop"], seed=42)
    first, second = (_decisions(plan, "batch", 2000) for plan in plans)
    assert first == second, "the same seed and the same requests give the same faults"
    hit = sum(1 for kind in first if kind is not None)
    assert 0.25 < hit / 2000 < 0.35
    assert set(first) == {None, "500", "503", "timeout", "drop"}
    assert sum(plans[0].injected().values()) == hit
    other = FaultPlan()
    other.storm(0.3, ["500", "503", "timeout", "drop"], seed=43)
    assert _decisions(other, "batch", 2000) != first


def test_rate_weights_endpoints_and_exclusions() -> None:
    plan = FaultPlan()
    plan.storm(1.0, ["429", "503"], weights=[0.0, 1.0], endpoints=["batch", "query"], seed=1)
    assert _decisions(plan, "batch", 5) == ["503"] * 5
    assert _decisions(plan, "token", 5) == [None] * 5
    calm = FaultPlan()
    calm.storm(0.0, seed=1)
    assert _decisions(calm, "batch", 50) == [None] * 50
    spared = FaultPlan()
    spared.storm(1.0, ["500"], exclude=["token"], seed=1)
    assert _decisions(spared, "token", 3) == [None] * 3 and _decisions(spared, "cdc", 3) == ["500"] * 3


def test_a_hit_fails_a_burst_of_consecutive_requests_to_its_endpoint() -> None:
    plan = FaultPlan()
    plan.storm(0.05, ["429"], burst=4, retry_after=2.5, seed=3)
    decisions = _decisions(plan, "batch", 3000)
    runs, current = [], 0
    for kind in decisions:
        if kind is None:
            if current:
                runs.append(current)
            current = 0
        else:
            current += 1
    assert runs and all(n % 4 == 0 for n in runs), "every hit fails four requests in a row"
    fault = FaultPlan()
    fault.storm(1.0, ["429"], retry_after=2.5, seed=3)
    taken = fault.take("query")
    assert taken is not None and taken.retry_after == 2.5


def test_a_storm_ends_after_its_seconds_on_the_sandbox_clock_and_counted_faults_come_first() -> None:
    clock = Clock(start=1_000_000.0)
    plan = FaultPlan(now=clock.now)
    plan.storm(1.0, ["500"], seconds=30, seed=1)
    plan.add("batch", "429", 2)
    assert _decisions(plan, "batch", 4) == ["429", "429", "500", "500"]
    assert plan.pending() == 0 and plan.storms() == 1
    clock.advance(31)
    assert _decisions(plan, "batch", 3) == [None] * 3 and plan.storms() == 0
    assert plan.injected() == {"429": 2, "500": 2}
    plan.storm(1.0, ["503"], seed=1)
    plan.calm()
    assert plan.take("batch") is None


def test_a_storm_without_kinds_or_with_bad_weights_is_refused() -> None:
    plan = FaultPlan()
    with pytest.raises(msgspec.ValidationError):
        plan.storm(0.5, [])
    with pytest.raises(msgspec.ValidationError):
        plan.storm(0.5, ["500", "503"], weights=[1.0])
    with pytest.raises(msgspec.ValidationError):
        plan.storm(1.5, ["500"])


# -- over HTTP, as a sandbox in another process is driven ------------------------------------------
@pytest.fixture
def harvest() -> HarvestState:
    return HarvestState(clock=Clock(start=harvest_rig.START), rate_limit=100_000)


@pytest.fixture
async def api(harvest: HarvestState) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_harvest(harvest)),
                                 base_url="http://harvest.test", headers=harvest_rig.HEADERS) as client:
        yield client


async def test_a_storm_over_the_admin_api_fails_requests_in_the_apis_own_shapes(harvest: HarvestState,
                                                                                 api: httpx.AsyncClient) -> None:
    started = await api.post("/__sandbox__/storm", json={"rate": 1.0, "kinds": ["429"], "endpoints": ["users"],
                                                         "retry_after": 3, "seed": 5})
    assert started.status_code == 200 and started.json()["storms"] == 1
    throttled = await api.get("/v2/users")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "3"
    assert (await api.get("/v2/clients")).status_code == 200, "other endpoints are spared"
    assert (await api.delete("/__sandbox__/storm")).json()["storms"] == 0
    assert (await api.get("/v2/users")).status_code == 200
    await api.post("/__sandbox__/storm", json={"rate": 1.0, "kinds": ["500", "503"], "seed": 5})
    assert {(await api.get("/v2/users")).status_code for _ in range(20)} == {500, 503}
    status = (await api.get("/__sandbox__/faults")).json()
    assert status["storms"] == 1 and status["injected"]["429"] == 1
    assert status["injected"]["500"] + status["injected"]["503"] == 20
    log = (await api.get("/__sandbox__/requests")).json()
    assert sum(1 for e in log if e["fault"]) == 21
    assert (await api.delete("/__sandbox__/faults")).json() == {"cleared": True}
    assert (await api.get("/__sandbox__/faults")).json()["storms"] == 0


async def test_a_stormed_drop_acts_then_loses_the_answer_and_a_timeout_holds_then_fails(
        harvest: HarvestState, api: httpx.AsyncClient) -> None:
    harvest.faults.storm(1.0, ["drop"], endpoints=["clients"], seed=1)
    lost = await api.post("/v2/clients", json={"name": "Acme Corp", "currency": "USD"})
    assert lost.status_code == 503
    assert [c["name"] for c in harvest.records("clients")] == ["Acme Corp"], "the server acted before failing"
    harvest.faults.calm()
    harvest.faults.storm(1.0, ["timeout"], endpoints=["users"], delay=0.05, seed=1)
    held = await api.get("/v2/users")
    assert held.status_code == 504
    assert [e.fault for e in harvest.requests.entries("users")] == ["timeout"]


async def test_a_malformed_storm_is_refused_with_400(api: httpx.AsyncClient) -> None:
    for body in ({"rate": 2.0}, {"rate": 0.5, "kinds": ["boom"]}, {"rate": 0.5, "kinds": []}, {"kinds": ["500"]}):
        refused = await api.post("/__sandbox__/storm", json=body)
        assert refused.status_code == 400, body
    assert (await api.get("/__sandbox__/faults")).json()["storms"] == 0


def test_a_counted_fault_may_name_several_endpoints_a_write_can_take() -> None:
    plan = FaultPlan()
    plan.add("batch,customer", "429", 2)
    assert plan.take("item") is None and plan.pending() == 2
    assert _decisions(plan, "customer", 1) + _decisions(plan, "batch", 2) == ["429", "429", None]
    assert plan.pending() == 0
