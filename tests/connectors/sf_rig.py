"""The Salesforce connector test rig: the sandbox in process behind a transport that records requests,
connector settings with a fresh host per call. Its fixtures (``sf_state``, ``sf_recorder``, ``sf``) live in
``conftest.py``."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from accord.config.types import Duration, RateLimit
from accord.connectors.base import SourceRecord, WriteOp
from accord.connectors.salesforce.client import SalesforceConnector
from accord.connectors.salesforce.settings import SalesforceSettings

START = 1_775_124_930.0  # 2026-04-02T10:15:30Z


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox app and keeps them, so tests can look at headers and bodies."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def settings(**overrides: Any) -> SalesforceSettings:
    # A host per call: account limiters are per process and keyed by host, and every test has its own loop.
    values: dict[str, Any] = {"base_url": f"http://{uuid.uuid4().hex[:12]}.sf.test", "client_id": "accord-sandbox",
                              "client_secret": "sandbox-secret",
                              "rate_limit": RateLimit(requests=100_000, period=Duration(1.0)), **overrides}
    return SalesforceSettings(**values)


async def drain(conn: SalesforceConnector, entity: str, cursor: str | None) -> tuple[list[SourceRecord], str]:
    """Every page from ``cursor`` on: the records and the last cursor."""
    records: list[SourceRecord] = []
    while True:
        page = await conn.fetch(entity, cursor)
        records.extend(page.records)
        cursor = page.cursor
        if not page.more:
            return records, cursor


def op(gid: str, fields: dict[str, Any], *, target_id: str | None = None, kind: str = "upsert") -> WriteOp:
    return WriteOp(gid=gid, kind=kind, fields=fields, key=f"k-{gid}", target_id=target_id,  # type: ignore[arg-type]
                   correlation_id=f"c-{gid}")
