"""The daemon's two HTTP listeners.

Public (``http.host``/``http.port``): ``/metrics``, ``/healthz``, ``/readyz`` and ``/webhooks/{system}``.
Admin (``http.admin_host``/``http.admin_port``): the exception desk (``accord.deskweb``, ``accord.deskpage``)
and flow traces, every route behind the admin token.

Webhooks are hints: a verified notification adds one entry to the system's intake stream, which wakes
that system's poller at once. They never carry data into the pipeline (the poller fetches it). The
intake stream is capped with MAXLEN: a dropped hint only delays a poll until its interval. A notification
is verified by the system's plug-in (QuickBooks: ``intuit-signature``; Salesforce Outbound Messages: the
org id and a secret in the URL) or, for a system whose API sends none (Harvest), by Accord's own signed
hint (``X-Accord-Signature: sha256=<hex HMAC of the body with webhook_secret>``); with no secret configured
for the system, every notification is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Protocol

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.config.settings import Settings
from accord.config.systems import SystemSettings
from accord.connectors.registry import spec_of
from accord.connectors.spec import WebhookRequest
from accord.deskpage import desk_page_routes
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
        hook = WebhookRequest(await request.body(), request.headers, request.query_params)
        refusal = webhook_refusal(system, settings.systems[system], hook)
        if refusal is not None:
            return JSONResponse({"error": refusal[1]}, status_code=refusal[0])
        await redis.xadd(keys.intake(system), {"entity": request.query_params.get("entity", "")},
                         maxlen=1000, approximate=True)
        ack = spec_of(settings.systems[system]).webhook_ack
        if ack is not None:
            return Response(ack[1], media_type=ack[0])
        return JSONResponse({"accepted": True})

    return Starlette(routes=[
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/webhooks/{system}", webhook, methods=["POST"]),
    ])


def build_admin_app(settings: Settings, redis: Redis) -> Starlette:
    """The admin listener: the exception desk's JSON API and web page, and flow traces."""
    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/healthz", healthz), *desk_routes(settings, redis), *desk_page_routes(settings, redis)])


def webhook_refusal(system: str, system_settings: SystemSettings, hook: WebhookRequest) -> tuple[int, str] | None:
    """None when the notification is verified, else (status, why): 403 when nothing to verify it with is
    configured, 401 when it does not verify."""
    spec = spec_of(system_settings)
    if spec.verify_webhook is not None:
        verdict = spec.verify_webhook(system_settings, hook)
    elif system_settings.webhook_secret:
        verdict = signed_hint_valid(system_settings.webhook_secret, hook)
    else:
        verdict = None
    if verdict is None:
        return 403, (f"webhooks for `{system}` are refused: no secret to verify them is configured; set "
                     f"{spec.webhook_secret_setting or 'webhook_secret'} under [systems.{system}]")
    return None if verdict else (401, "the notification's signature does not match")


def signed_hint_valid(secret: str, hook: WebhookRequest) -> bool:
    """Accord's own hint signature, for systems whose API signs nothing: ``sha256=<hex HMAC-SHA256(body)>``."""
    sent = hook.headers.get("x-accord-signature", "").removeprefix("sha256=")
    want = hmac.new(secret.encode(), hook.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sent.encode(), want.encode())
