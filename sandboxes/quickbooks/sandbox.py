"""A local QuickBooks Online: OAuth2 token endpoint with rotating refresh tokens, the v3 company API
(query language, change data capture, batch, entity read/write with SyncToken), requestid replay,
per-realm quotas, fault injection and a request log.

Quotas follow ``shared/reference/api-wire-formats.md`` §4.6 (limits) and §4.2 (``/batch``), per realm
(the sandbox has one app, so "per realm+app" is per realm), with the shared sliding-window bookkeeping of
``sandboxes.quota`` (``quota_scale`` divides every window). Stats name, quota, attribute:

* ``per_minute``: accepted API requests per 60 s (``rate_limit``, default 500);
* ``per_second``: accepted API requests per 1 s (``per_second_limit``, default 10);
* ``concurrent``: API requests in flight (``max_concurrent``, default 10);
* ``batch``: accepted ``POST /batch`` requests per 60 s (``batch_limit``, default 40).

A batch request counts toward all four. Every refusal is Intuit's gateway answer: 429 with the lower-case
``ThrottleExceeded`` Fault (code 3001) and ``Retry-After`` (see ``quota``: whole seconds, or a decimal when
``quota_scale > 1``); a concurrency refusal advises 1 s. The gateway checks the quotas before the token, so
every call to a known realm counts, answered or not. A ``/batch`` with more than 30 (or no)
``BatchItemRequest`` payloads is a malformed request: 400 ``ValidationFault`` code 2050 "Batch size limit
exceeded" (it counts toward the quotas; the reference gives no wording, so code and text are the sandbox's).
Left out: the 120 batch requests/min per realm across apps (one app here, whose 40/min binds first), the
800/min combined with other Intuit endpoints, the 120 s request timeout, the monthly CorePlus call
allowance, and any limit on the OAuth token endpoint (unlimited here).

``QuickBooksState`` holds the companies (``store.Realm``) and offers thread-safe helpers a demo user
activity generator calls to edit data as a person in the QuickBooks UI would (``user_create``,
``user_update``, ``user_deactivate``, ``user_delete``, ``user_create_project``, ``user_log_time``,
``user_create_invoice``, ``user_record_payment``, ``user_void_invoice``, ``billing_run``); those edits
bump SyncToken and LastUpdatedTime like API writes, and side effects (a payment lowering its invoice's
Balance, an invoice marking time HasBeenBilled) bump the affected records too.
``build_app(state)`` returns the starlette app. Fault endpoint names: token, query, cdc, batch,
companyinfo, preferences and each entity path (customer, term, account, employee, item, timeactivity, purchase,
invoice, payment, estimate).
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from accord.connectors.quickbooks.faults import QboFault
from accord.sandboxes.quickbooks.billing_run import unbilled_invoice
from accord.sandboxes.quickbooks.routes import (
    Endpoint,
    Handlers,
    authed,
    fault_renderer,
    limited,
    token_endpoint,
)
from accord.sandboxes.quickbooks.store import ENTITY_TYPES, EntityType, Realm, Row, entity_type
from accord.sandboxes.quota import QuotaLimit
from accord.sandboxes.server import Clock, SandboxState, admin_routes, sandboxed

STANDARD_TERMS = (("Due on receipt", 0), ("Net 15", 15), ("Net 30", 30), ("Net 60", 60))
STANDARD_ACCOUNTS = (("Services", "Income"), ("Checking", "Bank"), ("Travel", "Expense"),
                     ("Undeposited Funds", "Other Current Asset"))


class ChangeEvent(msgspec.Struct, frozen=True):
    """One change, as a webhook notification would report it."""

    realm_id: str
    entity: str
    id: str
    operation: str  # Create | Update | Delete
    at: float


class QuickBooksState(SandboxState):
    """Companies, OAuth tokens and quotas of the sandbox. ``state.lock`` guards the data.

    ``rate_limit`` (per minute), ``per_second_limit``, ``max_concurrent`` (in flight) and ``batch_limit``
    (``/batch`` per minute) are per realm and may be changed at any time (a benchmark raises them);
    ``quota_scale`` divides the windows; ``token_ttl`` is the access-token lifetime on the sandbox clock.
    """

    rate_limit = QuotaLimit("per_minute")
    per_second_limit = QuotaLimit("per_second")
    max_concurrent = QuotaLimit("concurrent")
    batch_limit = QuotaLimit("batch")

    def __init__(self, clock: Clock | None = None, *, realm_id: str = "9130350000000000",
                 company_name: str = "Accord Demo Professional Services", client_id: str = "accord-sandbox",
                 client_secret: str = "sandbox-secret", refresh_token: str = "AB11-sandbox-initial",
                 token_ttl: float = 3600.0, rate_limit: int = 500, max_concurrent: int = 10,
                 per_second_limit: int = 10, batch_limit: int = 40, quota_scale: float = 1.0,
                 user_name: str = "Jane Doe") -> None:
        super().__init__(clock, quota_scale=quota_scale)
        self.quotas.window("per_minute", rate_limit, 60.0)
        self.quotas.window("per_second", per_second_limit, 1.0)
        self.quotas.cap("concurrent", max_concurrent)
        self.quotas.window("batch", batch_limit, 60.0)
        self.realm_id = realm_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.token_ttl = token_ttl
        self.user_name = user_name
        self.access_tokens: dict[str, float] = {}  # token → expires at (sandbox clock)
        self.events: deque[ChangeEvent] = deque(maxlen=100_000)
        self.realms: dict[str, Realm] = {}
        self.add_realm(realm_id, company_name)

    def add_realm(self, realm_id: str, company_name: str) -> Realm:
        """A new company, seeded with the four standard terms (ids "1".."4"), a small chart of accounts
        (``STANDARD_ACCOUNTS``: ids "1".."4") and the default "Services" item (id "1")."""
        with self.lock:
            now = self.clock.now()
            realm = Realm(realm_id, company_name, now)
            self.realms[realm_id] = realm
            for name, days in STANDARD_TERMS:
                realm.create(ENTITY_TYPES["Term"], {"Name": name, "DueDays": days}, now, "QuickBooks")
            for name, kind in STANDARD_ACCOUNTS:
                realm.create(ENTITY_TYPES["Account"], {"Name": name, "AccountType": kind}, now, "QuickBooks")
            realm.create(ENTITY_TYPES["Item"], {"Name": "Services", "Type": "Service",
                                                "IncomeAccountRef": {"value": "1"}}, now, "QuickBooks")
            return realm

    def realm(self, realm_id: str | None = None) -> Realm:
        return self.realms[realm_id or self.realm_id]

    def drain_events(self) -> list[ChangeEvent]:
        """Take every change event recorded so far (the webhook emitter's feed)."""
        with self.lock:
            events = list(self.events)
            self.events.clear()
            return events

    def requeue_events(self, events: list[ChangeEvent]) -> None:
        """Put undelivered events back in front, oldest first."""
        with self.lock:
            self.events.extendleft(reversed(events))

    def expire_tokens(self) -> None:
        """Invalidate every access token: the next API call answers 401 (code 3200)."""
        with self.lock:
            self.access_tokens.clear()

    def issue_token(self) -> dict[str, Any]:
        """Mint an access token and rotate the refresh token (the previous one stops working)."""
        with self.lock:
            access = "eyJ" + secrets.token_urlsafe(32)
            self.access_tokens[access] = self.clock.now() + self.token_ttl
            self.refresh_token = "AB11" + secrets.token_urlsafe(24)
            return {"token_type": "bearer", "access_token": access, "refresh_token": self.refresh_token,
                    "expires_in": int(self.token_ttl), "x_refresh_token_expires_in": 8726400}

    # -- writes shared by the API and the user helpers ---------------------------------------------
    def write(self, realm: Realm, etype: EntityType, operation: str, body: dict[str, Any], editor: str,
              *, check_token: bool = True) -> Row:
        """Apply one create/update/delete (caller holds the lock) and record the change event."""
        now = self.clock.now()
        if not isinstance(body, dict):
            raise QboFault(400, "2010", "Request has invalid or unsupported property",
                           f"the {etype.name} body must be a JSON object")
        realm.touched.clear()
        if operation == "delete":
            row, kind = realm.delete(etype, body, now), "Delete"
        elif operation == "void":
            row, kind = realm.void(etype, body, now, editor), "Void"
        elif operation == "update":
            row, kind = realm.update(etype, body, now, editor, check_token=check_token), "Update"
        elif operation == "create":
            row, kind = realm.create(etype, body, now, editor), "Create"
        else:
            raise QboFault(400, "500", "Unsupported Operation", f"operation {operation!r} is not supported: "
                           "use create, update, delete or void", element="operation")
        self.events.append(ChangeEvent(realm.id, etype.name, row.wire["Id"], kind, now))
        for name, record_id in dict.fromkeys(realm.touched):
            self.events.append(ChangeEvent(realm.id, name, record_id, "Update", now))
        realm.touched.clear()
        return row

    # -- user helpers (thread-safe; the demo's "someone working in QuickBooks") -----------------------
    def user_create(self, entity: str, fields: dict[str, Any], *, realm: str | None = None) -> str:
        """Create a record as a QuickBooks user would; returns its Id."""
        with self.lock:
            row = self.write(self.realm(realm), entity_type(entity), "create", dict(fields), self.user_name)
            return str(row.wire["Id"])

    def user_update(self, entity: str, record_id: str, fields: dict[str, Any], *, realm: str | None = None) -> None:
        """Edit the given fields (the UI always edits the latest version; SyncToken goes up by one)."""
        body = {**fields, "Id": str(record_id), "sparse": True}
        with self.lock:
            self.write(self.realm(realm), entity_type(entity), "update", body, self.user_name, check_token=False)

    def user_deactivate(self, entity: str, record_id: str, *, realm: str | None = None) -> None:
        """Make a name-list record inactive (QuickBooks' "delete" for customers and items)."""
        self.user_update(entity, record_id, {"Active": False}, realm=realm)

    def user_delete(self, entity: str, record_id: str, *, realm: str | None = None) -> None:
        """Delete a transaction (TimeActivity, Purchase, Invoice, Payment, Estimate) as a user would."""
        self._user_op(entity, record_id, "delete", realm)

    def user_void_invoice(self, invoice_id: str, *, realm: str | None = None) -> None:
        """Void an invoice (amounts to 0, memo "Voided"; refused while payments are applied)."""
        self._user_op("Invoice", invoice_id, "void", realm)

    def _user_op(self, entity: str, record_id: str, operation: str, realm: str | None) -> None:
        etype = entity_type(entity)
        with self.lock:
            target = self.realm(realm)
            token = target.row(etype, str(record_id)).wire["SyncToken"]
            self.write(target, etype, operation, {"Id": str(record_id), "SyncToken": token}, self.user_name)

    def user_create_project(self, customer_id: str, name: str, *, realm: str | None = None) -> str:
        """A project (sub-customer with ``IsProject``) of ``customer_id``, as made in the Projects tab."""
        return self.user_create("Customer", {"DisplayName": name, "ParentRef": {"value": str(customer_id)},
                                             "Job": True, "IsProject": True}, realm=realm)

    def user_log_time(self, employee_id: str, project_id: str, hours: float, *, item_id: str = "1",
                      rate: float | None = None, billable: bool = True, work_date: str | None = None,
                      notes: str | None = None, realm: str | None = None) -> str:
        """A TimeActivity of an employee on a project (whole minutes), as entered on a timesheet."""
        minutes = round(hours * 60)
        body: dict[str, Any] = {
            "NameOf": "Employee", "EmployeeRef": {"value": str(employee_id)},
            "CustomerRef": {"value": str(project_id)}, "ItemRef": {"value": str(item_id)},
            "Hours": minutes // 60, "Minutes": minutes % 60,
            "BillableStatus": "Billable" if billable else "NotBillable"}
        optional = {"HourlyRate": rate, "TxnDate": work_date, "Description": notes}
        body.update({k: v for k, v in optional.items() if v is not None})
        return self.user_create("TimeActivity", body, realm=realm)

    def user_create_invoice(self, customer_id: str, lines: list[tuple[str, float, float]], *,
                            project_id: str | None = None, realm: str | None = None) -> str:
        """An invoice of ``(description, quantity, unit price)`` lines, as finance types it in."""
        body: dict[str, Any] = {"CustomerRef": {"value": str(customer_id)}, "Line": [
            {"DetailType": "SalesItemLineDetail", "Amount": round(qty * price, 2), "Description": text,
             "SalesItemLineDetail": {"Qty": qty, "UnitPrice": price}} for text, qty, price in lines]}
        if project_id is not None:
            body["ProjectRef"] = {"value": str(project_id)}
        return self.user_create("Invoice", body, realm=realm)

    def user_record_payment(self, invoice_id: str, amount: float | None = None, *, reference: str | None = None,
                            paid_date: str | None = None, realm: str | None = None) -> str:
        """Receive a payment against an invoice (its whole open balance unless ``amount`` is given)."""
        with self.lock:
            invoice = self.realm(realm).row(entity_type("Invoice"), str(invoice_id)).wire
            paid = invoice["Balance"] if amount is None else amount
            body: dict[str, Any] = {"CustomerRef": {"value": invoice["CustomerRef"]["value"]}, "TotalAmt": paid,
                                    "Line": [{"Amount": paid, "LinkedTxn": [{"TxnId": str(invoice_id),
                                                                             "TxnType": "Invoice"}]}]}
            body.update({k: v for k, v in (("PaymentRefNum", reference), ("TxnDate", paid_date)) if v})
            return self.user_create("Payment", body, realm=realm)

    def billing_run(self, project_customer_id: str, *, realm: str | None = None) -> str | None:
        """Invoice every Billable TimeActivity and billable expense line of a project (see ``billing``);
        returns the new invoice's Id, or ``None`` when the project has nothing unbilled."""
        with self.lock:
            target = self.realm(realm)
            body = unbilled_invoice(target, str(project_customer_id))
            if body is None:
                return None
            return str(self.write(target, ENTITY_TYPES["Invoice"], "create", body, self.user_name).wire["Id"])

    def records(self, entity: str, *, realm: str | None = None) -> list[dict[str, Any]]:
        """Every live record of ``entity`` (active and inactive) as the API renders it."""
        etype = entity_type(entity)
        with self.lock:
            target = self.realm(realm)
            return [target.render(etype, r) for r in target.tables[etype.name].values() if not r.deleted]

    def get(self, entity: str, record_id: str, *, realm: str | None = None) -> dict[str, Any] | None:
        etype = entity_type(entity)
        with self.lock:
            target = self.realm(realm)
            row = target.tables[etype.name].get(str(record_id))
            return None if row is None or row.deleted else target.render(etype, row)


def build_app(state: QuickBooksState) -> Starlette:
    """The sandbox as a starlette app (API, token endpoint, ``/__sandbox__`` admin API)."""
    on_fault = fault_renderer(state)
    routes: list[Route] = [
        Route("/oauth2/v1/tokens/bearer", sandboxed(state, "token", token_endpoint(state), on_fault),
              methods=["POST"], name="token"),
    ]
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint, path, handler, methods in Handlers(state).routes():
        guarded = limited(state, endpoint, sandboxed(state, endpoint, authed(state, handler), on_fault))
        for method in methods:
            by_path.setdefault(path, {})[method] = guarded
    for path, handlers in by_path.items():
        routes.append(Route(path, _by_method(handlers), methods=list(handlers)))
    return Starlette(routes=[*routes, *admin_routes(state)])


def _by_method(handlers: dict[str, Endpoint]) -> Endpoint:
    async def dispatch(request: Request) -> Response:
        handler = handlers.get(request.method) or handlers["GET"]  # HEAD is answered like GET
        return await handler(request)

    return dispatch
