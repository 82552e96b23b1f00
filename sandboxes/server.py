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
* ``GET  /__sandbox__/quotas``   → the API's quotas and what they did (``quota.Quotas.stats``)::

      {"quota_scale": 1.0,
       "limits":    {"per_minute": {"limit": 500, "period": 60.0, "window": 60.0},
                     "concurrent": {"limit": 10, "in_flight": true}, ...},
       "accepted":  {"per_minute": 1234, ...},   # admitted requests that counted toward each quota
       "throttled": {"per_minute": 0, "per_second": 7, "concurrent": 1, "batch": 2},  # refusals by binding quota
       "usage":     {"per_minute": {"<key>": 12}, ...}}   # per realm / token / org, now

  (in Python: ``state.quota_stats()``); ``POST`` ``{"quota_scale": 20}`` rescales every window;
  ``DELETE`` forgets the windows and the counters.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.sandboxes.faults import Fault, FaultPlan, Storm
from accord.sandboxes.quota import Quotas


class Clock:
    """The sandbox's notion of now. Real time plus an offset that tests can advance; ``frozen``: time
    stands still at ``start`` (default: now) and moves only by ``advance`` (exact quota tests)."""

    def __init__(self, start: float | None = None, *, frozen: bool = False) -> None:
        self._offset = 0.0 if start is None else start - time.time()
        self._frozen_at = (time.time() if start is None else start) if frozen else None

    def now(self) -> float:
        if self._frozen_at is not None:
            return self._frozen_at
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            self._offset += seconds


class LoggedRequest(msgspec.Struct, kw_only=True, frozen=True):
    method: str
    path: str
    endpoint: str
    status: int
    at: float
    query: str = ""
    fault: str | None = None
    arrived: float | None = None  # when the request reached the sandbox (``at``: when it was answered)


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
    """Base of each sandbox's state: clock, faults, request log, the API's quotas (``quota.Quotas``; each
    sandbox declares its own) and one lock for the data. ``quota_scale`` divides every quota window."""

    def __init__(self, clock: Clock | None = None, *, quota_scale: float = 1.0) -> None:
        self.clock = clock or Clock()
        self.faults = FaultPlan(now=self.clock.now)  # storms last ``seconds`` of the sandbox clock
        self.requests = RequestLog()
        self.lock = threading.RLock()
        self.started: Counter[str] = Counter()  # requests received per endpoint (logged ones have ended)
        self.quotas = Quotas(self.clock.now, quota_scale)

    @property
    def quota_scale(self) -> float:
        """Every quota window's length is divided by this (>= 1; 1 = the real API's windows)."""
        return self.quotas.scale

    @quota_scale.setter
    def quota_scale(self, value: float) -> None:
        self.quotas.scale = value

    def quota_stats(self) -> dict[str, Any]:
        """The quotas, their accepted and refused requests (``GET /__sandbox__/quotas``)."""
        return self.quotas.stats()


Handler = Callable[[Request], Awaitable[Response]]
FaultResponder = Callable[[Fault], Response]


def sandboxed(state: SandboxState, endpoint: str, handler: Handler, on_fault: FaultResponder) -> Handler:
    """Wrap a route handler with fault injection and request logging.

    ``on_fault`` renders a fault in the API's own error shape (each API words 429/5xx differently).
    """

    async def wrapped(request: Request) -> Response:
        arrived = state.clock.now()
        state.started[endpoint] += 1
        fault = state.faults.take(endpoint)
        if fault is not None and fault.kind in ("timeout", "slow"):
            await asyncio.sleep(fault.delay)
            if fault.kind == "timeout":
                _log(state, request, endpoint, 504, fault.kind, arrived)
                return Response(status_code=504)
        if fault is not None and fault.kind not in ("timeout", "slow", "drop"):
            response = on_fault(fault)
        else:
            response = await handler(request)
            if fault is not None and fault.kind == "drop":
                response = on_fault(Fault(endpoint=endpoint, kind="503"))
        _log(state, request, endpoint, response.status_code, fault.kind if fault else None, arrived)
        return response

    return wrapped


def _log(state: SandboxState, request: Request, endpoint: str, status: int, fault: str | None,
         arrived: float) -> None:
    state.requests.add(LoggedRequest(method=request.method, path=request.url.path, endpoint=endpoint,
                                     status=status, at=state.clock.now(), query=request.url.query,
                                     fault=fault, arrived=arrived))


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

    return [Route("/__sandbox__/requests", requests, methods=["GET"]),
            Route("/__sandbox__/quotas", _quotas_endpoint(state), methods=["GET", "POST", "DELETE"]),
            Route("/__sandbox__/faults", faults, methods=["GET", "POST", "DELETE"]),
            Route("/__sandbox__/storm", storm, methods=["POST", "DELETE"]),
            Route("/__sandbox__/clock", clock, methods=["POST"])]


def _quotas_endpoint(state: SandboxState) -> Handler:
    async def quotas(request: Request) -> Response:
        if request.method == "DELETE":
            state.quotas.reset()
        elif request.method == "POST":
            try:
                state.quota_scale = float((await request.json())["quota_scale"])
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"error": f"send {{\"quota_scale\": <number >= 1>}}: {exc}"}, status_code=400)
        return JSONResponse(state.quota_stats())

    return quotas


def _fault_status(state: SandboxState) -> dict[str, Any]:
    return {"pending": state.faults.pending(), "storms": state.faults.storms(), "injected": state.faults.injected()}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _listening(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (0: a free port). Binding it here, rather than picking a free
    port and letting the server bind it later, closes the race in which another process (a Ray worker, the
    previous run's server) takes the port in between: "address already in use", a failed start."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if port:  # a fixed port may be taken again at once after a restart (its old connections in TIME_WAIT);
        # a free one must not be: with SO_REUSEADDR the kernel hands out a port whose server just closed,
        # and a client of that server still retrying (a Ray actor of the previous daemon) reaches this one
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"sandbox server: cannot listen on {host}:{port} ({exc.strerror}); "
                           "choose another port, or stop what is using it") from None
    # what asyncio sets on the connections of a server it binds itself and not on those of a socket it is
    # given: without it every response waited ~40 ms for the client's delayed ACK (Nagle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted connections inherit it
    sock.listen(2048)
    return sock


class SandboxServer:
    """Runs an ASGI app with uvicorn in a background thread on a localhost port.

    ``start()`` returns once the server accepts connections; ``stop()`` shuts it down. Used by the demo,
    the Ray integration tests and the benchmark (actors in other processes reach it over HTTP).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self._socket = _listening(host, port or 0)  # held from now: no other process can take the port
        self.port = int(self._socket.getsockname()[1])  # between choosing it and serving on it
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="off",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"sandbox:{self.port}", daemon=True)

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
        """Shut down (if started) and release the port."""
        self._server.should_exit = True
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        self._socket.close()
