"""The Salesforce sandbox on its own: SOQL engine, REST shapes, limits, faults and user helpers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from accord.sandboxes.salesforce import plan, soql
from accord.sandboxes.salesforce.sandbox import RecordError, SalesforceState, build_app
from accord.sandboxes.salesforce.schema import BILLING_MODELS, DELIVERY_REGIONS, SERVICE_LINES, STAGES
from accord.sandboxes.salesforce.seed import next_stage, seed_accounts, seed_contacts, seed_opportunities
from accord.sandboxes.salesforce.store import id18
from accord.sandboxes.server import Clock

V = "/services/data/v66.0"
START = 1_775_124_930.0  # 2026-04-02T10:15:30Z


@pytest.fixture
def state() -> SalesforceState:
    return SalesforceState(clock=Clock(start=START))


@pytest.fixture
async def client(state: SalesforceState) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(state)),
                                 base_url="http://sf.test") as raw:
        token = await raw.post("/services/oauth2/token", data={"grant_type": "client_credentials"},
                               auth=("accord-sandbox", "sandbox-secret"))
        raw.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield raw


async def query(client: httpx.AsyncClient, text: str, *, all_rows: bool = False) -> httpx.Response:
    return await client.get(f"{V}/{'queryAll' if all_rows else 'query'}", params={"q": text})


# -- SOQL engine ------------------------------------------------------------------------------------

ROWS = [{"Id": "a", "Name": "Acme", "Amount": 10.0, "City": None, "When": 1000},
        {"Id": "b", "Name": "beta", "Amount": 30.0, "City": "Leeds", "When": 2000},
        {"Id": "c", "Name": "Gamma", "Amount": 20.0, "City": "leeds", "When": 2000}]
TYPES = {"Id": "id", "Name": "string", "Amount": "double", "City": "string", "When": "datetime"}


def ids(text: str) -> list[str]:
    bound = soql.bind(soql.parse(text), TYPES)
    return [row["Id"] for row in soql.run(bound, ROWS, lambda r: r)]


@pytest.mark.parametrize(("where", "expected"), [
    ("Name = 'ACME'", ["a"]),
    ("Name IN ('beta', 'gamma')", ["b", "c"]),
    ("Name NOT IN ('beta')", ["a", "c"]),
    ("Name LIKE 'g%'", ["c"]),
    ("City = null", ["a"]),
    ("City != 'Leeds'", ["a"]),  # != matches nulls, and ignores case
    ("Amount > 10 AND (City = 'leeds' OR Name = 'Acme')", ["b", "c"]),
    ("NOT Amount >= 20", ["a"]),
    ("When >= 1970-01-01T00:00:01.500Z", ["a", "b", "c"]),  # dateTimes compare to the second
    ("When > 1970-01-01T00:00:01.999Z", ["b", "c"]),
    ("When = 1970-01-01T00:00:02.700Z", ["b", "c"]),
    ("When < 1970-01-01T01:00:02+01:00", ["a"]),
    ("Name = 'O\\'Brien' OR Name = 'beta'", ["b"]),
])
def test_soql_conditions(where: str, expected: list[str]) -> None:
    assert ids(f"SELECT Id FROM T WHERE {where} ORDER BY Id") == expected


def test_a_datetime_orders_to_the_second_and_ties_go_to_the_next_key() -> None:
    rows = [{"Id": "x", "When": 1900}, {"Id": "y", "When": 1100}, {"Id": "w", "When": 2000}]
    query = soql.bind(soql.parse("SELECT Id FROM T WHERE When >= 1970-01-01T00:00:01Z "
                                 "AND (When > 1970-01-01T00:00:01Z OR Id > 'x') ORDER BY When, Id"), TYPES)
    assert [r["Id"] for r in soql.select(query, rows)] == ["y", "w"]  # the keyset after (second 1, "x")
    ordered = soql.bind(soql.parse("SELECT Id FROM T ORDER BY When, Id"), TYPES)
    assert [r["Id"] for r in soql.select(ordered, rows)] == ["x", "y", "w"]  # 1.9 s and 1.1 s tie: by Id
    assert plan.modstamp_floor(soql.bind(soql.parse(
        "SELECT Id FROM T WHERE SystemModstamp > 1970-01-01T00:00:01.400Z"), {**TYPES, "SystemModstamp": "datetime"})) == 2000


def test_soql_order_limit_offset() -> None:
    assert ids("select id from T order by When desc, Name asc") == ["b", "c", "a"]
    assert ids("SELECT Id FROM T ORDER BY City ASC NULLS LAST, Id DESC") == ["c", "b", "a"]
    assert ids("SELECT Id FROM T ORDER BY City") == ["a", "b", "c"]  # nulls first; "Leeds" ties "leeds"
    assert ids("SELECT Id FROM T ORDER BY Amount LIMIT 2 OFFSET 1") == ["c", "b"]


@pytest.mark.parametrize("text", [
    "SELECT FROM Account", "SELECT Id Account", "SELECT Id FROM Account WHERE", "SELECT Id FROM Account WHERE Name",
    "SELECT Id FROM Account WHERE Name = 'open", "SELECT Id FROM Account WHERE Name IN 'a'",
    "SELECT Id FROM Account ORDER Id", "SELECT Id FROM Account LIMIT x", "SELECT Id, FROM Account",
    "SELECT Id FROM Account WHERE Name = 'a' extra", "SELECT Id FROM Account WHERE Name = #",
])
async def test_malformed_query(client: httpx.AsyncClient, text: str) -> None:
    response = await query(client, text)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"


@pytest.mark.parametrize(("text", "code", "message"), [
    ("SELECT Id, Nope__c FROM Account", "INVALID_FIELD", "No such column 'Nope__c'"),
    ("SELECT Id FROM Account WHERE SystemModstamp > '2026-01-01T00:00:00Z'", "INVALID_FIELD",
     "should not be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD", "must be of type string"),
    ("SELECT Id FROM Shipment__c", "INVALID_TYPE", "sObject type 'Shipment__c' is not supported"),
])
async def test_query_checked_against_schema(client: httpx.AsyncClient, text: str, code: str, message: str) -> None:
    response = await query(client, text)
    assert response.status_code == 400 and response.json()[0]["errorCode"] == code
    assert message in response.json()[0]["message"]


# -- query, locators, deletes ----------------------------------------------------------------------

async def test_query_pages_and_locators(state: SalesforceState, client: httpx.AsyncClient) -> None:
    ids = seed_accounts(state, 5, random.Random(1))
    state.user_delete("Account", ids[0])
    state.max_batch = 3
    first = (await query(client, "SELECT Id, Name FROM Account ORDER BY Id", all_rows=True)).json()
    assert (first["totalSize"], first["done"], len(first["records"])) == (5, False, 3)
    assert first["nextRecordsUrl"].startswith(f"{V}/queryAll/01g") and first["nextRecordsUrl"].endswith("-3")
    assert first["records"][0]["attributes"] == {"type": "Account", "url": f"{V}/sobjects/Account/{ids[0]}"}
    assert list(first["records"][0]) == ["attributes", "Id", "Name"]
    wrong_kind = await client.get(first["nextRecordsUrl"].replace("queryAll", "query"))
    assert wrong_kind.status_code == 400 and wrong_kind.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    second = (await client.get(first["nextRecordsUrl"])).json()
    assert (second["done"], "nextRecordsUrl" in second, len(second["records"])) == (True, False, 2)
    live = (await query(client, "SELECT Id, IsDeleted FROM Account")).json()
    assert live["totalSize"] == 4 and ids[0] not in [r["Id"] for r in live["records"]]
    gone = (await query(client, "SELECT Id FROM Account WHERE IsDeleted = true", all_rows=True)).json()
    assert [r["Id"] for r in gone["records"]] == [ids[0]]


async def test_a_locator_pages_the_rows_as_they_were_when_the_query_ran(
        state: SalesforceState, client: httpx.AsyncClient) -> None:
    """Rows are rendered a page at a time, yet a later page still shows the query's snapshot."""
    ids = seed_accounts(state, 4, random.Random(3))
    state.max_batch = 2
    first = (await query(client, "SELECT Id, Name FROM Account ORDER BY Id")).json()
    later = sorted(ids)[3]
    state.user_update("Account", later, {"Name": "Renamed after the query"})
    second = (await client.get(first["nextRecordsUrl"])).json()
    names = {row["Id"]: row["Name"] for row in first["records"] + second["records"]}
    assert len(names) == 4 and names[later] != "Renamed after the query"
    assert (await query(client, f"SELECT Name FROM Account WHERE Id = '{later}'")).json()["records"][0]["Name"] \
        == "Renamed after the query"


async def test_cursors_expire_and_are_capped(state: SalesforceState, client: httpx.AsyncClient) -> None:
    seed_accounts(state, 3, random.Random(2))
    state.max_batch = 1
    state.max_cursors = 2
    urls = [(await query(client, "SELECT Id FROM Account")).json()["nextRecordsUrl"] for _ in range(3)]
    assert (await client.get(urls[0])).status_code == 400  # the oldest of three was closed
    assert (await client.get(urls[2])).status_code == 200
    state.clock.advance(901)  # unused for more than 15 minutes
    response = await client.get(urls[1])
    assert response.status_code == 400 and response.json() == [
        {"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]


# -- auth, versions, limits, faults ----------------------------------------------------------------

async def test_token_endpoint_checks_client(client: httpx.AsyncClient, state: SalesforceState) -> None:
    bad = await client.post("/services/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=("accord-sandbox", "nope"))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client"
    form = await client.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": "accord-sandbox", "client_secret": "sandbox-secret"})
    assert form.status_code == 200 and form.json()["instance_url"] == "http://sf.test"
    grant = await client.post("/services/oauth2/token", data={"grant_type": "password"})
    assert grant.json()["error"] == "unsupported_grant_type"
    state.expire_tokens()
    expired = await client.get(f"{V}/limits")
    assert expired.status_code == 401
    assert expired.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


async def test_versions(client: httpx.AsyncClient, state: SalesforceState) -> None:
    listed = (await client.get("/services/data/", headers={"Authorization": ""})).json()
    assert listed[0] == {"label": "Summer '19", "url": "/services/data/v46.0", "version": "46.0"}
    assert listed[-1] == {"label": "Spring '26", "url": "/services/data/v66.0", "version": "66.0"}
    assert state.usage()[0] == 0  # the versions list is free
    old = await client.get("/services/data/v45.0/limits")
    assert old.status_code == 404 and old.json()[0]["errorCode"] == "NOT_FOUND"


async def test_daily_limit(client: httpx.AsyncClient, state: SalesforceState) -> None:
    state.api_limit = 2
    first = await client.get(f"{V}/limits")
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/2"
    assert first.json()["DailyApiRequests"] == {"Max": 2, "Remaining": 1}
    await client.get(f"{V}/limits")
    refused = await client.get(f"{V}/limits")
    assert refused.status_code == 403 and refused.headers["Sforce-Limit-Info"] == "api-usage=2/2"
    assert refused.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    state.clock.advance(86400)  # a new day on the sandbox clock (and the session has timed out)
    assert (await client.get(f"{V}/limits")).status_code == 401
    token = await client.post("/services/oauth2/token", data={"grant_type": "client_credentials"},
                              auth=("accord-sandbox", "sandbox-secret"))
    renewed = await client.get(f"{V}/limits", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert renewed.headers["Sforce-Limit-Info"] == "api-usage=1/2"


async def test_faults_render_the_salesforce_way(client: httpx.AsyncClient, state: SalesforceState) -> None:
    state.faults.add("sobject", "429")
    state.faults.add("composite", "503")
    limited = await client.post(f"{V}/sobjects/Account", json={"Name": "X"})
    assert limited.status_code == 403 and limited.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    down = await client.patch(f"{V}/composite/sobjects", json={"records": []})
    assert down.status_code == 503 and down.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert "Sforce-Limit-Info" in down.headers and state.records("Account") == []
    assert [(e.endpoint, e.status, e.fault) for e in state.requests.entries()[-2:]] == [
        ("sobject", 403, "429"), ("composite", 503, "503")]
    admin = await client.get("/__sandbox__/requests")
    assert admin.status_code == 200 and admin.json()[-1]["endpoint"] == "composite"


# -- sObject rows and upsert -------------------------------------------------------------------------

async def test_sobject_row_lifecycle(client: httpx.AsyncClient, state: SalesforceState) -> None:
    created = await client.post(f"{V}/sobjects/Account", json={"Name": "Row Co", "BillingCountryCode": "NL"})
    assert created.status_code == 201 and created.json()["success"] is True and created.json()["errors"] == []
    rid = created.json()["id"]
    assert len(rid) == 18 and rid.startswith("001") and id18(rid[:15]) == rid
    got = (await client.get(f"{V}/sobjects/Account/{rid[:15]}")).json()  # 15-character ids work too
    assert (got["Id"], got["BillingCountry"], got["CurrencyIsoCode"]) == (rid, "Netherlands", "USD")
    assert got["CreatedDate"].endswith("+0000") and got["IsDeleted"] is False
    assert (await client.patch(f"{V}/sobjects/Account/{rid}", json={"Website": "https://row.example"})).status_code == 204
    assert (await client.delete(f"{V}/sobjects/Account/{rid}")).status_code == 204
    gone = await client.get(f"{V}/sobjects/Account/{rid}")
    assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    row = state.get("Account", rid)
    assert row is not None and row["Website"] == "https://row.example" and row["IsDeleted"] is True


@pytest.mark.parametrize(("body", "code"), [
    ({"Name": "X", "Bogus__c": 1}, "INVALID_FIELD"),
    ({"Name": "X", "SystemModstamp": "2026-01-01T00:00:00.000+0000"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ({"Website": "https://x.example"}, "REQUIRED_FIELD_MISSING"),
    ({"Name": "X", "BillingCountryCode": "Germany"}, "FIELD_INTEGRITY_EXCEPTION"),
    ({"Name": "X", "CurrencyIsoCode": "XYZ"}, "INVALID_CURRENCY_ISO"),
    ({"Name": 5}, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
    ({"Name": "X" * 256}, "STRING_TOO_LONG"),
])
async def test_create_validation(client: httpx.AsyncClient, body: dict[str, Any], code: str) -> None:
    response = await client.post(f"{V}/sobjects/Account", json=body)
    assert response.status_code == 400 and response.json()[0]["errorCode"] == code


async def test_single_upsert_by_external_id(client: httpx.AsyncClient, state: SalesforceState) -> None:
    url = f"{V}/sobjects/Account/Accord_Id__c/G-ABC"
    first = await client.patch(url, json={"Name": "Upserted"})
    assert first.status_code == 201 and first.json()["created"] is True
    second = await client.patch(f"{V}/sobjects/Account/accord_id__c/g-abc", json={"Website": "https://u.example"})
    assert second.status_code == 200 and second.json() == {"id": first.json()["id"], "success": True, "errors": [],
                                                            "created": False}
    assert len(state.records("Account")) == 1 and state.records("Account")[0]["Accord_Id__c"] == "G-ABC"
    missing = await client.patch(f"{V}/sobjects/Account/Accord_Id__c/other?updateOnly=true", json={"Name": "N"})
    assert missing.status_code == 404
    bad_field = await client.patch(f"{V}/sobjects/Account/Name/whatever", json={"Name": "N"})
    assert bad_field.status_code == 404 and bad_field.json()[0]["errorCode"] == "NOT_FOUND"
    state.user_create("Account", {"Name": "L1", "Legacy_Id__c": "dup"})
    state.user_create("Account", {"Name": "L2", "Legacy_Id__c": "DUP"})  # not a unique external id
    several = await client.patch(f"{V}/sobjects/Account/Legacy_Id__c/dup", json={"Name": "N"})
    assert several.status_code == 300 and len(several.json()) == 2
    clash = state.user_create("Account", {"Name": "Other"})
    with pytest.raises(RecordError, match="DUPLICATE_VALUE"):
        state.user_update("Account", clash, {"Accord_Id__c": "g-abc"})


# -- sObject Collections -------------------------------------------------------------------------------

def records(*items: dict[str, Any], kind: str = "Account") -> list[dict[str, Any]]:
    return [{"attributes": {"type": kind}, **item} for item in items]


async def test_all_or_none_rolls_back(client: httpx.AsyncClient, state: SalesforceState) -> None:
    rid = state.user_create("Account", {"Name": "Before"})
    stamp = state.records("Account")[0]["SystemModstamp"]
    body = {"allOrNone": True, "records": records({"id": rid, "Name": "After"}, {"id": rid, "Name": None})}
    results = (await client.patch(f"{V}/composite/sobjects", json=body)).json()
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING" and results[1]["id"] == rid
    assert [(r["Name"], r["SystemModstamp"]) for r in state.records("Account")] == [("Before", stamp)]
    upsert = {"allOrNone": True, "records": records({"Accord_Id__c": "n-1", "Name": "New"}, {"Accord_Id__c": "n-2"})}
    results = (await client.patch(f"{V}/composite/sobjects/Account/Accord_Id__c", json=upsert)).json()
    assert [r["errors"][0]["statusCode"] for r in results] == ["ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                                               "REQUIRED_FIELD_MISSING"]
    assert len(state.records("Account")) == 1


async def test_collections_create_update_delete(client: httpx.AsyncClient, state: SalesforceState) -> None:
    made = (await client.post(f"{V}/composite/sobjects", json={"records": records(
        {"Name": "C1"}, {"LastName": "Allen"}, {"FirstName": "No Last"}, kind="Contact")[1:] + records(
        {"Name": "C1"})})).json()
    assert [r["success"] for r in made] == [True, False, True]
    assert made[0]["id"].startswith("003") and made[2]["id"].startswith("001")
    dup = {"records": records({"Accord_Id__c": "same", "Name": "A"}, {"Accord_Id__c": "SAME", "Name": "B"})}
    results = (await client.patch(f"{V}/composite/sobjects/Account/Accord_Id__c", json=dup)).json()
    assert results[0]["created"] is True and results[1]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    gone = (await client.delete(f"{V}/composite/sobjects", params={"ids": f"{made[2]['id']},001bogus"})).json()
    assert gone[0] == {"id": made[2]["id"], "success": True, "errors": []}
    assert gone[1]["errors"][0]["statusCode"] == "MALFORMED_ID"
    again = (await client.delete(f"{V}/composite/sobjects", params={"ids": made[2]["id"]})).json()
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    read = (await client.get(f"{V}/composite/sobjects/Contact", params={"ids": made[0]["id"], "fields": "LastName"}))
    assert read.json() == [{"attributes": {"type": "Contact", "url": f"{V}/sobjects/Contact/{made[0]['id']}"},
                            "LastName": "Allen"}]
    too_many = await client.patch(f"{V}/composite/sobjects", json={"records": records(*[{"Name": "x"}] * 201)})
    assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


async def test_single_currency_org_refuses_currency(client: httpx.AsyncClient, state: SalesforceState) -> None:
    state.multi_currency = False
    response = await client.post(f"{V}/sobjects/Account", json={"Name": "X", "CurrencyIsoCode": "EUR"})
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "INVALID_FIELD"
    assert (await query(client, "SELECT CurrencyIsoCode FROM Account")).json()[0]["errorCode"] == "INVALID_FIELD"


# -- user helpers and seed ---------------------------------------------------------------------------

def test_user_changes_bump_modstamp_like_api_writes(state: SalesforceState) -> None:
    rid = state.user_create("Account", {"Name": "Human Made"})
    created = state.get("Account", rid)
    state.clock.advance(-10)  # a clock step backwards never moves a modstamp backwards
    state.user_update("Account", rid, {"Website": "https://human.example"})
    updated = state.get("Account", rid)
    assert created is not None and updated is not None
    assert updated["SystemModstamp"] > created["SystemModstamp"] == updated["CreatedDate"]
    assert updated["LastModifiedDate"] == updated["SystemModstamp"]
    with state.transaction():
        a = state.user_create("Account", {"Name": "A"})
        b = state.user_create("Account", {"Name": "B"})
    assert state.records("Account")[1]["SystemModstamp"] == state.records("Account")[2]["SystemModstamp"]
    with pytest.raises(RecordError, match="REQUIRED_FIELD_MISSING"), state.transaction():
        state.user_update("Account", a, {"Name": "A2"})
        state.user_update("Account", b, {"Name": None})
    assert [r["Name"] for r in state.records("Account")] == ["Human Made", "A", "B"]  # all or nothing
    opp = state.user_create("Opportunity", {"Name": "Deal", "StageName": "Closed Won", "CloseDate": "2026-03-31"})
    assert {k: state.get("Opportunity", opp)[k] for k in ("IsWon", "IsClosed", "Probability")} == {  # type: ignore[index]
        "IsWon": True, "IsClosed": True, "Probability": 100.0}


def test_seed_accounts_are_realistic(state: SalesforceState) -> None:
    ids = seed_accounts(state, 40, random.Random(11))
    rows = state.records("Account")
    assert [r["Id"] for r in rows] == ids and len({r["Name"] for r in rows}) == 40
    currency = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR", "CA": "CAD", "AU": "AUD"}
    assert all(r["CurrencyIsoCode"] == currency[r["BillingCountryCode"]] for r in rows)
    assert all(r["Website"].startswith("https://www.") and r["BillingCity"] and r["Accord_Id__c"] is None
               for r in rows)
    assert {r["Payment_Terms__c"] for r in rows} <= {"Net 15", "Net 30", "Net 60", "Due on receipt"}
    assert 0 < sum(1 for r in rows if r["Tax_Id__c"]) < 40
    again = SalesforceState(clock=Clock(start=START))
    seed_accounts(again, 40, random.Random(11))
    assert [r["Name"] for r in again.records("Account")] == [r["Name"] for r in rows]  # reproducible


# -- Contact and Opportunity -------------------------------------------------------------------------

async def test_lookups_must_reference_live_accounts(client: httpx.AsyncClient, state: SalesforceState) -> None:
    account = state.user_create("Account", {"Name": "Parent Co"})
    made = await client.post(f"{V}/sobjects/Contact", json={"LastName": "Short", "AccountId": account[:15]})
    assert made.status_code == 201
    assert state.get("Contact", made.json()["id"])["AccountId"] == account  # type: ignore[index]  # 18-char form
    contact = made.json()["id"]
    for value, code in ((contact, "FIELD_INTEGRITY_EXCEPTION"), ("garbage", "MALFORMED_ID"),
                        ("001000000000000AAA", "INVALID_CROSS_REFERENCE_KEY")):
        response = await client.post(f"{V}/sobjects/Contact", json={"LastName": "X", "AccountId": value})
        assert response.status_code == 400 and response.json()[0]["errorCode"] == code
        assert response.json()[0]["fields"] == ["AccountId"]
    body = {"allOrNone": False, "records": records({"LastName": "Ok", "AccountId": account},
                                                   {"LastName": "Bad", "AccountId": "001000000000000AAA"},
                                                   kind="Contact")}
    results = (await client.post(f"{V}/composite/sobjects", json=body)).json()
    assert results[0]["success"] is True
    assert results[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"


async def test_opportunity_stage_table_and_read_only_fields(client: httpx.AsyncClient,
                                                            state: SalesforceState) -> None:
    body = {"Name": "Deal", "StageName": "Negotiation/Review", "CloseDate": "2026-06-30", "Amount": 1234.567}
    rid = (await client.post(f"{V}/sobjects/Opportunity", json=body)).json()["id"]
    row = state.get("Opportunity", rid)
    assert row is not None and (row["IsClosed"], row["IsWon"], row["Probability"], row["Amount"]) == (
        False, False, 90.0, 1234.57)  # Amount is currency(16, 2)
    for stage, (closed, won, probability) in STAGES.items():
        assert (await client.patch(f"{V}/sobjects/Opportunity/{rid}", json={"StageName": stage})).status_code == 204
        row = state.get("Opportunity", rid)
        assert row is not None and (row["IsClosed"], row["IsWon"], row["Probability"]) == (closed, won, probability)
    refused = await client.patch(f"{V}/sobjects/Opportunity/{rid}", json={"IsWon": False})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    for change, code in (({"StageName": "Won-ish"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
                         ({"Billing_Model__c": "Barter"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
                         ({"CloseDate": "2026-02-30"}, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
                         ({"CloseDate": None}, "REQUIRED_FIELD_MISSING")):
        response = await client.patch(f"{V}/sobjects/Opportunity/{rid}", json=change)
        assert response.status_code == 400 and response.json()[0]["errorCode"] == code
    state.add_picklist_value("Opportunity", "Billing_Model__c", "Barter")
    state.set_stage("Won-ish", closed=True, won=True, probability=95.0)
    assert (await client.patch(f"{V}/sobjects/Opportunity/{rid}", json={
        "StageName": "Won-ish", "Billing_Model__c": "Barter"})).status_code == 204
    assert state.get("Opportunity", rid)["IsWon"] is True  # type: ignore[index]
    with pytest.raises(KeyError, match="not a restricted picklist"):
        state.add_picklist_value("Opportunity", "Name", "x")
    described = {f["name"]: f for f in (await client.get(f"{V}/sobjects/Opportunity/describe")).json()["fields"]}
    assert (described["IsWon"]["updateable"], described["AccountId"]["referenceTo"]) == (False, ["Account"])
    assert [v["value"] for v in described["Billing_Model__c"]["picklistValues"]] == [*BILLING_MODELS, "Barter"]
    assert "Won-ish" in [v["value"] for v in described["StageName"]["picklistValues"]]


def test_deleting_an_account_cascades(state: SalesforceState) -> None:
    parent = state.user_create("Account", {"Name": "Parent"})
    child = state.user_create("Account", {"Name": "Child", "ParentId": parent})
    contact = state.user_create("Contact", {"LastName": "Kept", "AccountId": parent})
    opp = state.user_create("Opportunity", {"Name": "D", "StageName": "Prospecting", "CloseDate": "2026-05-01",
                                            "AccountId": parent})
    state.clock.advance(5)
    state.lock_record(contact)  # a related record is locked: the delete fails and changes nothing
    with pytest.raises(RecordError, match="UNABLE_TO_LOCK_ROW"):
        state.user_delete("Account", parent)
    assert state.get("Account", parent)["IsDeleted"] is False  # type: ignore[index]
    state.lock_record(contact, False)
    state.user_delete("Account", parent)
    rows = {rid: state.get(obj, rid) for obj, rid in (("Account", parent), ("Account", child),
                                                       ("Contact", contact), ("Opportunity", opp))}
    stamps = {row["SystemModstamp"] for row in rows.values() if row}
    assert len(stamps) == 1  # one transaction
    assert [rows[r]["IsDeleted"] for r in (parent, child, contact, opp)] == [True, False, True, True]  # type: ignore[index]
    assert rows[child]["ParentId"] is None  # type: ignore[index]


def test_seed_contacts_and_opportunities_are_realistic(state: SalesforceState) -> None:
    accounts = seed_accounts(state, 30, random.Random(12))
    state.user_delete("Account", accounts[0])
    contacts = seed_contacts(state, accounts, random.Random(12))
    opps = seed_opportunities(state, accounts, random.Random(12))
    by_id = {r["Id"]: r for r in state.records("Account")}
    people = state.records("Contact")
    assert [r["Id"] for r in people] == contacts and len(contacts) >= 29
    for person in people:
        account = by_id[person["AccountId"]]  # never the deleted account
        domain = account["Website"].removeprefix("https://www.")
        assert person["Email"].endswith(f"@{domain}") and person["LastName"] and person["Title"]
    deals = state.records("Opportunity")
    assert [r["Id"] for r in deals] == opps and len(opps) >= 20
    region = {"US": "NA", "CA": "NA", "AU": "APAC"}
    for deal in deals:
        account = by_id[deal["AccountId"]]
        assert deal["CurrencyIsoCode"] == account["CurrencyIsoCode"] and deal["Amount"] > 0
        assert deal["Delivery_Region__c"] == region.get(account["BillingCountryCode"], "EMEA")
        assert deal["Service_Line__c"] in SERVICE_LINES and deal["Billing_Model__c"] in BILLING_MODELS
        assert deal["IsWon"] == STAGES[deal["StageName"]][1] and deal["Delivery_Region__c"] in DELIVERY_REGIONS
        closed = deal["CloseDate"] <= "2026-04-02"
        assert closed == deal["IsClosed"]  # closed deals closed in the past, open ones close later
    assert {d["StageName"] for d in deals} >= {"Closed Won", "Closed Lost"}
    assert sum(d["IsWon"] for d in deals) < len(deals)
    rng = random.Random(1)
    assert next_stage("Closed Won", rng) == "Closed Won"
    assert {next_stage("Negotiation/Review", rng) for _ in range(50)} == {"Closed Won", "Closed Lost"}
    again = SalesforceState(clock=Clock(start=START))
    seed_opportunities(again, seed_accounts(again, 30, random.Random(12))[1:], random.Random(12))
    assert [(d["Name"], d["Amount"], d["CloseDate"]) for d in again.records("Opportunity")] == [
        (d["Name"], d["Amount"], d["CloseDate"]) for d in deals]  # reproducible from the seed
