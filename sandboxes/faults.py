"""Fault injection for sandboxes: counted faults per endpoint and probabilistic storms.

A fault makes the next requests to an endpoint fail the way the real API fails (429 with ``Retry-After``,
5xx, a timeout, a slow answer, or a response lost after the server acted); a storm fails a share of all
requests for a while. Nothing here survives a restart of the sandbox.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

FaultKind = Literal["429", "500", "503", "timeout", "slow", "drop"]


class Fault(msgspec.Struct, kw_only=True):
    """One injected fault: the next ``count`` requests to ``endpoint`` (``"*"`` = any; several endpoints
    separated by commas, e.g. ``"batch,customer"`` for a write that may go either way) fail as ``kind``.

    ``timeout`` holds the request for ``delay`` seconds and then drops it (the client times out);
    ``slow`` delays by ``delay`` and then answers normally; ``drop`` performs the request and then
    returns 503, as a response lost after the server acted would (tests idempotency);
    ``after`` lets that many matching requests through first.
    """

    endpoint: str
    kind: FaultKind
    count: int = 1
    delay: float = 0.0
    after: int = 0
    retry_after: float = 1.0

    def matches(self, endpoint: str) -> bool:
        return self.endpoint == "*" or endpoint in self.endpoint.split(",")


class Storm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Probabilistic faults: each request to a matching endpoint fails with probability ``rate``, as
    one of ``kinds`` (drawn with ``weights``, uniform by default), until ``seconds`` have passed on the
    sandbox clock (``None``: until cleared).

    ``endpoints`` is ``"*"`` or a list of endpoint names; ``exclude`` names endpoints spared even by
    ``"*"``. A hit fails ``burst`` consecutive requests to that endpoint (a burst of 429s, a 5xx spell).
    ``delay`` is how long a ``timeout``/``slow`` fault holds the request; ``retry_after`` is the 429's
    ``Retry-After``. ``seed`` seeds the storm's own random generator, so a storm replays the same
    sequence of decisions for the same sequence of requests.
    """

    rate: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    kinds: list[FaultKind] = msgspec.field(default_factory=lambda: ["500", "503", "429", "timeout", "drop"])
    weights: list[Annotated[float, msgspec.Meta(ge=0.0)]] | None = None
    endpoints: str | list[str] = "*"
    exclude: list[str] = []
    seconds: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    burst: Annotated[int, msgspec.Meta(ge=1)] = 1
    delay: Annotated[float, msgspec.Meta(ge=0.0)] = 1.0
    retry_after: Annotated[float, msgspec.Meta(ge=0.0)] = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ValueError("a storm needs at least one fault kind")
        if self.weights is not None and (len(self.weights) != len(self.kinds) or not any(self.weights)):
            raise ValueError("storm weights: one non-negative weight per kind, not all zero")

    def matches(self, endpoint: str) -> bool:
        if endpoint in self.exclude:
            return False
        return self.endpoints == "*" or endpoint == self.endpoints or (
            isinstance(self.endpoints, list) and endpoint in self.endpoints)


class _Raging:
    """A storm in progress: its random generator, its end, and the bursts still firing per endpoint."""

    def __init__(self, storm: Storm, now: float) -> None:
        self.storm = storm
        self.rng = random.Random(storm.seed)
        self.until = None if storm.seconds is None else now + storm.seconds
        self.bursts: dict[str, tuple[Fault, int]] = {}

    def over(self, now: float) -> bool:
        return self.until is not None and now >= self.until

    def strike(self, endpoint: str) -> Fault | None:
        """This request's fault, if the storm hits it."""
        held = self.bursts.pop(endpoint, None)
        if held is not None:
            fault, left = held
            if left > 1:
                self.bursts[endpoint] = (fault, left - 1)
            return fault
        if self.rng.random() >= self.storm.rate:
            return None
        kind = self.rng.choices(self.storm.kinds, weights=self.storm.weights)[0]
        fault = Fault(endpoint=endpoint, kind=kind, delay=self.storm.delay, retry_after=self.storm.retry_after)
        if self.storm.burst > 1:
            self.bursts[endpoint] = (fault, self.storm.burst - 1)
        return fault


class FaultPlan:
    """The faults waiting to fire: counted ones (``add``), consumed first-come, then probabilistic
    storms (``storm``). ``injected()`` counts every fault that fired, by kind."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._faults: list[Fault] = []
        self._storms: list[_Raging] = []
        self._injected: Counter[str] = Counter()
        self._now = now
        self._lock = threading.Lock()

    def add(self, endpoint: str, kind: FaultKind, count: int = 1, *, delay: float = 0.0, after: int = 0,
            retry_after: float = 1.0) -> None:
        with self._lock:
            self._faults.append(Fault(endpoint=endpoint, kind=kind, count=count, delay=delay, after=after,
                                      retry_after=retry_after))

    def storm(self, rate: float, kinds: list[FaultKind] | None = None, *, endpoints: str | list[str] = "*",
              seconds: float | None = None, **options: Any) -> Storm:
        """Start a probabilistic storm (see ``Storm`` for ``weights``, ``exclude``, ``burst``, ``delay``,
        ``retry_after`` and ``seed``); storms add up with each other and with counted faults."""
        spec: dict[str, Any] = {"rate": rate, "endpoints": endpoints, "seconds": seconds, **options}
        if kinds is not None:
            spec["kinds"] = kinds
        return self.start_storm(msgspec.convert(spec, Storm))

    def start_storm(self, storm: Storm) -> Storm:
        with self._lock:
            self._storms.append(_Raging(storm, self._now()))
        return storm

    def calm(self) -> None:
        """End every storm (counted faults stay)."""
        with self._lock:
            self._storms.clear()

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._storms.clear()

    def take(self, endpoint: str) -> Fault | None:
        """The fault that applies to this request, if any (and count it as used)."""
        with self._lock:
            fault = self._take_counted(endpoint) or self._take_storm(endpoint)
            if fault is not None:
                self._injected[fault.kind] += 1
            return fault

    def _take_counted(self, endpoint: str) -> Fault | None:
        for fault in self._faults:
            if not fault.matches(endpoint):
                continue
            if fault.after > 0:
                fault.after -= 1
                return None
            fault.count -= 1
            if fault.count <= 0:
                self._faults.remove(fault)
            return fault
        return None

    def _take_storm(self, endpoint: str) -> Fault | None:
        now = self._now()
        self._storms = [s for s in self._storms if not s.over(now)]
        for raging in self._storms:
            if raging.storm.matches(endpoint):
                fault = raging.strike(endpoint)
                if fault is not None:
                    return fault
        return None

    def pending(self) -> int:
        """Counted faults still to fire (storms are not counted)."""
        with self._lock:
            return sum(f.count for f in self._faults)

    def storms(self) -> int:
        """Storms still raging."""
        with self._lock:
            now = self._now()
            return sum(1 for s in self._storms if not s.over(now))

    def injected(self) -> dict[str, int]:
        """Faults fired so far, by kind."""
        with self._lock:
            return dict(self._injected)
