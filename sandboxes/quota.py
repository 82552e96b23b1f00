"""Request quotas of the sandboxes: sliding windows and concurrency caps, one bookkeeping for every API.

Each sandbox declares its API's documented quotas on ``state.quotas`` (a ``Quotas``) and asks it, per
request, to ``admit`` the request under a key (QuickBooks: the realm, Harvest: the token, Salesforce: the
org). The sandbox renders a refusal in its API's own shape; this module only counts.

Rules:

* **Window** (``Quotas.window``): at most ``limit`` accepted requests per key whose arrival time lies in any
  window ``(t - period, t]``. The window slides: a slot frees exactly when the oldest accepted request that
  holds it leaves the window, i.e. at its arrival time + ``period``.
* **Concurrency cap** (``Quotas.cap``): at most ``limit`` admitted requests per key in flight; the ``Ticket``
  that ``admit`` returns frees the slot on ``release()`` (call it in a ``finally``: failures and cancelled
  requests release too).
* **All or nothing**: a request is admitted only when every quota it is subject to has room; then it counts
  toward each of them (``accepted``). A refused request counts toward none of them. It is counted once in
  ``throttled``, under its *binding* quota: of the quotas that refused it, the one whose slot frees last.
* **quota_scale** (float >= 1, default 1 = the real windows): every window's length is divided by it and
  the counts stay the same, so QuickBooks' 500 per 60 s becomes 500 per 3 s at ``quota_scale=20``. A
  benchmark of a month-end close then runs in minutes and still meets every quota at its real count.
  **Except** a window that would become shorter than ``MIN_SCALED_WINDOW`` (1 s): it keeps 1 s (or its
  real period, if shorter) and its count grows in proportion (QuickBooks' 10 per second becomes 50 per
  second at ``quota_scale=5``, not 10 per 0.2 s): the same rate, but a window shorter than the delays of
  a busy host (tens of ms between a client's decision and the server's arrival stamp) would refuse
  requests that no real server sees bunched. A benchmark's client budget must use the same shapes
  (``stats()["limits"][name]``: ``scaled_limit`` per ``window`` seconds).
* **Retry-After** is the time until the binding quota frees a slot: for a window, until the oldest request
  that holds the slot leaves it; a concurrency cap cannot know when a request ends, so it advises its
  ``retry_after`` (1 s unless set), divided by ``quota_scale`` like a window.
  With ``quota_scale == 1`` the value is whole seconds, rounded up (at least 1), as the real APIs send it.
  **Departure from the real APIs**: with ``quota_scale > 1`` the value is a decimal number of seconds,
  rounded up to the millisecond (``"0.35"``), since whole seconds would be longer than a scaled window.
  RFC 9110 allows only whole seconds; Accord's connectors parse ``Retry-After`` as a float.

Limits may change while the sandbox serves (tests and benchmarks tune them: ``state.rate_limit = 3``);
``QuotaLimit`` is the descriptor a sandbox state uses to expose one quota's limit as an attribute.
Thread-safe: uvicorn serves a sandbox from its own thread while tests, benchmarks and the demo's user
threads read the numbers; one lock guards all of it. Nothing here survives a restart of the sandbox.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload


@dataclass
class Window:
    """At most ``limit`` accepted requests per key in any ``period`` real seconds (sliding)."""

    name: str
    limit: int
    period: float


@dataclass
class Cap:
    """At most ``limit`` requests per key in flight at once; ``retry_after`` real seconds advised on a
    refusal (no window says when a request in flight ends)."""

    name: str
    limit: int
    retry_after: float = 1.0


@dataclass(frozen=True)
class Refusal:
    """Why a request was not admitted: its binding quota, the seconds (on the sandbox clock) until that
    quota frees a slot, and that wait as a ``Retry-After`` value."""

    quota: str
    wait: float
    retry_after: str


class Ticket:
    """An admitted request: ``release()`` frees its concurrency slots (once; later calls do nothing)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


MIN_SCALED_WINDOW = 1.0  # seconds: shorter scaled windows are below a busy host's timing noise


def check_scale(scale: float) -> float:
    value = float(scale)
    if not (math.isfinite(value) and value >= 1.0):
        raise ValueError(f"quota_scale `{scale}` must be a finite number >= 1 (1 = the real windows; "
                         "20 = every window 20 times shorter)")
    return value


def retry_after_value(wait: float, scale: float) -> str:
    """``wait`` seconds as a ``Retry-After`` value: whole seconds rounded up at scale 1, else a decimal."""
    if scale == 1.0:
        return str(max(1, math.ceil(wait - 1e-9)))
    millis = max(1, math.ceil(wait * 1000 - 1e-6))
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".")


class Quotas:
    """The quotas of one sandbox and their bookkeeping per key (see the module docstring)."""

    def __init__(self, now: Callable[[], float], scale: float = 1.0) -> None:
        self._now = now
        self._scale = check_scale(scale)
        self._windows: dict[str, Window] = {}
        self._caps: dict[str, Cap] = {}
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._accepted: Counter[str] = Counter()
        self._throttled: Counter[str] = Counter()
        self._lock = threading.Lock()

    # -- declaration and tuning -----------------------------------------------------------------

    def window(self, name: str, limit: int, period: float) -> Window:
        with self._lock:
            self._windows[name] = Window(name, limit, period)
            return self._windows[name]

    def cap(self, name: str, limit: int, retry_after: float = 1.0) -> Cap:
        with self._lock:
            self._caps[name] = Cap(name, limit, retry_after)
            return self._caps[name]

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        checked = check_scale(value)
        with self._lock:
            self._scale = checked

    def limit(self, name: str) -> int:
        with self._lock:
            return self._quota(name).limit

    def set_limit(self, name: str, limit: int) -> None:
        with self._lock:
            self._quota(name).limit = int(limit)

    def set_period(self, name: str, period: float) -> None:
        with self._lock:
            self._windows[name].period = float(period)

    def period(self, name: str, *, real: bool = False) -> float:
        """The window's length on the sandbox clock (see ``_shape``), or its ``real`` period."""
        with self._lock:
            return self._windows[name].period if real else self._shape(self._windows[name])[1]

    def _quota(self, name: str) -> Window | Cap:
        quota = self._windows.get(name) or self._caps.get(name)
        if quota is None:
            raise KeyError(f"no quota named {name!r}; declared: {sorted([*self._windows, *self._caps])}")
        return quota

    # -- admission ------------------------------------------------------------------------------

    def admit(self, key: str, names: Sequence[str]) -> Ticket | Refusal:
        """Admit one request of ``key`` under the quotas ``names``, or say which one refuses and how long
        to wait (ties go to the first of ``names``)."""
        with self._lock:
            now = self._now()  # read under the lock: arrival times stay in order across threads
            refusals = [r for r in (self._refusal(name, key, now) for name in names) if r is not None]
            if refusals:
                binding = max(refusals, key=lambda r: r.wait)
                self._throttled[binding.quota] += 1
                return binding
            caps = [name for name in names if name in self._caps]
            for name in names:
                self._accepted[name] += 1
                if name in self._windows:
                    self._hits.setdefault((name, key), deque()).append(now)
            for name in caps:
                self._in_flight[(name, key)] += 1
        return Ticket(lambda: self._release(key, caps))

    def _release(self, key: str, caps: list[str]) -> None:
        with self._lock:
            for name in caps:
                self._in_flight[(name, key)] -= 1

    def _refusal(self, name: str, key: str, now: float) -> Refusal | None:
        if name in self._caps:
            cap = self._caps[name]
            if self._in_flight[(name, key)] < cap.limit:
                return None
            return self._refused(name, cap.retry_after / self._scale)
        limit, length = self._shape(self._windows[name])
        hits = self._live(name, key, now)
        if len(hits) < limit:
            return None
        if limit <= 0:
            return self._refused(name, length)
        # the slot frees when the request at len - limit (the oldest that still holds one) leaves
        return self._refused(name, hits[len(hits) - limit] + length - now)

    def _shape(self, window: Window) -> tuple[int, float]:
        """The window's count and length on the sandbox clock: its period divided by ``quota_scale``,
        except that a window is not shortened below ``MIN_SCALED_WINDOW`` (nor its real period): it
        keeps that length and its count grows in proportion, so the rate stays the same."""
        length = window.period / self._scale
        floor = min(window.period, MIN_SCALED_WINDOW)
        if length >= floor or length <= 0:
            return window.limit, length
        return round(window.limit * floor / length), floor

    def _refused(self, name: str, wait: float) -> Refusal:
        return Refusal(name, wait, retry_after_value(wait, self._scale))

    def _live(self, name: str, key: str, now: float) -> deque[float]:
        """The arrival times in the window ``(now - period, now]`` (older ones are dropped)."""
        hits = self._hits.setdefault((name, key), deque())
        edge = now - self._shape(self._windows[name])[1]
        while hits and hits[0] <= edge:
            hits.popleft()
        return hits

    # -- numbers --------------------------------------------------------------------------------

    def used(self, name: str, key: str) -> int:
        """Requests of ``key`` in ``name``'s window now (a cap: in flight now)."""
        with self._lock:
            if name in self._caps:
                return self._in_flight[(name, key)]
            return len(self._live(name, key, self._now()))

    def throttled(self) -> dict[str, int]:
        """Refused requests so far, by binding quota (every declared quota, zeros included)."""
        with self._lock:
            return {name: self._throttled[name] for name in [*self._windows, *self._caps]}

    def accepted(self) -> dict[str, int]:
        """Admitted requests so far that counted toward each quota."""
        with self._lock:
            return {name: self._accepted[name] for name in [*self._windows, *self._caps]}

    def stats(self) -> dict[str, Any]:
        """Everything a benchmark reads (``GET /__sandbox__/quotas``; see ``server``)."""
        with self._lock:
            now = self._now()
            limits: dict[str, dict[str, Any]] = {
                w.name: {"limit": w.limit, "period": w.period, "scaled_limit": self._shape(w)[0],
                         "window": self._shape(w)[1]} for w in self._windows.values()}
            limits.update({c.name: {"limit": c.limit, "in_flight": True} for c in self._caps.values()})
            usage: dict[str, dict[str, int]] = {name: {} for name in limits}
            for name, key in list(self._hits):
                usage[name][key] = len(self._live(name, key, now))
            for (name, key), count in self._in_flight.items():
                usage[name][key] = count
        return {"quota_scale": self._scale, "limits": limits, "accepted": self.accepted(),
                "throttled": self.throttled(), "usage": usage}

    def reset(self) -> None:
        """Forget the windows and the counters (requests in flight stay in flight)."""
        with self._lock:
            self._hits.clear()
            self._accepted.clear()
            self._throttled.clear()


class HasQuotas(Protocol):
    @property
    def quotas(self) -> Quotas: ...


class QuotaLimit:
    """A state attribute that reads and sets one quota's limit: ``rate_limit = QuotaLimit("per_minute")``."""

    def __init__(self, quota: str) -> None:
        self.quota = quota

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> QuotaLimit: ...

    @overload
    def __get__(self, obj: HasQuotas, owner: type[Any]) -> int: ...

    def __get__(self, obj: HasQuotas | None, owner: type[Any]) -> QuotaLimit | int:
        if obj is None:
            return self
        return obj.quotas.limit(self.quota)

    def __set__(self, obj: HasQuotas, value: int) -> None:
        obj.quotas.set_limit(self.quota, value)
