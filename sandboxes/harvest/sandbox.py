"""The Harvest sandbox: a local Harvest v2 account that answers the API the way Harvest does.

``HarvestState`` is the account: the data (``store.HarvestStore``), the valid access tokens, the
account id, the per-token rate limit, plus the shared sandbox clock, fault plan and request log.
``build_app(state)`` serves it (routes in ``routes.py``).

Quota, after ``shared/reference/api-wire-formats.md`` §3.5: 100 requests per 15 s per access token
(stats name ``per_15s``; ``rate_limit`` and ``rate_period`` tune it), a sliding window kept by the shared
``sandboxes.quota`` bookkeeping (``quota_scale`` divides the 15 s). Over it: 429 with ``Retry-After``
(whole seconds until the oldest request in the window leaves it; a decimal when ``quota_scale > 1``) and
a ``{"message": ...}`` body (its wording is unverified). The quota is checked after the token and account,
so requests answered 400/401 do not count. Left out: the Reports API's 100 requests per 15 minutes (the
sandbox has no reports endpoints).
Duplicate POSTs really duplicate: Harvest has no idempotency key.

Python helpers for a demo "user activity" generator (thread-safe; ``state.lock`` guards the data; every
change bumps ``updated_at`` exactly like an API write): ``user_create``, ``user_update``, ``user_delete``,
``user_archive``, ``log_time``, ``edit_time``, ``approve_time`` / ``unapprove_time`` (``is_closed`` and the
approval lock), ``lock_period``, ``bill``, ``records`` and ``get``; finance staff's ``invoice`` (from
tracked time and expenses), ``invoice_event``, ``record_payment``, ``delete_payment`` and ``payments``.
``GET /v2/company`` answers ``company()`` (name, module flags ``expense_feature``, ``invoice_feature``,
``approval_feature``, ``is_active``; tests change the attributes). Fault endpoint names are resource names:
clients, contacts, projects, tasks, task_assignments, users, user_assignments, time_entries, expenses,
expense_categories, invoices, invoice_messages, invoice_payments, company and users (``/v2/users/me``
answers ``me()``: every sandbox token is the account owner's).

Writes follow §3.2 and §3.8 of the reference (each resource's writable fields: ``store.SCHEMAS``,
``invoices.INVOICE_FIELDS``). The reference is silent on read-only and unknown parameters; Harvest (a
Rails API) takes the parameters it permits and ignores the rest, and so does the sandbox: a whole object
from a GET (``id``, ``created_at``, ``updated_at``, nested ``client`` / ``project`` / ``task`` /
``user``, computed ``hours_without_timer``, ``billable_rate``, ``amount``...) is a valid create or
PATCH, and a reference is changed only through its ``*_id`` parameter. Left out: receipts on expenses,
estimates, retainers, recurring invoices, the Reports API, and user role and permission changes.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from accord.connectors.harvest.mapping import format_time
from accord.sandboxes.harvest.ledger import OWNER, BillingStore
from accord.sandboxes.harvest.routes import api_routes
from accord.sandboxes.harvest.store import LOCKED_APPROVED, HarvestError
from accord.sandboxes.quota import QuotaLimit, Refusal
from accord.sandboxes.server import Clock, SandboxState, admin_routes

__all__ = ["HarvestError", "HarvestState", "build_app"]

QUOTA = "per_15s"  # the general API's requests per 15 s per token


class HarvestState(SandboxState):
    """One sandbox account. ``rate_limit`` requests per ``rate_period`` seconds per token (tunable at any
    time), the period divided by ``quota_scale``."""

    rate_limit = QuotaLimit(QUOTA)

    def __init__(self, clock: Clock | None = None, *, account_id: str = "1234567",
                 tokens: tuple[str, ...] = ("sandbox-pat",), rate_limit: int = 100, rate_period: float = 15.0,
                 approval_feature: bool = True, quota_scale: float = 1.0,
                 company_name: str = "Accord Demo Consulting") -> None:
        super().__init__(clock, quota_scale=quota_scale)
        self.quotas.window(QUOTA, rate_limit, rate_period)
        self.account_id = account_id
        self.tokens = set(tokens)
        self.approval_feature = approval_feature  # the company flag: invoices import approved time only
        self.company_name = company_name
        self.expense_feature = True  # the company's modules (``GET /v2/company``); tests turn them off
        self.invoice_feature = True
        self.is_active = True
        self.created = self.clock.now()
        self.store = BillingStore(self.clock.now, approval_feature=lambda: self.approval_feature)

    # -- limits -----------------------------------------------------------------------------------------

    @property
    def rate_period(self) -> float:
        """The quota's window in real seconds (15); on the sandbox clock it is this / ``quota_scale``."""
        return self.quotas.period(QUOTA, real=True)

    @rate_period.setter
    def rate_period(self, seconds: float) -> None:
        self.quotas.set_period(QUOTA, seconds)

    def take_request(self, token: str) -> Refusal | None:
        """Count one request of ``token`` toward its quota; over it, the refusal (``Retry-After``)."""
        admitted = self.quotas.admit(token, [QUOTA])
        return admitted if isinstance(admitted, Refusal) else None

    def revoke_tokens(self) -> None:
        """Every token stops working (the next call answers 401 invalid_token)."""
        with self.lock:
            self.tokens.clear()

    def company(self) -> dict[str, Any]:
        """``GET /v2/company``: the account's settings and module flags, in Harvest's shape."""
        domain = f"accord-demo-{self.account_id}.harvestapp.com"
        return {"base_uri": f"https://{domain}", "full_domain": domain, "name": self.company_name,
                "is_active": self.is_active, "week_start_day": "Monday", "wants_timestamp_timers": False,
                "time_format": "decimal", "date_format": "%Y-%m-%d", "plan_type": "simple-v4", "clock": "24h",
                "currency_code_display": "iso_code_none", "currency_symbol_display": "symbol_before",
                "decimal_symbol": ".", "thousands_separator": ",", "color_scheme": "orange",
                "weekly_capacity": 144000, "expense_feature": self.expense_feature,
                "invoice_feature": self.invoice_feature, "estimate_feature": False,
                "approval_feature": self.approval_feature}

    def me(self) -> dict[str, Any]:
        """``GET /v2/users/me``: the token's user (every sandbox token is the account owner's), in the
        shape of ``GET /v2/users/{id}``; a user row with the owner's email, when one exists, is that user."""
        mine = next((r for r in self.store.tables["users"].values() if r["email"] == OWNER["email"]), None)
        if mine is not None:
            return self.store.render("users", mine)
        first, _, last = str(OWNER["name"]).partition(" ")
        stamp = format_time(self.created)
        return {"id": OWNER["id"], "first_name": first, "last_name": last, "email": OWNER["email"],
                "telephone": "", "timezone": "Eastern Time (US & Canada)", "weekly_capacity": 126000,
                "has_access_to_all_future_projects": True, "is_contractor": False, "is_active": True,
                "calendar_integration_enabled": False, "calendar_integration_source": None,
                "can_create_projects": True, "default_hourly_rate": None, "cost_rate": None, "roles": [],
                "access_roles": ["administrator"], "permissions_claims": ["expenses:read:all", "expenses:write:all",
                                                                          "timers:read:all", "timers:write:all"],
                "avatar_url": f"https://d3s3969qhosaug.cloudfront.net/v2/{OWNER['id']}.png",
                "created_at": stamp, "updated_at": stamp}

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
        """Invoice entries as they are (approved or not): a real open invoice with one line per entry, and
        on each entry ``is_billed``, ``invoice {id, number}`` and the invoiced lock. Entries of several
        clients get one invoice per client; returns the (first) invoice id."""
        with self.lock:
            return self.store.bill_entries(resource, entry_ids)[0]

    # -- invoicing as finance staff do it in the UI ------------------------------------------------------------

    def invoice(self, client_id: int, project_ids: list[int], start: str | None = None, end: str | None = None,
                *, number: str | None = None, send: bool = True) -> int:
        """An invoice of the projects' unbilled (approved) time and expenses from ``start`` to ``end``,
        sent unless ``send`` is false; returns its id."""
        span = {k: v for k, v in (("from", start), ("to", end)) if v}
        body: dict[str, Any] = {"client_id": client_id, "number": number, "line_items_import": {
            "project_ids": project_ids, "time": {"summary_type": "detailed", **span},
            "expenses": {"summary_type": "detailed", **span}}}
        with self.lock:
            invoice_id = int(self.store.create("invoices", body)["id"])
            if send:
                self.store.create("invoice_messages", {"invoice_id": invoice_id, "event_type": "send"})
            return invoice_id

    def invoice_event(self, invoice_id: int, event_type: str) -> None:
        """``send``, ``close``, ``re-open`` or ``draft`` (raises ``HarvestError`` when the state refuses)."""
        with self.lock:
            self.store.create("invoice_messages", {"invoice_id": invoice_id, "event_type": event_type})

    def record_payment(self, invoice_id: int, amount: float, paid_date: str | None = None, notes: str = "") -> int:
        """Record a payment on an open invoice; returns the payment id."""
        with self.lock:
            return int(self.store.create("invoice_payments", {"invoice_id": invoice_id, "amount": amount,
                                                              "paid_date": paid_date, "notes": notes})["id"])

    def delete_payment(self, payment_id: int) -> None:
        with self.lock:
            self.store.delete("invoice_payments", payment_id)

    def payments(self, invoice_id: int) -> list[dict[str, Any]]:
        """The payments of an invoice as the API renders them, oldest first."""
        with self.lock:
            return [self.store.render("invoice_payments", p) for p in self.store.payments_of(invoice_id)]


def build_app(state: HarvestState) -> Starlette:
    """The sandbox account as an ASGI app: the ``/v2`` API and the ``/__sandbox__`` admin API."""
    return Starlette(routes=[*api_routes(state), *admin_routes(state)])
