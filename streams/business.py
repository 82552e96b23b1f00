"""Business-process KPI and SLA state, kept incrementally in Redis (no scans, nothing decoded at scrape time).

* SLA clocks: ``sla:{name}:due`` holds each item whose clock runs, scored by its deadline. The code that
  starts a clock (a poller page, the provisioner) queues ``ZADD NX`` onto its own atomic batch; the code
  that satisfies it (a writer's commit, the provisioner) queues ``ZREM``. ``sweep`` moves items past their
  deadline to ``sla:{name}:overdue`` and counts each once in ``stats:sla`` (one Lua call: a member counts
  only when ``ZADD NX`` adds it, so concurrent or repeated sweeps count nothing twice).
* Backlog: ``awaiting:{entity}:{target}`` holds records waiting for a target, scored by when they began to.
* Unbilled work: ``unbilled:{system}:{entity}`` holds each unbilled record's contribution, and ``...:totals``
  the sums per work day; a poller page replaces a record's contribution atomically with its projection.

What survives a crash: everything (it is in Redis and changes in the same batch as its cause).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from redis.asyncio import Redis

from accord.config.settings import Settings
from accord.streams.batch import Batch, script
from accord.streams.keys import Keys
from accord.streams.replies import text, text_map

SLA_STATS = "sla"  # stats:sla: sla name -> breaches counted
SWEEP_CHUNK = 500

_SWEEP = """
local due, overdue, stats, name, now = KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2]
local items = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local breached = 0
for i = 1, #items, 2 do
  redis.call('ZREM', due, items[i])
  breached = breached + redis.call('ZADD', overdue, 'NX', items[i + 1], items[i])
end
if breached > 0 then redis.call('HINCRBY', stats, name, breached) end
return {#items / 2, breached}
"""


# -- SLA clocks ----------------------------------------------------------------------------------
def queue_clock(pipe: Batch, keys: Keys, sla: str, item: str, deadline_ms: int) -> None:
    """Start ``item``'s clock (a running clock keeps its deadline)."""
    pipe.zadd_nx(keys.sla_due(sla), item, deadline_ms)


def queue_met(pipe: Batch, keys: Keys, sla: str, items: Iterable[str]) -> None:
    """``items`` are done (or no longer owed): their clocks stop, and they are no longer overdue."""
    members = sorted(items)
    if members:
        pipe.zrem(keys.sla_due(sla), *members)
        pipe.zrem(keys.sla_overdue(sla), *members)


def queue_delivered(pipe: Batch, keys: Keys, settings: Settings, entity: str, target: str,
                    gids: Iterable[str]) -> None:
    """Records now in ``target`` (written, or with nothing left to write): their delivery clocks stop and
    they leave the backlog."""
    members = sorted(gids)
    for name, sla in settings.sla.items():
        if sla.track == "delivery" and sla.entity == entity and sla.target == target:
            queue_met(pipe, keys, name, members)
    if entity in settings.business.backlog:
        queue_arrived(pipe, keys, entity, target, members)


async def sweep(redis: Redis, keys: Keys, slas: Iterable[str], now_ms: int) -> dict[str, int]:
    """Count every item past its deadline as a breach, once. Returns new breaches by SLA."""
    found: dict[str, int] = {}
    for sla in slas:
        while True:
            moved, breached = await script(redis, _SWEEP)(
                keys=[keys.sla_due(sla), keys.sla_overdue(sla), keys.stats(SLA_STATS)],
                args=[sla, now_ms, SWEEP_CHUNK])
            found[sla] = found.get(sla, 0) + int(breached)
            if int(moved) < SWEEP_CHUNK:
                break
    return found


@dataclass(frozen=True)
class SlaState:
    breaches: int  # ever counted
    at_risk: int  # clock running, deadline within the risk window
    overdue: int  # past the deadline and not done


async def sla_states(redis: Redis, keys: Keys, risk_s: dict[str, float], now_ms: int) -> dict[str, SlaState]:
    """Each SLA's counts: O(log n) per SLA (ZCOUNT, ZCARD) and one HGETALL."""
    names = sorted(risk_s)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.stats(SLA_STATS))
        for name in names:
            pipe.zcount(keys.sla_due(name), f"({now_ms}", now_ms + int(risk_s[name] * 1000))
            pipe.zcount(keys.sla_due(name), "-inf", now_ms)
            pipe.zcard(keys.sla_overdue(name))
        replies = await pipe.execute()
    breaches = text_map(replies[0])
    out = {}
    for i, name in enumerate(names):
        at_risk, late, overdue = replies[1 + 3 * i: 4 + 3 * i]
        out[name] = SlaState(int(breaches.get(name, 0)), int(at_risk), int(late) + int(overdue))
    return out


# -- backlog -------------------------------------------------------------------------------------
def queue_awaiting(pipe: Batch, keys: Keys, entity: str, target: str, gid: str, since_ms: int) -> None:
    pipe.zadd_nx(keys.awaiting(entity, target), gid, since_ms)


def queue_arrived(pipe: Batch, keys: Keys, entity: str, target: str, gids: Iterable[str]) -> None:
    members = sorted(gids)
    if members:
        pipe.zrem(keys.awaiting(entity, target), *members)


async def backlog(redis: Redis, keys: Keys, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int | None]]:
    """(entity, target) -> (records waiting, when the oldest began to wait in ms)."""
    async with redis.pipeline(transaction=False) as pipe:
        for entity, target in pairs:
            pipe.zcard(keys.awaiting(entity, target))
            pipe.zrange(keys.awaiting(entity, target), 0, 0, withscores=True)
        replies = await pipe.execute()
    return {pair: (int(replies[2 * i]), int(replies[2 * i + 1][0][1]) if replies[2 * i + 1] else None)
            for i, pair in enumerate(pairs)}


# -- unbilled work -------------------------------------------------------------------------------
UNBILLED: dict[str, tuple[str, str | None]] = {"time_entry": ("work_date", "hours"), "expense": ("spent_date", None)}


def contribution(entity: str, state: dict[str, Any] | None) -> str | None:
    """``day|milli-hours|cents|currency`` of an approved, billable record not on an invoice, else None."""
    if not state or state.get("approval") != "approved" or state.get("billable") is not True or state.get("invoice"):
        return None
    date_field, hours_field = UNBILLED[entity]
    day = str(state.get(date_field) or "")[:10]
    hours = _decimal(state.get(hours_field)) if hours_field else Decimal(0)
    amount = hours * _decimal(state.get("bill_rate")) if hours_field else _decimal(state.get("amount"))
    return f"{day}|{int(hours * 1000)}|{int(amount * 100)}|{state.get('currency') or ''}"


def queue_contribution(pipe: Batch, keys: Keys, system: str, entity: str, record_id: str, old: str | None,
                       new: str | None) -> None:
    """Replace a record's contribution (``old``, as stored) by ``new`` in the item hash and the totals."""
    if old == new:
        return
    totals = keys.unbilled_totals(system, entity)
    for value, sign in ((old, -1), (new, 1)):
        if value is not None:
            day, milli_hours, cents, currency = value.split("|", 3)
            pipe.hincrby(totals, f"{day}|count", sign)
            pipe.hincrby(totals, f"{day}|mh", sign * int(milli_hours))
            pipe.hincrby(totals, f"{day}|cents|{currency}", sign * int(cents))
    if new is None:
        pipe.hdel(keys.unbilled(system, entity), record_id)
    else:
        pipe.hset(keys.unbilled(system, entity), record_id, new)


async def stored_contributions(redis: Redis, keys: Keys, system: str, entity: str,
                               ids: Sequence[str]) -> list[str | None]:
    if not ids:
        return []
    return [text(v) if v is not None else None for v in await redis.hmget(keys.unbilled(system, entity), list(ids))]


@dataclass(frozen=True)
class DayTotal:
    day: dt.date | None
    count: int
    hours: float
    amount: dict[str, float]  # currency -> amount


async def unbilled_days(redis: Redis, keys: Keys, system: str, entity: str) -> list[DayTotal]:
    """Unbilled totals per work day (one HGETALL: its size is the number of days with unbilled work)."""
    days: dict[str, DayTotal] = {}
    for name, value in sorted(text_map(await redis.hgetall(keys.unbilled_totals(system, entity))).items()):
        day, measure, *currency = name.split("|")
        total = days.setdefault(day, DayTotal(_date(day), 0, 0.0, {}))
        n = int(value)
        if measure == "count":
            days[day] = DayTotal(total.day, n, total.hours, total.amount)
        elif measure == "mh":
            days[day] = DayTotal(total.day, total.count, n / 1000, total.amount)
        elif n:
            total.amount[currency[0] if currency else ""] = n / 100
    return [d for d in days.values() if d.count > 0]


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _date(day: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(day)
    except ValueError:
        return None
