"""The daemon's HTTP surface: ``/metrics``, ``/healthz``, ``/readyz``, ``/webhooks/{system}`` and the
exception desk (``accord.deskweb``).

Webhooks are hints: a verified notification adds one entry to the system's intake stream, which wakes
that system's poller at once. They never carry data into the pipeline (the poller fetches it). The
intake stream is capped with MAXLEN: a dropped hint only delays a poll until its interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.config.settings import Settings
from accord.config.systems import SystemSettings
from accord.connectors.registry import spec_of
from accord.deskweb import desk_routes
from accord.monthend_metrics import DrainRates
from accord.pipeline_metrics import render
from accord.streams.keys import Keys


class StatusSource(Protocol):
    @property
    def ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...


def build_app(settings: Settings, redis: Redis, supervisor: StatusSource | None) -> Starlette:
    keys = Keys(settings.namespace)
    drains = DrainRates()  # acked totals between scrapes, for accord_backlog_drain_eta_seconds

    async def metrics(_: Request) -> Response:
        status = supervisor.status() if supervisor is not None else None
        body = await render(redis, settings, status, drains)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(_: Request) -> Response:
        try:
            await redis.ping()
        except Exception as exc:
            return JSONResponse({"ready": False, "redis": str(exc)}, status_code=503)
        if supervisor is None or not supervisor.ready:
            return JSONResponse({"ready": False, **(supervisor.status() if supervisor else {})}, status_code=503)
        return JSONResponse(supervisor.status())

    async def webhook(request: Request) -> Response:
        system = request.path_params["system"]
        if system not in settings.systems:
            return JSONResponse({"error": f"unknown system `{system}`"}, status_code=404)
        body = await request.body()
        if not _verified(settings.systems[system], body, request.headers):
            return JSONResponse({"error": "signature does not match"}, status_code=401)
        await redis.xadd(keys.intake(system), {"entity": request.query_params.get("entity", "")},
                         maxlen=1000, approximate=True)
        return JSONResponse({"accepted": True})

    return Starlette(routes=[
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/webhooks/{system}", webhook, methods=["POST"]),
        *desk_routes(settings, redis),
    ])


def _verified(system_settings: SystemSettings, body: bytes, headers: Mapping[str, str]) -> bool:
    """Check the notification's signature with the system's plug-in (systems without one accept it)."""
    verify = spec_of(system_settings).verify_webhook
    return verify is None or verify(system_settings, body, headers)
