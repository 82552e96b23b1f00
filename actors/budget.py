"""The request budget of an external account kept in Redis, shared by every caller on every node.

Implements ``accord.connectors.budget.BudgetStore`` with one Lua call per request, so all the account's
limits are checked and taken atomically, on the Redis server's clock (``TIME``: callers on other nodes
need not agree on time). The rule, the same as ``LocalStore``'s:

* each rate window is a sorted set of the grants of its last ``period`` (+ ``margin``); a request is
  granted when every window counting its kind holds fewer than ``requests × factor − reserve``, and
  when the window's pace allows it: grants are spread one per ``period / requests`` with at most
  ``burst(requests)`` at once (a theoretical arrival time per window, as in GCRA), so a minute's quota is
  not spent in its first second and shorter windows, and the server's clock, see an even flow;
* ``reserve``: when a more urgent priority was refused within two periods (it comes back when told),
  ``reserve(window)`` grants are left to the more urgent ones (less what a narrower kind window the
  reserve stands for already holds of the window, ``reserved_for``); ``factor`` drops by ``THROTTLE_STEP``
  (not under ``THROTTLE_FLOOR``) at each throttle and regains ``RECOVERY`` per longest window;
* a ``paused_until`` set by a throttle refuses everything until then;
* in-flight slots are a sorted set of holders scored by lease expiry, given back after the request;
* when a request ends, its grant is re-stamped in its windows with the end time (``_DONE``): the server
  counted it on arrival, at the latest then, so a request sent late still holds its slot long enough.

A refusal returns how long until the binding window frees a grant. What survives a crash: everything
(grants expire with their window, slots with their lease); a restarted Redis starts the windows empty,
as a fresh account would (the server's own 429s then slow everyone down).
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from accord.config.systems import SystemSettings
from accord.config.types import AccountLimits, RateLimit
from accord.connectors.budget import (
    LEASE,
    RECOVERY,
    SLOT_WAIT,
    THROTTLE_FLOOR,
    THROTTLE_STEP,
    Priority,
    RequestBudget,
    burst,
    margin,
    reserve,
    reserved_for,
)
from accord.streams.keys import Keys

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local priority, holder = tonumber(ARGV[1]), ARGV[2]
local cap, longest = tonumber(ARGV[3]), tonumber(ARGV[4])
local recovery, lease, dry = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8] == '1'
local s = redis.call('HMGET', KEYS[1], 'paused_until', 'factor', 'throttled_at', 'demand:0', 'demand:1',
                    'demand:2')
local wait = tonumber(s[1] or 0) - now
local factor = 1
if s[2] then factor = math.min(1, tonumber(s[2]) + recovery * (now - tonumber(s[3])) / longest) end
local n_windows = #KEYS - 2
local tats = {}
for i = 1, n_windows do
  local key = KEYS[i + 2]
  local limit, period, burst = tonumber(ARGV[4 + 5 * i]), tonumber(ARGV[5 + 5 * i]), tonumber(ARGV[6 + 5 * i])
  local reserve, inner = tonumber(ARGV[7 + 5 * i]), ARGV[8 + 5 * i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
  local kept = 0
  for p = 0, priority - 1 do
    if tonumber(s[4 + p] or 0) > now - 2 * period then kept = reserve end
  end
  if kept > 0 and inner ~= '' then  -- what the inner kind already holds of the window is its reserve
    kept = math.max(0, kept - redis.call('ZCOUNT', inner, now - period, '+inf'))
  end
  local allowed = math.max(1, math.floor(limit * factor) - kept)
  local n = redis.call('ZCARD', key)
  if n >= allowed then
    local oldest = redis.call('ZRANGE', key, n - allowed, n - allowed, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + period - now)
  end
  local interval = period / (limit * factor)
  local tat = math.max(tonumber(redis.call('HGET', KEYS[1], key) or 0), now - (burst - 1) * interval)
  wait = math.max(wait, tat - now)
  tats[i] = tat + interval
end
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= cap then wait = math.max(wait, tonumber(ARGV[9 + 5 * n_windows])) end
end
if dry then return tostring(math.max(wait, 0)) end
if wait > 0 then
  redis.call('HSET', KEYS[1], 'demand:' .. priority, tostring(now))
  redis.call('HINCRBY', KEYS[1], 'denied', 1)
  return tostring(wait)
end
for i = 1, n_windows do
  redis.call('ZADD', KEYS[i + 2], now, holder)
  redis.call('PEXPIRE', KEYS[i + 2], math.ceil(tonumber(ARGV[5 + 5 * i]) * 2000))
  redis.call('HSET', KEYS[1], KEYS[i + 2], tostring(tats[i]))
end
if cap > 0 then
  redis.call('ZADD', KEYS[2], now + lease, holder)
  redis.call('PEXPIRE', KEYS[2], math.ceil(lease * 1000))
end
redis.call('HINCRBY', KEYS[1], 'granted', 1)
return '0'
"""

_THROTTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pause, longest, recovery, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local step = tonumber(ARGV[5])
local s = redis.call('HMGET', KEYS[1], 'paused_until', 'factor', 'throttled_at')
local factor = 1
if s[2] then factor = math.min(1, tonumber(s[2]) + recovery * (now - tonumber(s[3])) / longest) end
redis.call('HSET', KEYS[1], 'paused_until', tostring(math.max(tonumber(s[1] or 0), now + pause)),
           'factor', tostring(math.max(floor, factor * step)), 'throttled_at', tostring(now))
redis.call('HINCRBY', KEYS[1], 'throttled', 1)
return 1
"""


_DONE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[i]))
end
return 1
"""


class RedisBudgetStore:
    """The grants of one system's account in Redis (see the module docstring for the rule)."""

    def __init__(self, redis: Redis, keys: Keys, system: str, limits: AccountLimits, *,
                 lease: float = LEASE) -> None:
        self.redis = redis
        self.lease = lease
        self.keys = keys
        self.system = system
        self.limits = limits
        self.longest = max((w.period for w in limits.windows), default=1.0)
        self._take = redis.register_script(_TAKE)
        self._throttle = redis.register_script(_THROTTLE)
        self._done = redis.register_script(_DONE)

    def window_key(self, window: RateLimit) -> str:
        return self.keys.budget_window(self.system, window.kind, window.requests, window.period)

    async def take(self, windows: tuple[RateLimit, ...], priority: Priority, holder: str, *,
                   dry: bool = False) -> float:
        keys = [self.keys.budget(self.system), self.keys.budget_slots(self.system),
                *(self.window_key(w) for w in windows)]
        args: list[str | int | float] = [int(priority), holder, self.limits.concurrency or 0, self.longest, 0,
                                         RECOVERY, self.lease, int(dry)]
        for window in windows:
            inner = reserved_for(window, self.limits.windows)
            args += [window.requests, window.period + margin(window.period), burst(window.requests),
                     reserve(window, self.limits.windows), self.window_key(inner) if inner is not None else ""]
        args.append(SLOT_WAIT)
        return float(await self._take(keys=keys, args=args))

    async def done(self, holder: str, windows: tuple[RateLimit, ...]) -> None:
        keys = [self.keys.budget_slots(self.system), *(self.window_key(w) for w in windows)]
        await self._done(keys=keys, args=[holder, *(math.ceil((w.period + margin(w.period)) * 2000) for w in windows)])

    async def throttle(self, pause: float) -> None:
        await self._throttle(keys=[self.keys.budget(self.system)],
                             args=[pause, self.longest, RECOVERY, THROTTLE_FLOOR, THROTTLE_STEP])

    async def used(self) -> dict[RateLimit, float]:
        """Each window's grants in its last period over its limit (1.0: saturated)."""
        now = await self.redis.time()
        at = now[0] + now[1] / 1e6
        async with self.redis.pipeline(transaction=False) as pipe:
            for window in self.limits.windows:
                pipe.zcount(self.window_key(window), at - window.period, "+inf")
            counts = await pipe.execute()
        return {w: int(n) / w.requests for w, n in zip(self.limits.windows, counts, strict=True)}

    async def counts(self) -> dict[str, int]:
        """Grants, refusals and throttles so far (the hash's counters)."""
        raw = await self.redis.hmget(self.keys.budget(self.system), "granted", "denied", "throttled")
        return {name: int(v or 0) for name, v in zip(("granted", "denied", "throttled"), raw, strict=True)}


def shared_budget(redis: Redis, keys: Keys, system: str, settings: SystemSettings) -> RequestBudget:
    """The request budget of ``system``'s account as every process sees it (its grants in Redis)."""
    limits = settings.limits()
    return RequestBudget(limits, RedisBudgetStore(redis, keys, system, limits))
