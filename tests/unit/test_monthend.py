"""The month-end view: drain rates and ETAs (pure, on an injected clock), the budget, poll-interval and
drain-ETA families on /metrics (against real Redis servers: the budget is Lua on the server's clock), and
the supervisor falling back to the config's replicas when an override is removed."""

from __future__ import annotations

import math
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from accord.actors.budget import RedisBudgetStore
from accord.config.load import loads
from accord.config.settings import Settings
from accord.config.types import Duration, RateLimit
from accord.connectors.budget import Priority
from accord.monthend_metrics import DrainRates, window_label
from accord.pipeline_metrics import render
from accord.scalecli import Budget, read_budgets, verdict
from accord.streams.keys import Keys
from accord.supervisor import Supervisor, desired_replicas, reset_replicas, set_replicas
from accord.web import build_app
from tests.helpers import CRM_AND_ERP

# ERP windows an hour long, so nothing leaves them while a test runs
CONFIG = """
namespace = "m"
[streams]
partitions = 4
""" + CRM_AND_ERP + """rate_limit = { requests = 4, period = "1h" }
second_limit = { requests = 10, period = "1h" }
batch_limit = { requests = 2, period = "1h" }
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
replicas = 2
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings() -> Settings:
    return loads(CONFIG, env={})


# -- DrainRates -----------------------------------------------------------------------------------------------


def test_no_lag_is_drained_now_whatever_the_samples() -> None:
    drains = DrainRates(clock=Clock())
    assert drains.eta(("account", "erp"), 0) == 0.0
    assert drains.eta(("account", "erp"), 5) is None  # no sample yet: unknown, not a guess


def test_the_rate_runs_from_the_oldest_sample_in_the_horizon() -> None:
    clock = Clock()
    drains = DrainRates(horizon=300.0, clock=clock)
    pair = ("account", "erp")
    drains.observe({pair: 40})
    assert drains.rate(pair) is None and drains.eta(pair, 30) is None  # one sample has no rate
    clock.now += 60
    drains.observe({pair: 70})
    assert drains.rate(pair) == pytest.approx(0.5)
    assert drains.eta(pair, 30) == pytest.approx(60.0)
    clock.now += 60
    drains.observe({pair: 70})  # nothing acked this minute: the rate halves over the two minutes
    assert drains.eta(pair, 30) == pytest.approx(120.0)
    clock.now += 250  # the first two samples leave the horizon; the last two drained nothing
    drains.observe({pair: 70})
    assert drains.rate(pair) == 0.0
    assert drains.eta(pair, 30) == math.inf
    assert drains.eta(pair, 0) == 0.0


def test_a_lower_total_starts_the_pair_afresh() -> None:
    clock = Clock()
    drains = DrainRates(clock=clock)
    pair = ("account", "erp")
    drains.observe({pair: 500})
    clock.now += 10
    drains.observe({pair: 20})  # Redis lost its counters: not a negative rate
    assert drains.rate(pair) is None
    clock.now += 10
    drains.observe({pair: 30})
    assert drains.rate(pair) == pytest.approx(1.0)


def test_window_labels() -> None:
    assert window_label(RateLimit(requests=500, period=Duration(60.0))) == "500/60s"
    assert window_label(RateLimit(requests=40, period=Duration(60.0), kind="batch")) == "40/60s batch"
    assert window_label(RateLimit(requests=10, period=Duration(0.5))) == "10/0.5s"


# -- /metrics -------------------------------------------------------------------------------------------------


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def windows(settings: Settings, kind: str = "*") -> tuple[RateLimit, ...]:
    return tuple(w for w in settings.systems["erp"].limits().windows if w.counts(kind))


async def test_budget_families_show_each_window_and_counter(real_redis: Redis, settings: Settings) -> None:
    store = RedisBudgetStore(real_redis, Keys("m"), "erp", settings.systems["erp"].limits())
    waits = [await store.take(windows(settings), Priority.FRESH, uuid.uuid4().hex) for _ in range(5)]
    assert waits[:4] == [0.0] * 4 and waits[4] > 0  # the 4/1h window is spent
    await store.throttle(0.01)
    got = samples(await render(real_redis, settings))
    assert got["accord_api_budget_used_ratio", (("system", "erp"), ("window", "4/3600s"))] == 1.0
    assert got["accord_api_budget_used_ratio", (("system", "erp"), ("window", "10/3600s"))] == pytest.approx(0.4)
    assert got["accord_api_budget_used_ratio", (("system", "erp"), ("window", "2/3600s batch"))] == 0.0
    assert got["accord_api_budget_used_ratio", (("system", "crm"), ("window", "25/1s"))] == 0.0
    erp = (("system", "erp"),)
    assert got["accord_api_budget_grants_total", erp] == 4
    assert got["accord_api_budget_refusals_total", erp] == 1
    assert got["accord_api_budget_throttles_total", erp] == 1
    assert got["accord_api_budget_refusals_total", (("system", "crm"),)] == 0


async def test_poll_interval_is_the_achieved_one(real_redis: Redis, settings: Settings) -> None:
    keys = Keys("m")
    await real_redis.hset(keys.poll_pace("crm"), mapping={"account": "4.500"})
    got = samples(await render(real_redis, settings))
    assert got["accord_poll_interval_seconds", (("entity", "account"), ("system", "crm"))] == 4.5
    assert not any(name == "accord_poll_interval_seconds" and ("system", "erp") in labels for name, labels in got)


async def test_drain_eta_between_scrapes(real_redis: Redis, settings: Settings) -> None:
    keys, clock = Keys("m"), Clock()
    drains = DrainRates(clock=clock)
    await real_redis.hset(keys.produced("account"), mapping={"0": 60, "1": 40})
    await real_redis.hset(keys.acked("account", "crm"), mapping={"0": 60, "1": 40})
    await real_redis.hset(keys.acked("account", "erp"), mapping={"0": 30, "1": 10})
    crm, erp = (("entity", "account"), ("target", "crm")), (("entity", "account"), ("target", "erp"))

    async def eta() -> dict[Any, float]:
        got = samples(await render(real_redis, settings, None, drains))
        return {labels: v for (name, labels), v in got.items() if name == "accord_backlog_drain_eta_seconds"}

    assert await eta() == {crm: 0.0}  # the ERP's rate is not known after one scrape
    clock.now += 60
    await real_redis.hincrby(keys.acked("account", "erp"), "0", 30)  # 30 in a minute; 30 left
    assert await eta() == {crm: 0.0, erp: pytest.approx(60.0)}
    clock.now += 60
    assert (await eta())[erp] == pytest.approx(120.0)
    clock.now += 300
    await eta()
    clock.now += 15
    assert (await eta())[erp] == math.inf  # lag, and nothing acked within the horizon
    assert "accord_backlog_drain_eta_seconds" not in (await render(real_redis, settings)).decode()


async def test_the_web_app_keeps_drain_rates_between_scrapes(fake_redis: Redis, settings: Settings) -> None:
    keys = Keys("m")
    await fake_redis.hset(keys.produced("account"), mapping={"0": 9})
    await fake_redis.hset(keys.acked("account", "crm"), mapping={"0": 9})
    await fake_redis.hset(keys.acked("account", "erp"), mapping={"0": 4})
    app = build_app(settings, fake_redis, supervisor=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord") as client:
        first = samples((await client.get("/metrics")).content)
        second = samples((await client.get("/metrics")).content)
    crm, erp = (("entity", "account"), ("target", "crm")), (("entity", "account"), ("target", "erp"))
    assert first["accord_backlog_drain_eta_seconds", crm] == 0.0
    assert ("accord_backlog_drain_eta_seconds", erp) not in first
    assert second["accord_backlog_drain_eta_seconds", erp] == math.inf  # lag 5, nothing acked since the first


# -- whether more writers help --------------------------------------------------------------------------------


async def test_refusals_while_watching_saturate_a_budget_with_room(real_redis: Redis, settings: Settings) -> None:
    store = RedisBudgetStore(real_redis, Keys("m"), "erp", settings.systems["erp"].limits())
    await store.throttle(60.0)  # every caller pauses: refused, though the windows are empty

    async def refused_meanwhile(_: float) -> None:
        assert await store.take(windows(settings), Priority.BACKLOG, uuid.uuid4().hex) > 0

    budgets = await read_budgets(real_redis, settings, ["erp"], gap=0.5, sleep=refused_meanwhile)
    assert budgets["erp"].writes_used == 0.0 and budgets["erp"].refusals_per_s == pytest.approx(2.0)
    assert budgets["erp"].saturated
    assert "more writers will not help" in verdict("erp", 10, budgets["erp"], 1, 4)


def test_verdicts() -> None:
    room = Budget(system="erp", used={"500/60s": 0.5, "40/60s batch": 1.0}, writes_used=0.5, refusals_per_s=0.0)
    full = Budget(system="erp", used={"500/60s": 0.9}, writes_used=0.9, refusals_per_s=0.0)
    assert verdict("erp", 100, full, 1, 4) == "the erp API quota is the bottleneck: more writers will not help"
    assert verdict("erp", 0, room, 1, 4) == "no lag: nothing to scale"
    assert "more writers may help (at most 4" in verdict("erp", 100, room, 1, 4)  # a spent /batch window spills
    assert "already streams.partitions" in verdict("erp", 100, room, 4, 4)


# -- the supervisor's replicas --------------------------------------------------------------------------------


def test_desired_replicas_config_then_overrides(settings: Settings) -> None:
    assert desired_replicas(settings, {})["account"].replicas == 2
    wanted = desired_replicas(settings, {"replicas:account": "9", "replicas:gone": "3"})
    assert (wanted["account"].replicas, wanted["account"].source, wanted["account"].configured) == (4, "override", 2)
    assert set(wanted) == {"account"}
    assert desired_replicas(settings, {"replicas:account": "many"})["account"].source == "config"


async def test_supervisor_falls_back_to_the_config_when_the_override_goes(fake_redis: Redis,
                                                                         settings: Settings) -> None:
    supervisor = Supervisor(settings, "", fake_redis)
    spawned: list[int] = []

    async def stop_all(_: list[Any]) -> None:
        pass

    async def start(_: Any) -> None:
        pass

    def spawn(entity: str) -> list[Any]:
        spawned.append(supervisor.replicas[entity])
        return []

    supervisor.writers["account"] = []
    supervisor._stop_all = stop_all  # type: ignore[method-assign]  # no Ray here: record the rescale only
    supervisor._start = start  # type: ignore[method-assign]
    supervisor._spawn_writers = spawn  # type: ignore[method-assign]
    keys = Keys("m")
    await set_replicas(fake_redis, keys, "account", 3)
    await supervisor._rescale_if_asked()
    assert supervisor.replicas == {"account": 3} and spawned == [3]
    assert await reset_replicas(fake_redis, keys, "account")
    await supervisor._rescale_if_asked()
    assert supervisor.replicas == {"account": 2} and spawned == [3, 2]
    await supervisor._rescale_if_asked()
    assert spawned == [3, 2]  # nothing changed: no rescale
    assert not await reset_replicas(fake_redis, keys, "account")
