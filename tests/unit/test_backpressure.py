"""Backpressure: while an entity's changes wait downstream, its polls wait a share of the backlog's drain
time (bounded); without a backlog, or before a drain rate is known, the pace is adaptive polling's; the
counters are read from Redis (every target group; the slowest decides)."""

from __future__ import annotations

import fakeredis
import pytest

from accord.actors.poll.backpressure import (
    BACKLOG_MIN,
    BACKLOG_SHARE,
    STRETCH_MAX,
    downstream,
    slow_down,
    stretched_wait,
)
from accord.actors.poll.pace import PollPace
from accord.sandboxes.firm.demo import demo_settings
from accord.streams.keys import Keys
from tests.unit.test_pace import Clock


def test_the_wait_is_a_share_of_the_drain_time_within_bounds() -> None:
    assert stretched_wait(1.0, 30.0, backlog=0, drained=100, elapsed=1.0) is None  # nothing waits
    assert stretched_wait(1.0, 30.0, backlog=BACKLOG_MIN - 1, drained=1, elapsed=10.0) is None  # a trickle
    assert stretched_wait(1.0, 30.0, backlog=500, drained=0, elapsed=1.0) is None  # no rate known
    assert stretched_wait(1.0, 30.0, backlog=800, drained=100, elapsed=1.0) == 8.0 * BACKLOG_SHARE
    assert stretched_wait(1.0, 30.0, backlog=600, drained=1000, elapsed=1.0) == 1.0  # never below the base
    assert stretched_wait(1.0, 30.0, backlog=10**6, drained=100, elapsed=1.0) == STRETCH_MAX  # base x 10
    assert stretched_wait(1.0, 4.0, backlog=10**6, drained=100, elapsed=1.0) == 4.0  # poll_max_interval


def test_a_poll_after_a_find_waits_for_the_backlog_and_a_hint_still_makes_it_due() -> None:
    clock = Clock()
    pace = PollPace.of({"account": (0.2, 60.0)}, clock)
    pace.started("account")
    pace.polled("account", 500)
    pace.downstream("account", backlog=4000, acked=0)  # the first sample: no rate yet
    assert pace.paces["account"].due == pytest.approx(clock.now + 0.2)
    clock.now += 0.2
    pace.started("account")
    pace.polled("account", 500)
    pace.downstream("account", backlog=4400, acked=200)  # 1,000 a second: 4.4 s to drain
    assert pace.paces["account"].due == pytest.approx(clock.now + min(0.2 * STRETCH_MAX, 4.4 * BACKLOG_SHARE))
    assert not pace.due("account")
    pace.hinted("account")
    assert pace.due("account")
    clock.now += 0.2
    pace.started("account")
    pace.polled("account", 3)
    pace.downstream("account", backlog=0, acked=4800)  # drained: back to the base
    assert pace.paces["account"].due == pytest.approx(clock.now + 0.2)


async def test_the_slowest_target_group_decides_and_redis_down_leaves_the_pace() -> None:
    settings = demo_settings("/tmp/unused", 0)  # accounts go to the CRM, the PSA and the ERP
    keys = Keys(settings.namespace)
    redis = fakeredis.FakeAsyncRedis()
    await redis.hset(keys.produced("account"), mapping={"0": 700, "3": 300})
    await redis.hset(keys.acked("account", "erp"), mapping={"0": 650, "3": 300})
    await redis.hset(keys.acked("account", "psa"), mapping={"0": 100, "3": 200})
    await redis.hset(keys.acked("account", "crm"), mapping={"0": 1000, "3": 0})
    assert await downstream(redis, keys, settings, "account") == (700, 300)  # psa: 1,000 produced, 300 acked

    pace = PollPace.of({"account": (1.0, 30.0)}, Clock())
    pace.started("account")
    await slow_down(redis, keys, settings, pace, "account")
    assert pace.paces["account"].acked is not None
    server = fakeredis.FakeServer()
    server.connected = False  # Redis down
    pace = PollPace.of({"account": (1.0, 30.0)}, Clock())
    await slow_down(fakeredis.FakeAsyncRedis(server=server), keys, settings, pace, "account")
    assert pace.paces["account"].acked is None  # nothing learnt, nothing raised
    await redis.aclose()
