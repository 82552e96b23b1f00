"""The daemon's HTTP surface: ``/metrics``, ``/healthz``, ``/readyz``, ``/webhooks/{system}`` and the
exception desk (``accord.deskweb``).

Webhooks are hints: a verified notification adds one entry to the system's intake stream, which wakes
that system's poller at once. They never carry data into the pipeline (the poller fetches it). The
intake stream is capped with MAXLEN: a dropped hint only delays a poll until its interval.
"""

from __future__ import annotations

from typing import Any, Protocol

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.config.settings import Settings
from accord.deskweb import desk_routes
from accord.pipeline_metrics import render
from accord.streams.keys import Keys


class StatusSource(Protocol):
    @property
    def ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...


def build_app(settings: Settings, redis: Redis, supervisor: StatusSource | None) -> Starlette:
    keys = Keys(settings.namespace)

    async def metrics(_: Request) -> Response:
        status = supervisor.status() if supervisor is not None else None
        body = await render(redis, settings, status)
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


def _verified(system_settings: object, body: bytes, headers: Any) -> bool:
    """Check the system's webhook signature where one is configured (QuickBooks ``intuit-signature``)."""
    verifier = getattr(system_settings, "webhook_verifier", None)
    if not verifier:
        return True
    from accord.connectors.quickbooks.client import verify_webhook

    return verify_webhook(body, headers.get("intuit-signature", ""), verifier)
