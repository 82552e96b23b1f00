"""The TinyLedger connector: one JSON request per write, an ``Idempotency-Key`` on creates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from accord.connectors.base import CallStats, Page, SourceRecord, WriteOp, WriteResult, retry_after_seconds
from accord.connectors.errors import ConnectorError, Permanent, RateLimited, Retryable
from tests.plugins.tinyledger.mapping import TinyLedgerMapper
from tests.plugins.tinyledger.settings import TinyLedgerSettings


class TinyLedgerConnector:
    batch_size = 10

    def __init__(self, settings: TinyLedgerSettings, *, name: str, stats: CallStats | None = None) -> None:
        self.system = name
        self.settings = settings
        self.stats = stats or CallStats()
        self.mapper = TinyLedgerMapper()
        self._http = httpx.AsyncClient(base_url=settings.base_url, timeout=settings.timeout,
                                       headers={"Authorization": f"Bearer {settings.token}"})

    def entities(self) -> Sequence[str]:
        return ("account",)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def fetch(self, entity: str, cursor: str | None) -> Page:
        since, after = (int(part) for part in (cursor or "0:0").split(":"))
        body = await self._call("GET", "/api/customers",
                                params={"since": since, "after": after, "limit": self.settings.page_size})
        rows = body["customers"]
        records = [self.mapper.to_canonical(entity, row) for row in rows]
        if rows:
            since, after = rows[-1]["updated_ms"], rows[-1]["id"]
        return Page(records=records, cursor=f"{since}:{after}", more=bool(body["more"]))

    def cursor_since(self, entity: str, since_ms: int) -> str:
        return f"{since_ms}:0"

    async def find_created(self, entity: str, gids: Sequence[str], since_ms: int) -> dict[str, SourceRecord]:
        found: dict[str, SourceRecord] = {}
        for gid in gids:
            body = await self._call("GET", "/api/customers", params={"accord_id": gid})
            for row in body["customers"]:
                found[gid] = self.mapper.to_canonical(entity, row)
        return found

    async def write(self, entity: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        return [await self._write_one(entity, op) for op in ops]

    async def _write_one(self, entity: str, op: WriteOp) -> WriteResult:
        try:
            if op.kind == "delete":
                if op.target_id is not None:
                    await self._call("DELETE", f"/api/customers/{op.target_id}")
                return WriteResult(gid=op.gid, ok=True, target_id=op.target_id)
            wire = {**self.mapper.to_wire(entity, op.fields), **op.wire}
            if op.target_id is None:
                row = await self._call("POST", "/api/customers", json={**wire, "accord_id": op.gid},
                                       headers={"Idempotency-Key": op.key})
            else:
                row = await self._call("PATCH", f"/api/customers/{op.target_id}", json=wire)
        except ConnectorError as exc:
            return WriteResult(gid=op.gid, ok=False, target_id=op.target_id, error=exc)
        held = self.mapper.to_canonical(entity, row).fields
        return WriteResult(gid=op.gid, ok=True, target_id=str(row["id"]), version=row["version"],
                           created=op.target_id is None, fields={k: held.get(k) for k in op.fields if k in held})

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.stats.calls += 1
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.stats.errors += 1
            raise Retryable(self.system, f"{method} {path}: {type(exc).__name__}") from exc
        if response.status_code == 429:
            self.stats.rate_limited += 1
            raise RateLimited(self.system, f"{method} {path}: 429",
                              retry_after=retry_after_seconds(response.headers, 1.0), status=429)
        if response.status_code >= 500:
            self.stats.errors += 1
            raise Retryable(self.system, f"{method} {path}: {response.status_code}", status=response.status_code)
        if response.status_code >= 400:
            raise Permanent(self.system, f"{method} {path}: {response.status_code} {response.text}",
                            status=response.status_code)
        result: dict[str, Any] = response.json()
        return result
