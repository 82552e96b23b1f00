"""The Salesforce sandbox: a local org that answers the REST API the way Salesforce does.

``SalesforceState`` is the org: an sObject store (Account, Contact, Opportunity, and the billing custom
objects Invoice__c and Payment__c with their roll-up summary fields on Account), OAuth client
credentials and tokens with a TTL, the daily API request limit, open query cursors, plus the shared
sandbox clock, fault plan and request log. ``build_app(state)`` serves it (routes in ``routes.py``).

Python helpers for a demo "user activity" generator (callable from any thread; ``state.lock`` guards the
data): ``user_create``, ``user_update``, ``user_delete``, ``records``, ``get`` and ``transaction`` (several
changes under one SystemModstamp, as one Salesforce transaction). Their changes bump versions exactly like
an API write. Admin and test hooks: ``expire_tokens``, ``invalidate_cursors``, ``lock_record``,
``add_validation_rule``, ``add_picklist_value``, ``set_stage``, ``set_conversion_rate``, ``max_batch``,
``api_limit``, ``token_ttl``, ``quota_scale``. The schema (objects, custom fields, lookups, master-detail relationships,
roll-up summaries, restricted picklists, stage table) is in ``schema.py``.

Quota, after ``shared/reference/api-wire-formats.md`` §1.7: the org's daily API requests (stats name
``daily``; ``api_limit``, default 15000), counted over a rolling 24 h window by the shared sliding-window
bookkeeping of ``sandboxes.quota`` (``quota_scale`` divides the 24 h). Every response carries
``Sforce-Limit-Info: api-usage=<used>/<limit>``; a call over the limit gets 403
``[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`` with no
``Retry-After`` (Salesforce sends none) and is not counted. Calls that fail the version or session check,
the token endpoint and the versions list are not counted. Left out: ``per-app-api-usage`` and
``api-bursts`` in the header, the concurrent long-running request limit (``ConcurrentPerOrgLongTxn``,
unverified), and the Bulk API's batch allowance (``/limits`` reports it as untouched).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from accord.sandboxes.quota import QuotaLimit, Refusal
from accord.sandboxes.salesforce.routes import api_routes
from accord.sandboxes.salesforce.store import RecordError, SObjectStore, new_id
from accord.sandboxes.server import Clock, SandboxState, admin_routes

__all__ = ["RecordError", "SalesforceState", "build_app"]

DAILY = "daily"  # the org's API requests per rolling 24 h


@dataclass
class Cursor:
    """An open query cursor: the snapshot of rows it pages over (rows are never changed in place, so the
    references are the snapshot), rendered a page at a time as the query's fields and API version say."""

    rows: list[dict[str, Any]]
    render: Callable[[dict[str, Any]], dict[str, Any]]
    query_all: bool
    used_at: float


class SalesforceState(SandboxState):
    """One sandbox org. Every attribute that tests tune is public and may change at any time."""

    api_limit = QuotaLimit(DAILY)

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        client_id: str = "accord-sandbox",
        client_secret: str = "sandbox-secret",
        token_ttl: float = 7200.0,
        api_limit: int = 15000,
        max_batch: int = 2000,
        multi_currency: bool = True,
        corporate_currency: str = "USD",
        latest_version: str = "66.0",
        cursor_ttl: float = 900.0,
        max_cursors: int = 10,
        org_id: str = "00D5g000004XyZEAU",
        quota_scale: float = 1.0,
    ) -> None:
        super().__init__(clock, quota_scale=quota_scale)
        self.quotas.window(DAILY, api_limit, 86400.0)
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.max_batch = max_batch
        self.latest_version = latest_version
        self.cursor_ttl = cursor_ttl
        self.max_cursors = max_cursors
        self.org_id = org_id
        self.store = SObjectStore(lambda: int(self.clock.now() * 1000), multi_currency=multi_currency,
                                  corporate_currency=corporate_currency)
        self._tokens: dict[str, float] = {}
        self._cursors: dict[str, Cursor] = {}
        self._cursor_counter = 0

    @property
    def multi_currency(self) -> bool:
        """Whether the org has multi-currency on (``CurrencyIsoCode`` exists only then)."""
        return self.store.multi_currency

    @multi_currency.setter
    def multi_currency(self, value: bool) -> None:
        with self.lock:
            self.store.multi_currency = value

    # -- auth ---------------------------------------------------------------------------------

    def issue_token(self, instance_url: str) -> dict[str, Any]:
        """A new access token (the client-credentials response body)."""
        token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(40)}"
        now = self.clock.now()
        with self.lock:
            self._tokens[token] = now
        return {"access_token": token, "signature": secrets.token_urlsafe(32), "scope": "api",
                "instance_url": instance_url, "id": f"https://login.salesforce.com/id/{self.org_id}/0055g00000ABCDEAA5",
                "token_type": "Bearer", "issued_at": str(int(now * 1000))}

    def token_valid(self, token: str | None) -> bool:
        with self.lock:
            issued = self._tokens.get(token or "")
        return issued is not None and self.clock.now() - issued < self.token_ttl

    def expire_tokens(self) -> None:
        """End every session: the next API call with an old token gets 401 INVALID_SESSION_ID."""
        with self.lock:
            self._tokens.clear()

    # -- daily API limit (a rolling 24 h window) -----------------------------------------------

    def usage(self) -> tuple[int, int]:
        """``(used, max)`` API requests of the last 24 h (the Sforce-Limit-Info numbers)."""
        return self.quotas.used(DAILY, self.org_id), self.api_limit

    def count_call(self) -> bool:
        """Count one API request; False (and not counted) while the last 24 h used up the limit."""
        return not isinstance(self.quotas.admit(self.org_id, [DAILY]), Refusal)

    # -- query cursors ------------------------------------------------------------------------

    def open_cursor(self, rows: list[dict[str, Any]], render: Callable[[dict[str, Any]], dict[str, Any]],
                    query_all: bool) -> str:
        """Keep ``rows`` for paging; at most ``max_cursors`` stay open (the oldest is dropped)."""
        with self.lock:
            self._cursor_counter += 1
            cursor_id = new_id("01g", self._cursor_counter)
            self._cursors[cursor_id] = Cursor(rows, render, query_all, self.clock.now())
            while len(self._cursors) > self.max_cursors:
                del self._cursors[next(iter(self._cursors))]
            return cursor_id

    def cursor(self, cursor_id: str, query_all: bool) -> Cursor | None:
        """The live cursor with this id, or None when it is unknown, expired or of the other kind."""
        with self.lock:
            cursor = self._cursors.get(cursor_id)
            if cursor is None or cursor.query_all != query_all:
                return None
            if self.clock.now() - cursor.used_at > self.cursor_ttl:
                del self._cursors[cursor_id]
                return None
            cursor.used_at = self.clock.now()
            return cursor

    def close_cursor(self, cursor_id: str) -> None:
        with self.lock:
            self._cursors.pop(cursor_id, None)

    def invalidate_cursors(self) -> None:
        """Drop every open cursor: the next locator gets 400 INVALID_QUERY_LOCATOR."""
        with self.lock:
            self._cursors.clear()

    # -- helpers for a demo user-activity generator and for tests -------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several user changes into one transaction (one SystemModstamp; all or nothing)."""
        with self.lock, self.store.transaction():
            yield

    def user_create(self, obj: str, fields: dict[str, Any]) -> str:
        """Create a record as a user would in the UI; returns its id. Raises ``RecordError``."""
        with self.transaction():
            return self.store.insert(self.store.sobject(obj), fields)

    def user_update(self, obj: str, rid: str, fields: dict[str, Any]) -> None:
        """Edit a record as a user would (bumps SystemModstamp). Raises ``RecordError``."""
        with self.transaction():
            self.store.update(self.store.sobject(obj), rid, fields)

    def user_delete(self, obj: str, rid: str) -> None:
        """Move a record to the recycle bin (IsDeleted; still visible to queryAll)."""
        with self.transaction():
            self.store.delete(self.store.sobject(obj), rid)

    def records(self, obj: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every record of ``obj`` in wire form (dateTimes as strings), oldest first."""
        with self.lock:
            sobject = self.store.sobject(obj)
            rows = sorted(self.store.rows[sobject.name].values(), key=lambda r: (r["CreatedDate"], r["Id"]))
            return [self.store.render(sobject, row) for row in rows if include_deleted or not row["IsDeleted"]]

    def get(self, obj: str, rid: str) -> dict[str, Any] | None:
        """One record in wire form (deleted ones included), or None."""
        with self.lock:
            sobject = self.store.sobject(obj)
            try:
                row = self.store.find(sobject, rid, include_deleted=True)
            except RecordError:
                return None
            return self.store.render(sobject, row)

    def lock_record(self, rid: str, locked: bool = True) -> None:
        """Make writes to ``rid`` fail with UNABLE_TO_LOCK_ROW (another transaction holds it)."""
        with self.lock:
            (self.store.locked.add if locked else self.store.locked.discard)(rid)

    def add_picklist_value(self, obj: str, field: str, value: str) -> None:
        """An admin adds ``value`` to a restricted picklist (e.g. a new ``Billing_Model__c`` label)."""
        with self.lock:
            sobject = self.store.sobject(obj)
            values = self.store.picklists.get((sobject.name, field))
            if values is None:
                raise KeyError(f"{sobject.name}.{field} is not a restricted picklist; restricted: "
                               f"{sorted(f for o, f in self.store.picklists if o == sobject.name)}")
            if value not in values:
                values.append(value)

    def set_stage(self, stage: str, *, closed: bool, won: bool, probability: float) -> None:
        """An admin adds or edits an Opportunity stage (``IsClosed``, ``IsWon``, default ``Probability``).
        Existing opportunities keep their derived values until their stage is next set."""
        with self.lock:
            self.store.stages[stage] = (closed, won, probability)

    def set_conversion_rate(self, currency: str, rate: float) -> None:
        """An admin edits a currency's conversion rate (units per unit of the corporate currency). Roll-ups
        use it from their next recalculation on, as in Salesforce."""
        with self.lock:
            if currency not in self.store.currencies:
                raise KeyError(f"{currency} is not an active currency; active: {sorted(self.store.currencies)}")
            self.store.rates[currency] = rate

    def add_validation_rule(self, obj: str, name: str, check: Callable[[dict[str, Any]], bool],
                            message: str) -> None:
        """A validation rule: a write whose resulting row fails ``check`` gets
        FIELD_CUSTOM_VALIDATION_EXCEPTION with ``message``."""
        with self.lock:
            sobject = self.store.sobject(obj)
            self.store.rules.setdefault(sobject.name, []).append((name, check, message))


def build_app(state: SalesforceState) -> Starlette:
    """The sandbox org as an ASGI app: OAuth token endpoint, REST API and the ``/__sandbox__`` admin API."""
    return Starlette(routes=[*api_routes(state), *admin_routes(state)])
