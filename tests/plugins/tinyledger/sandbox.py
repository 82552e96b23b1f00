"""A TinyLedger server: customers paged by (updated_ms, id), creates made idempotent by their key,
soft deletes, faults and the admin API of every Accord sandbox."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accord.sandboxes.faults import Fault
from accord.sandboxes.local import Simulator
from accord.sandboxes.server import Handler, SandboxState, admin_routes, sandboxed
from tests.plugins.tinyledger.settings import TinyLedgerSettings

WRITABLE = ("name", "currency", "tax_id", "accord_id")


class TinyLedgerState(SandboxState):
    def __init__(self, token: str = "ledger-token") -> None:
        super().__init__()
        self.token = token
        self.customers: dict[int, dict[str, Any]] = {}
        self.created_by_key: dict[str, int] = {}
        self._stamp = 0

    def records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.customers.values()]

    def edit(self, customer_id: int, **fields: Any) -> dict[str, Any]:
        """A user's edit in TinyLedger's own screens."""
        with self.lock:
            row = self.customers[customer_id]
            row.update(fields)
            return self._touch(row)

    def create(self, fields: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        with self.lock:
            if key is not None and key in self.created_by_key:
                return dict(self.customers[self.created_by_key[key]])
            row = {"id": len(self.customers) + 1, "deleted": False, "version": 0,
                   **{k: fields.get(k) for k in WRITABLE}}
            self.customers[row["id"]] = row
            if key is not None:
                self.created_by_key[key] = row["id"]
            return self._touch(row)

    def _touch(self, row: dict[str, Any]) -> dict[str, Any]:
        self._stamp = max(self._stamp + 1, int(self.clock.now() * 1000))
        row["updated_ms"] = self._stamp
        row["version"] += 1
        return dict(row)

    def page(self, since: int, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        with self.lock:
            rows = sorted((r for r in self.customers.values() if (r["updated_ms"], r["id"]) > (since, after)),
                          key=lambda r: (r["updated_ms"], r["id"]))
        return [dict(r) for r in rows[:limit]], len(rows) > limit


def build_app(state: TinyLedgerState) -> Starlette:
    async def customers(request: Request) -> Response:
        if request.method == "POST":
            return JSONResponse(state.create(await request.json(), request.headers.get("idempotency-key")),
                                status_code=201)
        query = request.query_params
        if "accord_id" in query:
            rows = [r for r in state.records() if r["accord_id"] == query["accord_id"]]
            return JSONResponse({"customers": rows, "more": False})
        rows, more = state.page(int(query.get("since", 0)), int(query.get("after", 0)), int(query.get("limit", 50)))
        return JSONResponse({"customers": rows, "more": more})

    async def customer(request: Request) -> Response:
        customer_id = int(request.path_params["id"])
        if customer_id not in state.customers:
            return JSONResponse({"error": f"no customer {customer_id}"}, status_code=404)
        if request.method == "DELETE":
            return JSONResponse(state.edit(customer_id, deleted=True))
        body = await request.json()
        return JSONResponse(state.edit(customer_id, **{k: v for k, v in body.items() if k in WRITABLE}))

    def route(path: str, endpoint: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, sandboxed(state, endpoint, authorised(state, handler), on_fault), methods=methods)

    return Starlette(routes=[
        route("/api/customers", "customers", customers, ["GET", "POST"]),
        route("/api/customers/{id:int}", "customer", customer, ["PATCH", "DELETE"]),
        *admin_routes(state),
    ])


def authorised(state: TinyLedgerState, handler: Handler) -> Handler:
    async def checked(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        return await handler(request)

    return checked


def on_fault(fault: Fault) -> Response:
    status = int(fault.kind) if fault.kind.isdigit() else 503
    headers = {"Retry-After": str(fault.retry_after)} if status == 429 else {}
    return JSONResponse({"error": fault.kind}, status_code=status, headers=headers)


def settings(state: TinyLedgerState, base_url: str) -> TinyLedgerSettings:
    return TinyLedgerSettings(base_url=base_url, token=state.token)


def local() -> Simulator[TinyLedgerState]:
    return Simulator(TinyLedgerState(), build_app, settings)
