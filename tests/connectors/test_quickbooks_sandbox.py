"""The QuickBooks sandbox's API fidelity, over raw HTTP in-process."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from accord.connectors.quickbooks.faults import QboFault, qbo_time
from accord.connectors.quickbooks.webhooks import parse_webhook, verify_webhook
from accord.sandboxes.quickbooks import qql
from accord.sandboxes.quickbooks.notify import WebhookEmitter
from accord.sandboxes.quickbooks.sandbox import QuickBooksState, build_app
from accord.sandboxes.quickbooks.seed import seed_customers
from accord.sandboxes.server import Clock

START = 1_780_000_000.0


@pytest.fixture
def state() -> QuickBooksState:
    return QuickBooksState(clock=Clock(start=START))


class Api:
    """A raw client holding a valid access token."""

    def __init__(self, client: httpx.AsyncClient, state: QuickBooksState, token: str) -> None:
        self.client, self.state, self.token = client, state, token
        self.base = f"/v3/company/{state.realm_id}"

    async def call(self, method: str, path: str, *, minor: str | None = "75", **kwargs: Any) -> httpx.Response:
        params = dict(kwargs.pop("params", {}))
        if minor is not None:
            params["minorversion"] = minor
        return await self.client.request(method, self.base + path, params=params,
                                         headers={"Authorization": f"Bearer {self.token}"}, **kwargs)

    async def query(self, text: str) -> httpx.Response:
        return await self.call("POST", "/query", content=text.encode())


@pytest.fixture
async def api(state: QuickBooksState) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(state)),
                                 base_url="http://qbo.test") as client:
        token = state.issue_token()["access_token"]
        yield Api(client, state, token)


def error(response: httpx.Response) -> dict[str, Any]:
    return response.json()["Fault"]["Error"][0]


# ------------------------------------------------------------------------------------------------
# query language
# ------------------------------------------------------------------------------------------------

async def test_query_shape_paging_and_active_default(state, api) -> None:
    ids = seed_customers(state, 12, random.Random(5))
    state.user_deactivate("Customer", ids[0])
    page = await api.query("SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY Id STARTPOSITION 11 "
                           "MAXRESULTS 5")
    body = page.json()
    assert set(body) == {"QueryResponse", "time"} and body["time"].endswith("-07:00")
    assert set(body["QueryResponse"]) == {"Customer", "startPosition", "maxResults"}
    assert [c["Id"] for c in body["QueryResponse"]["Customer"]] == ["11", "12"]
    assert (body["QueryResponse"]["startPosition"], body["QueryResponse"]["maxResults"]) == (11, 2)

    active = (await api.query("SELECT COUNT(*) FROM Customer")).json()["QueryResponse"]
    expected = sum(1 for r in state.records("Customer") if r["Active"])
    assert expected < 12 and active == {"totalCount": expected}  # name lists: active only unless Active is filtered
    empty = (await api.query("SELECT * FROM Customer WHERE DisplayName = 'Nobody'")).json()
    assert empty["QueryResponse"] == {}


async def test_query_operators(state, api) -> None:
    for name in ("Alpha Ltd", "Beta GmbH", "alphabet Inc"):
        state.user_create("Customer", {"DisplayName": name})
    state.clock.advance(100)
    state.user_update("Customer", "2", {"CompanyName": "Beta"})

    async def names(text: str) -> list[str]:
        rows = (await api.query(text)).json()["QueryResponse"].get("Customer", [])
        return [r["DisplayName"] for r in rows]

    assert await names("select * from Customer where DisplayName like 'alpha%' orderby DisplayName desc") == [
        "alphabet Inc", "Alpha Ltd"]
    assert await names("SELECT * FROM Customer WHERE Id IN ('1', '3')") == ["Alpha Ltd", "alphabet Inc"]
    later = await names(f"SELECT * FROM Customer WHERE Metadata.LastUpdatedTime >= '{_iso(START + 50)}'")
    assert later == ["Beta GmbH"]
    assert await names("SELECT * FROM Customer WHERE Id > '1' AND Id <= '2'") == ["Beta GmbH"]


def _iso(epoch: float) -> str:
    return qbo_time(epoch)


@pytest.mark.parametrize(("text", "code", "fragment"), [
    ("SELECT * FRM Customer", "4000", "FROM"),
    ("SELECT * FROM Customer WHERE", "4000", "field"),
    ("SELECT * FROM Customer MAXRESULTS 1001", "4001", "MAXRESULTS"),
    ("SELECT * FROM Customer STARTPOSITION 0", "4001", "STARTPOSITION"),
    ("SELECT * FROM Customer WHERE PrimaryTaxIdentifier LIKE '12%'", "4001", "LIKE"),
    ("SELECT * FROM Spaceship", "4001", "Spaceship"),
])
async def test_bad_queries_are_refused(api, text, code, fragment) -> None:
    response = await api.query(text)
    assert response.status_code == 400
    assert response.json()["Fault"]["type"] == "ValidationFault"
    assert error(response)["code"] == code and fragment in error(response)["Detail"]


def test_default_maxresults_is_100() -> None:
    assert qql.parse("SELECT * FROM Customer").max_results == 100
    with pytest.raises(QboFault):
        qql.parse("SELECT * FROM Customer ORDERBY")


# ------------------------------------------------------------------------------------------------
# writes
# ------------------------------------------------------------------------------------------------

async def test_create_update_sparse_full_and_stale(state, api) -> None:
    created = (await api.call("POST", "/customer", json={
        "DisplayName": "Wayne Enterprises", "CompanyName": "Wayne Enterprises Inc.",
        "PrimaryEmailAddr": {"Address": "ap@wayne.example"}, "SalesTermRef": {"value": "3"}})).json()["Customer"]
    assert created["SyncToken"] == "0" and created["Id"] == "1" and created["Active"] is True
    assert created["CurrencyRef"] == {"value": "USD", "name": "United States Dollar"}
    assert created["MetaData"]["CreateTime"].endswith("-07:00")

    sparse = await api.call("POST", "/customer", json={"Id": "1", "SyncToken": "0", "sparse": True,
                                                      "CompanyName": "Wayne Ent."})
    assert sparse.json()["Customer"]["SyncToken"] == "1"
    assert sparse.json()["Customer"]["PrimaryEmailAddr"] == {"Address": "ap@wayne.example"}

    stale = await api.call("POST", "/customer", json={"Id": "1", "SyncToken": "0", "sparse": True, "Notes": "x"})
    assert stale.status_code == 400
    assert stale.json()["Fault"]["type"] == "ValidationFault"
    assert error(stale)["code"] == "5010" and error(stale)["Message"] == "Stale Object Error"
    assert error(stale)["Detail"].startswith("Stale Object Error : You and API app were working on this")

    full = await api.call("POST", "/customer", json={"Id": "1", "SyncToken": "1", "DisplayName": "Wayne"})
    record = full.json()["Customer"]
    assert record["SyncToken"] == "2" and "CompanyName" not in record and "SalesTermRef" not in record
    assert record["Active"] is True


async def test_a_customers_currency_is_set_on_create_and_never_changes(state, api) -> None:
    """Customer.CurrencyRef: "Once set, it cannot be changed ... Read-only after object is created" (the
    QBO reference, multicurrency company): a full update that omits it keeps it (it is not reset to the
    home currency), the same value is accepted, another one is refused."""
    created = (await api.call("POST", "/customer", json={"DisplayName": "Maple Leaf Corp",
                                                        "CurrencyRef": {"value": "CAD"}})).json()["Customer"]
    assert created["CurrencyRef"] == {"value": "CAD", "name": "Canadian Dollar"}
    full = await api.call("POST", "/customer", json={"Id": created["Id"], "SyncToken": "0",
                                                    "DisplayName": "Maple Leaf Corporation"})
    assert full.status_code == 200 and full.json()["Customer"]["CurrencyRef"]["value"] == "CAD"
    same = await api.call("POST", "/customer", json={"Id": created["Id"], "SyncToken": "1", "sparse": True,
                                                    "CurrencyRef": {"value": "CAD"}, "Notes": "same currency"})
    assert same.status_code == 200 and same.json()["Customer"]["CurrencyRef"]["value"] == "CAD"
    changed = await api.call("POST", "/customer", json={"Id": created["Id"], "SyncToken": "2", "sparse": True,
                                                       "CurrencyRef": {"value": "USD"}})
    assert changed.status_code == 400 and error(changed)["code"] == "6000"
    assert "cannot be changed" in error(changed)["Detail"]
    state.user_update("Customer", created["Id"], {"CurrencyRef": None, "Notes": "cleared?"})
    assert state.get("Customer", created["Id"])["CurrencyRef"]["value"] == "CAD"  # a currency is never cleared
    job = state.user_create_project(created["Id"], "Maple Leaf rollout")
    assert state.get("Customer", job)["CurrencyRef"]["value"] == "CAD"  # a sub-customer takes its parent's


async def test_write_refusals(state, api) -> None:
    state.user_create("Customer", {"DisplayName": "Stark Industries"})
    duplicate = await api.call("POST", "/customer", json={"DisplayName": "stark industries"})
    assert duplicate.status_code == 400 and error(duplicate)["code"] == "6240"
    assert error(duplicate)["Message"] == "Duplicate Name Exists Error"
    delete = await api.call("POST", "/customer", params={"operation": "delete"}, json={"Id": "1", "SyncToken": "0"})
    assert delete.status_code == 400 and "Active=false" in error(delete)["Detail"]
    bad_term = await api.call("POST", "/customer", json={"DisplayName": "Oscorp", "SalesTermRef": {"value": "9"}})
    assert error(bad_term)["code"] == "2500"
    unknown = await api.call("POST", "/customer", json={"DisplayName": "Oscorp", "Planet": "Earth"})
    assert error(unknown)["code"] == "2010" and error(unknown)["element"] == "Planet"
    missing = await api.call("GET", "/customer/99")
    assert missing.status_code == 400 and error(missing)["code"] == "610"
    assert len(state.records("Customer")) == 1


async def test_requestid_replays_the_first_response(state, api) -> None:
    body = {"DisplayName": "Cyberdyne"}
    first = await api.call("POST", "/customer", params={"requestid": "req-1"}, json=body)
    again = await api.call("POST", "/customer", params={"requestid": "req-1"}, json=body)
    assert first.status_code == again.status_code == 200 and first.content == again.content
    assert len(state.records("Customer")) == 1
    refused = await api.call("POST", "/customer", params={"requestid": "req-2"}, json=body)
    replay = await api.call("POST", "/customer", params={"requestid": "req-2"}, json={"DisplayName": "Other"})
    assert refused.status_code == replay.status_code == 400 and refused.content == replay.content
    assert len(state.records("Customer")) == 1


async def test_batch_items_and_limits(state, api) -> None:
    items = [{"bId": "1", "operation": "create", "Customer": {"DisplayName": "Tyrell"}},
             {"bId": "2", "operation": "create", "Customer": {"DisplayName": "Tyrell"}},
             {"bId": "3", "Query": "SELECT COUNT(*) FROM Customer"}]
    response = await api.call("POST", "/batch", json={"BatchItemRequest": items})
    answers = response.json()["BatchItemResponse"]
    assert answers[0]["Customer"]["DisplayName"] == "Tyrell" and answers[0]["bId"] == "1"
    assert answers[1]["Fault"]["Error"][0]["code"] == "6240" and answers[1]["bId"] == "2"
    assert answers[2] == {"QueryResponse": {"totalCount": 1}, "bId": "3"}

    update_without_id = [{"bId": "1", "operation": "update", "Customer": {"DisplayName": "No Id", "sparse": True}}]
    answer = (await api.call("POST", "/batch", json={"BatchItemRequest": update_without_id})).json()
    assert answer["BatchItemResponse"][0]["Fault"]["Error"][0]["element"] == "Id"

    too_many = [{"bId": str(i), "operation": "create", "Customer": {"DisplayName": f"C{i}"}} for i in range(31)]
    assert (await api.call("POST", "/batch", json={"BatchItemRequest": too_many})).status_code == 400
    long_bid = [{"bId": "b" * 11, "operation": "create", "Customer": {"DisplayName": "Long"}}]
    refused = await api.call("POST", "/batch", params={"requestid": "r"}, json={"BatchItemRequest": long_bid})
    assert refused.status_code == 400 and error(refused)["element"] == "bId"
    assert len(state.records("Customer")) == 1


# ------------------------------------------------------------------------------------------------
# CDC
# ------------------------------------------------------------------------------------------------

async def test_cdc_window_cap_and_deactivations(state, api) -> None:
    seed_customers(state, 3, random.Random(6))
    state.clock.advance(100)
    since = _iso(state.clock.now() - 1)
    state.user_deactivate("Customer", "2")
    body = (await api.call("GET", "/cdc", params={"entities": "Customer,Term", "changedSince": since})).json()
    customers, terms = body["CDCResponse"][0]["QueryResponse"]
    assert [(c["Id"], c["Active"]) for c in customers["Customer"]] == [("2", False)]
    assert customers["maxResults"] == 1 and terms == {}

    old = _iso(state.clock.now() - 31 * 86400)
    refused = await api.call("GET", "/cdc", params={"entities": "Customer", "changedSince": old})
    assert refused.status_code == 400 and error(refused)["element"] == "changedSince"

    seed_customers(state, 1001, random.Random(7))
    capped = (await api.call("GET", "/cdc", params={"entities": "Customer", "changedSince": since})).json()
    assert len(capped["CDCResponse"][0]["QueryResponse"][0]["Customer"]) == 1000


# ------------------------------------------------------------------------------------------------
# auth, versions, limits, faults
# ------------------------------------------------------------------------------------------------

async def test_token_endpoint_rotation_and_expiry(state, api) -> None:
    async def grant(refresh: str, auth: tuple[str, str] = (state.client_id, state.client_secret)) -> httpx.Response:
        return await api.client.post("/oauth2/v1/tokens/bearer", auth=auth,
                                     data={"grant_type": "refresh_token", "refresh_token": refresh})

    current = state.refresh_token
    assert (await grant(current, ("accord-sandbox", "wrong"))).json() == {"error": "invalid_client"}
    issued = (await grant(current)).json()
    assert issued["expires_in"] == 3600 and issued["refresh_token"] != current
    assert (await grant(current)).json() == {"error": "invalid_grant"}

    api.token = issued["access_token"]
    assert (await api.call("GET", "/term")).status_code == 200
    state.clock.advance(3601)
    expired = await api.call("GET", "/term")
    assert expired.status_code == 401 and expired.json()["fault"]["error"][0]["code"] == "3200"


async def test_minorversion_is_required(api) -> None:
    missing = await api.call("GET", "/term", minor=None)
    old = await api.call("GET", "/term", minor="74")
    assert missing.status_code == old.status_code == 400
    assert error(missing)["element"] == error(old)["element"] == "minorversion"
    assert (await api.call("GET", "/term/3")).json()["Term"]["Name"] == "Net 30"


async def test_rate_and_concurrency_limits(state, api) -> None:
    state.rate_limit = 3
    got = [(await api.call("GET", "/term")).status_code for _ in range(4)]
    assert got == [200, 200, 200, 429]
    state.clock.advance(61)
    assert (await api.call("GET", "/term")).status_code == 200  # the minute rolled over

    state.rate_limit, state.max_concurrent = 500, 1
    state.faults.add("term", "slow", delay=0.05)  # holds the one concurrent slot
    slow, second = await asyncio.gather(api.call("GET", "/term"), api.call("GET", "/term"))
    assert sorted([slow.status_code, second.status_code]) == [200, 429]
    throttled = slow if slow.status_code == 429 else second
    assert throttled.headers["Retry-After"] == "1"  # a concurrency refusal advises 1 s (see sandboxes.quota)
    assert throttled.json()["fault"]["error"][0]["code"] == "3001"
    assert state.quota_stats()["throttled"] == {"per_minute": 1, "per_second": 0, "concurrent": 1, "batch": 0}


async def test_injected_faults_render_as_qbo_errors(state, api) -> None:
    state.faults.add("query", "503")
    state.faults.add("query", "429", retry_after=5)
    unavailable = await api.query("SELECT * FROM Term")
    throttled = await api.query("SELECT * FROM Term")
    assert unavailable.status_code == 503 and unavailable.json()["Fault"]["type"] == "SystemFault"
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "5"
    over_http = await api.client.post("/__sandbox__/faults", json={"endpoint": "cdc", "kind": "500"})
    assert over_http.json() == {"pending": 1}
    assert [e.status for e in state.requests.entries("query")] == [503, 429]


# ------------------------------------------------------------------------------------------------
# user helpers, seed, webhooks
# ------------------------------------------------------------------------------------------------

def test_user_edits_bump_synctoken_and_timestamp(state) -> None:
    record_id = state.user_create("Customer", {"DisplayName": "Massive Dynamic"})
    state.clock.advance(90)
    state.user_update("Customer", record_id, {"CompanyName": "Massive Dynamic Inc."})
    state.user_deactivate("customer", record_id)
    record = state.get("Customer", record_id)
    assert record is not None
    assert record["SyncToken"] == "2" and record["Active"] is False
    assert record["MetaData"]["LastUpdatedTime"] > record["MetaData"]["CreateTime"]
    assert state.get("Customer", "404") is None


def test_seed_customers_look_like_a_firms_clients(state) -> None:
    ids = seed_customers(state, 60, random.Random(11))
    records = state.records("Customer")
    assert len(ids) == len(records) == 60
    assert len({r["DisplayName"].casefold() for r in records}) == 60
    assert any("PrimaryTaxIdentifier" in r for r in records) and any("SalesTermRef" in r for r in records)
    assert all(r["BillAddr"]["Country"] and r["CurrencyRef"]["value"] for r in records)


def test_webhook_emitter_posts_signed_legacy_notifications(state) -> None:
    delivered: list[httpx.Request] = []
    replies = iter([500, 200])

    def receiver(request: httpx.Request) -> httpx.Response:
        delivered.append(request)
        return httpx.Response(next(replies))

    emitter = WebhookEmitter(state, "http://accord.test/webhooks/quickbooks", "verifier",
                             transport=httpx.MockTransport(receiver))
    record_id = state.user_create("Customer", {"DisplayName": "Aperture"})
    state.user_update("Customer", record_id, {"Notes": "edited"})
    assert emitter.flush() == 0  # the receiver failed: the events wait for the next flush
    assert emitter.flush() == 2
    assert emitter.flush() == 0
    emitter.stop()

    body = delivered[-1].content
    assert verify_webhook(body, delivered[-1].headers["intuit-signature"], "verifier")
    assert parse_webhook(body, state.realm_id) == [("Customer", record_id, "Create"), ("Customer", record_id, "Update")]
    assert json.loads(body)["eventNotifications"][0]["realmId"] == state.realm_id
