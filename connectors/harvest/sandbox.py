"""The Harvest sandbox: a local Harvest v2 account that answers the API the way Harvest does.

``HarvestState`` is the account: the data (``store.HarvestStore``), the valid access tokens, the
account id, the per-token rate limit (100 requests / 15 s → 429 + ``Retry-After``), plus the shared
sandbox clock, fault plan and request log. ``build_app(state)`` serves it (routes in ``routes.py``).
Duplicate POSTs really duplicate: Harvest has no idempotency key.

Python helpers for a demo "user activity" generator (thread-safe; ``state.lock`` guards the data; every
change bumps ``updated_at`` exactly like an API write): ``user_create``, ``user_update``, ``user_delete``,
``user_archive``, ``log_time``, ``edit_time``, ``approve_time`` / ``unapprove_time`` (``is_closed`` and the
approval lock), ``lock_period``, ``bill``, ``records`` and ``get``. Fault endpoint names are resource
names: clients, contacts, projects, tasks, task_assignments, users, user_assignments, time_entries,
expenses, expense_categories.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from starlette.applications import Starlette

from accord.connectors.harvest.routes import api_routes
from accord.connectors.harvest.store import LOCKED_APPROVED, LOCKED_INVOICED, HarvestError, HarvestStore
from accord.connectors.sandbox import Clock, SandboxState, admin_routes

__all__ = ["HarvestError", "HarvestState", "build_app"]


class HarvestState(SandboxState):
    """One sandbox account. ``rate_limit`` requests per ``rate_period`` seconds per token (tunable)."""

    def __init__(self, clock: Clock | None = None, *, account_id: str = "1234567",
                 tokens: tuple[str, ...] = ("sandbox-pat",), rate_limit: int = 100, rate_period: float = 15.0,
                 approval_feature: bool = True) -> None:
        super().__init__(clock)
        self.account_id = account_id
        self.tokens = set(tokens)
        self.rate_limit = rate_limit
        self.rate_period = rate_period
        self.approval_feature = approval_feature
        self.store = HarvestStore(self.clock.now)
        self._hits: dict[str, deque[float]] = {}
        self._invoice_no = 1000

    # -- limits -----------------------------------------------------------------------------------------

    def take_request(self, token: str) -> int | None:
        """Count one request of ``token``; when over the limit, the seconds to wait (``Retry-After``)."""
        now = self.clock.now()
        with self.lock:
            hits = self._hits.setdefault(token, deque())
            while hits and hits[0] <= now - self.rate_period:
                hits.popleft()
            if len(hits) >= self.rate_limit:
                return max(1, math.ceil(hits[0] + self.rate_period - now))
            hits.append(now)
            return None

    def revoke_tokens(self) -> None:
        """Every token stops working (the next call answers 401 invalid_token)."""
        with self.lock:
            self.tokens.clear()

    # -- generic user helpers -----------------------------------------------------------------------------

    def user_create(self, resource: str, fields: dict[str, Any]) -> int:
        """Create a record as a user would in the Harvest UI; returns its id. Raises ``HarvestError``."""
        with self.lock:
            return int(self.store.create(resource, dict(fields))["id"])

    def user_update(self, resource: str, rid: int, fields: dict[str, Any]) -> None:
        """Edit a record (locked time and expenses refuse, as in the UI)."""
        with self.lock:
            self.store.update(resource, rid, dict(fields))

    def user_archive(self, resource: str, rid: int) -> None:
        self.user_update(resource, rid, {"is_active": False})

    def user_delete(self, resource: str, rid: int) -> None:
        """Delete a record: it vanishes (Harvest keeps no tombstone; only an id scan notices)."""
        with self.lock:
            self.store.delete(resource, rid)

    def records(self, resource: str) -> list[dict[str, Any]]:
        """Every record of ``resource`` as the API renders it, oldest first."""
        with self.lock:
            rows = sorted(self.store.tables[resource].values(), key=lambda r: r["id"])
            return [self.store.render(resource, r) for r in rows]

    def get(self, resource: str, rid: int) -> dict[str, Any] | None:
        with self.lock:
            row = self.store.tables[resource].get(int(rid))
            return None if row is None else self.store.render(resource, row)

    # -- time tracking as consultants and project managers do it ------------------------------------------

    def log_time(self, user_id: int, project_id: int, task_id: int, spent_date: str, hours: float,
                 notes: str = "") -> int:
        """A consultant logs hours on a project task; returns the time entry id."""
        return self.user_create("time_entries", {"user_id": user_id, "project_id": project_id, "task_id": task_id,
                                                 "spent_date": spent_date, "hours": hours, "notes": notes})

    def edit_time(self, entry_id: int, **fields: Any) -> None:
        self.user_update("time_entries", entry_id, fields)

    def approve_time(self, entry_ids: list[int], resource: str = "time_entries") -> None:
        """A manager approves timesheets: ``is_closed`` and the approval lock (no API does this in Harvest)."""
        with self.lock:
            for rid in entry_ids:
                self.store.update(resource, rid, {"is_closed": True, "is_locked": True,
                                                  "locked_reason": LOCKED_APPROVED}, system=True)

    def unapprove_time(self, entry_ids: list[int], resource: str = "time_entries") -> None:
        """Withdraw an approval (refused for billed items, as in Harvest)."""
        with self.lock:
            for rid in entry_ids:
                if self.store.get(resource, rid)["is_billed"]:
                    raise HarvestError(422, {"message": "Invoiced items cannot be unapproved"})
                self.store.update(resource, rid, {"is_closed": False, "is_locked": False, "locked_reason": None},
                                  system=True)

    def lock_period(self, until: str, reason: str = "Locked for this Time Period") -> list[int]:
        """Lock every time entry spent on or before ``until`` (a closed period); returns the ids locked."""
        with self.lock:
            ids = [r["id"] for r in self.store.tables["time_entries"].values()
                   if r["spent_date"] <= until and not r["is_locked"]]
            for rid in ids:
                self.store.update("time_entries", rid, {"is_locked": True, "locked_reason": reason}, system=True)
            return ids

    def bill(self, entry_ids: list[int], resource: str = "time_entries") -> int:
        """Invoice entries: ``is_billed``, ``invoice {id, number}`` and the invoiced lock; returns the invoice id."""
        with self.lock:
            self._invoice_no += 1
            invoice_id = 13_150_000 + self._invoice_no
            self.store.invoices[invoice_id] = str(self._invoice_no)
            for rid in entry_ids:
                self.store.update(resource, rid, {"is_billed": True, "invoice": invoice_id, "is_closed": True,
                                                  "is_locked": True, "locked_reason": LOCKED_INVOICED}, system=True)
            return invoice_id


def build_app(state: HarvestState) -> Starlette:
    """The sandbox account as an ASGI app: the ``/v2`` API and the ``/__sandbox__`` admin API."""
    return Starlette(routes=[*api_routes(state), *admin_routes(state)])
