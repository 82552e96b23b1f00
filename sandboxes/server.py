"""What every sandbox (local simulator of a real API) shares: an injectable clock, per-endpoint fault
injection, a request log, an admin API, and a uvicorn runner.

A sandbox is a product feature: ``accord demo``, the tests and the benchmarks run against it. Each
system's sandbox is a starlette app built by ``<system>.sandbox.build_app`` around a state object that
subclasses ``SandboxState``. Faults are injected per endpoint name (the route's ``name``) either in
Python (``state.faults.add(...)``) or over HTTP (``POST /__sandbox__/faults``), so tests can drive a
sandbox that runs in another process.

Admin endpoints (not part of the simulated API):

* ``GET  /__sandbox__/requests`` → the request log (method, path, endpoint, status, time)
* ``POST /__sandbox__/faults``   → ``{"endpoint": "query", "kind": "429", "count": 3}``
* ``GET  /__sandbox__/faults``   → ``{"pending": 3, "storms": 1, "injected": {"503": 12, ...}}``
* ``DELETE /__sandbox__/faults`` → clear all faults (counted ones and storms)
* ``POST /__sandbox__/storm``    → ``{"rate": 0.3, "kinds": ["500", "503"], "seconds": 60, "seed": 7}``
  (a probabilistic storm, see ``Storm``); ``DELETE /__sandbox__/storm`` ends every storm
* ``POST /__sandbox__/clock``    → ``{"advance": 5.0}`` moves the sandbox clock forward
"""

from __future__ import annotations

import asyncio
import importlib
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, Protocol

import msgspec
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.config.systems import SystemSettings

FaultKind = Literal["429", "500", "503", "timeout", "slow", "drop"]


class Clock:
    """The sandbox's notion of now. Real time plus an offset that tests can advance."""

    def __init__(self, start: float | None = None) -> None:
        self._offset = 0.0 if start is None else start - time.time()

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


class Fault(msgspec.Struct, kw_only=True):
    """One injected fault: the next ``count`` requests to ``endpoint`` (``"*"`` = any) fail as ``kind``.

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
            if fault.endpoint not in ("*", endpoint):
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


class LoggedRequest(msgspec.Struct, kw_only=True, frozen=True):
    method: str
    path: str
    endpoint: str
    status: int
    at: float
    query: str = ""
    fault: str | None = None


class RequestLog:
    """Every request the sandbox answered, in order (thread-safe)."""

    def __init__(self) -> None:
        self._entries: list[LoggedRequest] = []
        self._lock = threading.Lock()

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, endpoint: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [e for e in self._entries if endpoint is None or e.endpoint == endpoint]

    def count(self, endpoint: str | None = None, *, status: int | None = None) -> int:
        return sum(1 for e in self.entries(endpoint) if status is None or e.status == status)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class SandboxState:
    """Base of each sandbox's state: clock, faults, request log and one lock for the data."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.faults = FaultPlan(now=self.clock.now)  # storms last ``seconds`` of the sandbox clock
        self.requests = RequestLog()
        self.lock = threading.RLock()
        self.started: Counter[str] = Counter()  # requests received per endpoint (logged ones have ended)


Handler = Callable[[Request], Awaitable[Response]]
FaultResponder = Callable[[Fault], Response]


def sandboxed(state: SandboxState, endpoint: str, handler: Handler, on_fault: FaultResponder) -> Handler:
    """Wrap a route handler with fault injection and request logging.

    ``on_fault`` renders a fault in the API's own error shape (each API words 429/5xx differently).
    """

    async def wrapped(request: Request) -> Response:
        state.started[endpoint] += 1
        fault = state.faults.take(endpoint)
        if fault is not None and fault.kind in ("timeout", "slow"):
            await asyncio.sleep(fault.delay)
            if fault.kind == "timeout":
                _log(state, request, endpoint, 504, fault.kind)
                return Response(status_code=504)
        if fault is not None and fault.kind not in ("timeout", "slow", "drop"):
            response = on_fault(fault)
        else:
            response = await handler(request)
            if fault is not None and fault.kind == "drop":
                response = on_fault(Fault(endpoint=endpoint, kind="503"))
        _log(state, request, endpoint, response.status_code, fault.kind if fault else None)
        return response

    return wrapped


def _log(state: SandboxState, request: Request, endpoint: str, status: int, fault: str | None) -> None:
    state.requests.add(LoggedRequest(method=request.method, path=request.url.path, endpoint=endpoint,
                                     status=status, at=state.clock.now(), query=request.url.query,
                                     fault=fault))


def admin_routes(state: SandboxState) -> list[Route]:
    """The ``/__sandbox__`` admin API shared by every sandbox."""

    async def requests(_: Request) -> Response:
        return Response(msgspec.json.encode(state.requests.entries()), media_type="application/json")

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            state.faults.clear()
            return JSONResponse({"cleared": True})
        if request.method == "GET":
            return JSONResponse(_fault_status(state))
        body: dict[str, Any] = await request.json()
        fault = msgspec.convert(body, Fault)
        state.faults.add(fault.endpoint, fault.kind, fault.count, delay=fault.delay, after=fault.after,
                         retry_after=fault.retry_after)
        return JSONResponse({"pending": state.faults.pending()})

    async def storm(request: Request) -> Response:
        if request.method == "DELETE":
            state.faults.calm()
            return JSONResponse(_fault_status(state))
        try:
            spec = msgspec.json.decode(await request.body(), type=Storm)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        state.faults.start_storm(spec)
        return JSONResponse(_fault_status(state))

    async def clock(request: Request) -> Response:
        body = await request.json()
        state.clock.advance(float(body.get("advance", 0)))
        return JSONResponse({"now": state.clock.now()})

    return [
        Route("/__sandbox__/requests", requests, methods=["GET"]),
        Route("/__sandbox__/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox__/storm", storm, methods=["POST", "DELETE"]),
        Route("/__sandbox__/clock", clock, methods=["POST"]),
    ]


def _fault_status(state: SandboxState) -> dict[str, Any]:
    return {"pending": state.faults.pending(), "storms": state.faults.storms(), "injected": state.faults.injected()}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class SandboxServer:
    """Runs an ASGI app with uvicorn in a background thread on a localhost port.

    ``start()`` returns once the server accepts connections; ``stop()`` shuts it down. Used by the demo,
    the Ray integration tests and the benchmark (actors in other processes reach it over HTTP).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="off",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"sandbox:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server on {self.url} did not start within {timeout}s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class LocalSandbox(Protocol):
    """What a system plug-in's ``sandbox`` factory returns: a simulator ready to serve, and the settings
    of a connector pointed at it. ``state`` is the simulator's own (records, ``faults``, ``clock``)."""

    state: SandboxState

    def app(self) -> Any:
        """The ASGI app of the simulated API."""
        ...

    def settings(self, base_url: str) -> SystemSettings:
        """The ``[systems.<name>]`` settings that reach this simulator at ``base_url``."""
        ...


class RunningSandbox(msgspec.Struct, kw_only=True, frozen=True, dict=True):
    sandbox: Any  # LocalSandbox
    server: Any  # SandboxServer
    settings: Any  # SystemSettings

    def stop(self) -> None:
        self.server.stop()


def load_sandbox(reference: str) -> LocalSandbox:
    """Call the ``"module:callable"`` a plug-in names as its ``sandbox`` (imported only now)."""
    module, _, name = reference.partition(":")
    factory = getattr(importlib.import_module(module), name)
    sandbox: LocalSandbox = factory()
    return sandbox


def start_local(reference: str) -> RunningSandbox:
    """A plug-in's simulator served on a free localhost port, with the settings that reach it."""
    sandbox = load_sandbox(reference)
    server = SandboxServer(sandbox.app()).start()
    return RunningSandbox(sandbox=sandbox, server=server, settings=sandbox.settings(server.url))
