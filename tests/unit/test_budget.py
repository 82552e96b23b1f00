"""The request budget's rule, run against both stores: in this process (``LocalStore``) and in a real Redis
(``RedisBudgetStore``, on the embedded 6.2 and Debian's 7), on real time with short windows."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from accord.actors.budget import RedisBudgetStore
from accord.config.types import AccountLimits, Duration, RateLimit
from accord.connectors.budget import (
    POLL_PATIENCE,
    BudgetStore,
    LocalStore,
    Priority,
    RequestBudget,
    margin,
    requests_as,
    reserve,
)
from accord.redis_server import EmbeddedRedis
from accord.streams.keys import Keys

StoreMaker = Callable[..., BudgetStore]


@pytest.fixture(params=["local", "6.2", "7"])
async def make_store(request: pytest.FixtureRequest, redis_servers: dict[str, EmbeddedRedis]
                     ) -> AsyncIterator[StoreMaker]:
    """Stores of one account: each call is another caller (another client, when in Redis)."""
    clients: list[Redis] = []
    if request.param == "local":
        shared: dict[AccountLimits, LocalStore] = {}

        def local(limits: AccountLimits, lease: float = 120.0) -> BudgetStore:
            return shared.setdefault(limits, LocalStore(limits, lease=lease))
        yield local
        return
    if request.param not in redis_servers:
        pytest.skip("no Redis 7 binary here; .ci/run installs Debian's redis-server")
    url, keys = redis_servers[request.param].url, Keys(f"budget-{uuid.uuid4().hex[:8]}")

    def redis_store(limits: AccountLimits, lease: float = 120.0) -> BudgetStore:
        clients.append(Redis.from_url(url))
        return RedisBudgetStore(clients[-1], keys, "erp", limits, lease=lease)
    yield redis_store
    for client in clients:
        await client.aclose()


def window(requests: int, period: float, kind: str = "*") -> RateLimit:
    return RateLimit(requests=requests, period=Duration(period), kind=kind)


async def take_all(store: BudgetStore, windows: tuple[RateLimit, ...], n: int,
                   priority: Priority = Priority.BACKLOG) -> list[float]:
    return [await store.take(windows, priority, uuid.uuid4().hex) for _ in range(n)]


async def until_granted(store: BudgetStore, windows: tuple[RateLimit, ...], priority: Priority,
                        deadline: float = 5.0) -> float:
    """Ask as a caller would (sleeping the wait it is told) until granted; the seconds it took."""
    started = time.monotonic()
    while (wait := await store.take(windows, priority, uuid.uuid4().hex)) > 0:
        assert time.monotonic() - started < deadline, "never granted"
        await asyncio.sleep(wait)
    return time.monotonic() - started


async def test_a_window_grants_its_requests_then_names_the_wait(make_store: StoreMaker) -> None:
    limits = AccountLimits(windows=(window(3, 0.4),))
    store = make_store(limits)
    waits = await take_all(store, limits.windows, 4)
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.3 < waits[3] <= 0.4 + margin(0.4) + 0.01  # until the first grant leaves the window
    assert await until_granted(store, limits.windows, Priority.BACKLOG) <= 0.4 + margin(0.4) + 0.1


async def test_every_caller_shares_the_window(make_store: StoreMaker) -> None:
    limits = AccountLimits(windows=(window(5, 30.0),))
    callers = [make_store(limits) for _ in range(4)]
    waits = [w for store in callers for w in await take_all(store, limits.windows, 3)]
    assert waits.count(0.0) == 5 and all(w > 20 for w in waits if w)


async def test_a_kind_window_counts_only_its_kind(make_store: StoreMaker) -> None:
    limits = AccountLimits(windows=(window(5, 30.0), window(2, 30.0, "batch")))
    store = make_store(limits)
    batch = tuple(w for w in limits.windows if w.counts("batch"))
    plain = tuple(w for w in limits.windows if w.counts("*"))
    assert await take_all(store, batch, 3) == [0.0, 0.0, pytest.approx(30.0 + margin(30.0), abs=0.5)]
    assert await take_all(store, plain, 4) == [0.0, 0.0, 0.0, pytest.approx(30.0 + margin(30.0), abs=0.5)]


async def test_in_flight_slots_are_capped_given_back_and_lapse(make_store: StoreMaker) -> None:
    limits = AccountLimits(windows=(window(10, 30.0),), concurrency=2)
    store = make_store(limits, lease=0.3)
    assert await store.take(limits.windows, Priority.FRESH, "a") == 0.0
    assert await store.take(limits.windows, Priority.FRESH, "b") == 0.0
    assert 0 < await store.take(limits.windows, Priority.FRESH, "c") < 0.1
    await store.done("a", limits.windows)
    assert await store.take(limits.windows, Priority.FRESH, "c") == 0.0
    # neither b nor c is given back (their holders died): their slots lapse with the lease
    assert await until_granted(store, limits.windows, Priority.FRESH) >= 0.2


async def test_a_request_counts_in_its_windows_from_when_it_ended(make_store: StoreMaker) -> None:
    """A request sent late (its actor descheduled after the grant) reaches the server late, which counts
    it from its arrival: its grant is re-stamped when it ends and holds its slot until then + the window."""
    limits = AccountLimits(windows=(window(2, 1.0),))
    store = make_store(limits)
    assert await store.take(limits.windows, Priority.FRESH, "prompt") == 0.0
    assert await store.take(limits.windows, Priority.FRESH, "late") == 0.0
    await store.done("prompt", limits.windows)
    await asyncio.sleep(0.6)  # "late" is sent 0.6 s after its grant (no margin covers that) and ends
    await store.done("late", limits.windows)
    await until_granted(store, limits.windows, Priority.FRESH)  # "prompt" left the window
    assert await store.take(limits.windows, Priority.FRESH, "next") > 0.3  # "late" holds its slot


async def fill(store: BudgetStore, windows: tuple[RateLimit, ...], priority: Priority) -> int:
    """Take grants until refused; how many were granted."""
    granted = 0
    while await store.take(windows, priority, uuid.uuid4().hex) == 0.0:
        granted += 1
        assert granted < 1000
    return granted


async def test_a_refused_urgent_request_gets_the_next_grants(make_store: StoreMaker) -> None:
    limits = AccountLimits(windows=(window(10, 1.0),))
    backlog, fresh = make_store(limits), make_store(limits)
    assert await fill(backlog, limits.windows, Priority.BACKLOG) == 10
    assert await fresh.take(limits.windows, Priority.FRESH, "f1") > 0  # refused: it asks again
    await until_granted(backlog, limits.windows, Priority.BACKLOG)
    await fill(backlog, limits.windows, Priority.BACKLOG)  # stops one short of the window: a reserve
    assert await fresh.take(limits.windows, Priority.FRESH, "f2") == 0.0
    assert await backlog.take(limits.windows, Priority.BACKLOG, "b") > 0


async def granted_just_now(store: BudgetStore, window: RateLimit, n: int) -> None:
    """Put ``n`` grants of the last moment in ``window``'s log, without pacing (as if granted in bursts)."""
    if isinstance(store, LocalStore):
        store.logs[window].extend([store.clock() - 0.01] * n)
        return
    assert isinstance(store, RedisBudgetStore)
    seconds, micros = await store.redis.time()
    now = seconds + micros / 1e6 - 0.01
    await store.redis.zadd(store.window_key(window), {uuid.uuid4().hex: now for _ in range(n)})


async def test_the_batches_in_the_window_are_the_reserve_single_requests_leave_them(make_store: StoreMaker) -> None:
    """QuickBooks: single requests (SPARE) leave the realm's window a reserve for batches as large as the
    batch window (here 4 of 50); the batches already granted in the window count toward that reserve, not
    on top of it (before: singles got 36 less the batches, and the 8-writer month-end ran 12% over the bound)."""
    realm, batch = window(50, 30.0), window(4, 30.0, "batch")
    limits = AccountLimits(windows=(realm, batch))
    batches, singles = make_store(limits), make_store(limits)
    for kind in (realm, batch):
        await granted_just_now(batches, kind, 4)  # four batches, the batch window is full
    await granted_just_now(singles, realm, 43)
    assert await batches.take((realm, batch), Priority.BACKLOG, "b5") > 20  # refused: it will ask again
    waits = [await singles.take((realm,), Priority.SPARE, uuid.uuid4().hex) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] > 20  # 4 batches + 46 singles: the window's 50


async def test_backlog_writes_go_before_routine_polls(make_store: StoreMaker) -> None:
    limits = AccountLimits(windows=(window(10, 1.0),))
    poller, writer = make_store(limits), make_store(limits)
    assert await fill(poller, limits.windows, Priority.POLL) == 10
    assert await writer.take(limits.windows, Priority.BACKLOG, "w1") > 0  # refused: it asks again
    await until_granted(writer, limits.windows, Priority.BACKLOG)
    await fill(poller, limits.windows, Priority.POLL)
    assert await writer.take(limits.windows, Priority.BACKLOG, "w2") == 0.0
    assert await poller.take(limits.windows, Priority.POLL, "p") > 0


async def test_a_throttle_pauses_every_caller_and_lowers_the_limits(make_store: StoreMaker) -> None:
    # recovery is 0.1 per longest window: a 60 s window (of another kind) keeps it slow here
    limits = AccountLimits(windows=(window(10, 0.3), window(10, 60.0, "batch")))
    one, other = make_store(limits), make_store(limits)
    plain = limits.windows[:1]
    await one.throttle(0.5)
    assert 0.4 < await other.take(plain, Priority.FRESH, "x") <= 0.5
    await until_granted(other, plain, Priority.FRESH)
    granted = 1 + (await take_all(other, plain, 10, Priority.FRESH)).count(0.0)
    assert granted == 9, "after a throttle the account's limits drop to 0.9× and recover over time"


async def test_a_session_budget_waits_for_its_grant_and_promotes_a_patient_poll(
        monkeypatch: pytest.MonkeyPatch) -> None:
    limits = AccountLimits(windows=(window(2, 0.3),))
    budget = RequestBudget(limits, LocalStore(limits))
    started = time.monotonic()
    for _ in range(3):
        async with budget.slot():
            pass
    assert time.monotonic() - started >= 0.25 and budget.waited >= 0.25
    store = LocalStore(limits)
    asked: list[Priority] = []
    real_take = store.take

    async def recording(windows: tuple[RateLimit, ...], priority: Priority, holder: str) -> float:
        asked.append(priority)
        return await real_take(windows, priority, holder)
    monkeypatch.setattr(store, "take", recording)
    monkeypatch.setattr("accord.connectors.budget.POLL_PATIENCE", 0.1)
    store.demand[Priority.BACKLOG] = time.monotonic()  # a backlog is waiting: polls leave it a reserve
    with requests_as(Priority.POLL):
        for _ in range(2):
            async with RequestBudget(limits, store).slot():
                pass
    assert asked[0] is Priority.POLL and asked[-1] is Priority.BACKLOG and POLL_PATIENCE > 0.1


async def test_a_large_window_is_paced_evenly_after_a_small_burst(make_store: StoreMaker) -> None:
    limits = AccountLimits(windows=(window(100, 1.0),))
    store = make_store(limits)
    assert await fill(store, limits.windows, Priority.BACKLOG) == 4  # burst(100): then one per 10 ms
    wait = await store.take(limits.windows, Priority.BACKLOG, "next")
    assert 0 < wait <= (1.0 + margin(1.0)) / 100 + 0.005


def test_the_reserve_is_a_tenth_but_no_more_than_a_kind_window_inside_lets_through() -> None:
    minute, second, batches = window(500, 60.0), window(10, 1.0), window(40, 60.0, "batch")
    qbo = (minute, second, batches)
    assert reserve(minute, qbo) == 40  # QuickBooks' 40 batches a minute need no more of the 500
    assert reserve(minute, (minute, second)) == 50 and reserve(second, qbo) == 1 and reserve(batches, qbo) == 4
