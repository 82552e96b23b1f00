"""App wiring: Redis (embedded or configured), Ray (local or ``RAY_ADDRESS``), the supervisor and the
HTTP server, run until a stop signal, then drained in order.

Shutdown order on SIGTERM/SIGINT: stop pollers, let writers finish and ack their batch, close clients,
stop HTTP, ``ray.shutdown()``, stop the embedded Redis (its AOF is flushed). A second signal more than a
second later cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import ray
import uvicorn
from loguru import logger
from redis.asyncio import Redis
from starlette.applications import Starlette

from accord.actors.context import connect
from accord.actors.logs import forward_ray_lines_verbatim
from accord.config.load import ConfigError, check, ray_address
from accord.config.settings import Settings
from accord.redis_server import EmbeddedRedis
from accord.supervisor import Supervisor
from accord.web import build_admin_app, build_app

Hook = Callable[["Daemon"], Awaitable[None]]


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: SIGTERM and SIGINT are the daemon's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Daemon:
    """One ``accord run``: owns the Redis connection, the Ray driver, the supervisor and HTTP."""

    def __init__(self, settings: Settings, *, forward_actor_logs: bool = True) -> None:
        """``forward_actor_logs``: the actors' log lines are printed on this process's stderr (the
        container's output) as they are; off, they stay in Ray's worker files (the demo's console)."""
        self.settings = settings
        self.forward_actor_logs = forward_actor_logs
        self.embedded: EmbeddedRedis | None = None
        self.redis_url = settings.redis.url or ""
        self.supervisor: Supervisor | None = None
        self.http_port: int | None = None
        self.admin_port: int | None = None
        self.stop_event = asyncio.Event()
        self._signalled_at = 0.0
        self._main: asyncio.Task[int] | None = None
        self.on_stop_request: Callable[[], None] = self.stop_event.set  # the demo finishes before stopping

    def start_redis(self) -> str:
        if not self.settings.redis.url:
            data = Path(self.settings.data_dir) / "redis"
            self.embedded = EmbeddedRedis(data, appendfsync=self.settings.redis.appendfsync).start()
            self.redis_url = self.embedded.url
            logger.info("embedded Redis {} on {} (AOF {})", self.embedded.version(), self.redis_url,
                        self.settings.redis.appendfsync)
        return self.redis_url

    def start_ray(self) -> None:
        if ray.is_initialized():
            return
        address = ray_address(self.settings)
        if self.forward_actor_logs:
            forward_ray_lines_verbatim()
        if address:
            ray.init(address=address, namespace=self.settings.ray.namespace, log_to_driver=self.forward_actor_logs)
        else:
            ray.init(num_cpus=self.settings.ray.num_cpus, include_dashboard=False,
                     log_to_driver=self.forward_actor_logs,
                     namespace=self.settings.ray.namespace,
                     object_store_memory=self.settings.ray.object_store_mb * 1024 * 1024)

    def install_signals(self) -> None:
        """After ``ray.init`` (which replaces the driver's SIGTERM handler)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        now = time.monotonic()
        if self._signalled_at and now - self._signalled_at > 1.0 and self._main is not None:
            logger.warning("second {}: cancelling now", sig.name)
            self._main.cancel()
            return
        if self._signalled_at:
            return
        logger.info("{} received: draining", sig.name)
        self._signalled_at = now
        self.on_stop_request()

    async def run(self, *, on_ready: Hook | None = None, signals: bool = True, own_ray: bool = True) -> int:
        """Run until ``stop_event`` is set; returns the process exit code. Settings built in code (the demo,
        the benchmarks) are checked like a loaded file: ``ConfigError`` before anything starts."""
        errors = check(self.settings)
        if errors:
            raise ConfigError("settings", errors)
        self._main = asyncio.current_task()
        self.start_redis()
        if own_ray:
            self.start_ray()
        if signals:
            self.install_signals()
        redis = connect(self.redis_url, self.settings.redis.socket_timeout)
        servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        try:
            self.supervisor = Supervisor(self.settings, self.redis_url, redis)
            await self.supervisor.start()
            servers = await self._serve_http(redis)
            http = self.settings.http
            logger.info("accord running: {} systems, {} entities, metrics on http://{}:{}/metrics, exception desk "
                        "on http://{}:{}/desk", len(self.settings.systems), len(self.settings.entities), http.host,
                        self.http_port, http.admin_host, self.admin_port)
            if on_ready is not None:
                await on_ready(self)
            await self.supervisor.run(self.stop_event)
            await self.supervisor.drain()
            return 0
        finally:
            for server, _ in servers:
                server.should_exit = True
            for _, serve in servers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(serve, 5)
            await redis.aclose()
            if own_ray and ray.is_initialized():
                ray.shutdown()
            if self.embedded is not None:
                self.embedded.stop()

    async def _serve_http(self, redis: Redis) -> list[tuple[uvicorn.Server, asyncio.Task[None]]]:
        """The public listener (metrics, health, webhooks) and the admin one (desk, traces)."""
        http = self.settings.http
        public = await _serve(build_app(self.settings, redis, self.supervisor), http.host, http.port)
        admin = await _serve(build_admin_app(self.settings, redis), http.admin_host, http.admin_port)
        self.http_port, self.admin_port = public[2], admin[2]
        return [public[:2], admin[:2]]


async def _serve(app: Starlette, host: str, port: int) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Start one uvicorn server; returns it, its task and the port it bound (``port`` 0: any free one)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    server = _Server(config)
    serve = asyncio.create_task(server.serve())
    while not server.started:
        if serve.done():
            serve.result()
            raise RuntimeError(f"HTTP server failed to start on {host}:{port}")
        await asyncio.sleep(0.01)
    sockets = [s for srv in server.servers for s in srv.sockets]
    return server, serve, sockets[0].getsockname()[1] if sockets else port
