"""The QuickBooks sandbox is as permissive as QBO and exactly as strict: whole objects (read-only
properties included) sent back as creates and full/sparse updates for every entity it serves, every
documented query form, and the company-level endpoints clients call to check a connection."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from accord.sandboxes.quickbooks.sandbox import QuickBooksState, build_app
from accord.sandboxes.quickbooks.tables import ENTITY_TYPES
from accord.sandboxes.server import Clock

START = 1_780_000_000.0
UNIQUE = {name: etype.unique for name, etype in ENTITY_TYPES.items()}


class Api:
    def __init__(self, client: httpx.AsyncClient, state: QuickBooksState, token: str) -> None:
        self.client, self.state, self.token = client, state, token
        self.base = f"/v3/company/{state.realm_id}"

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        params = {"minorversion": "75", **kwargs.pop("params", {})}
        return await self.client.request(method, self.base + path, params=params,
                                         headers={"Authorization": f"Bearer {self.token}"}, **kwargs)

    async def get(self, entity: str, record_id: str) -> dict[str, Any]:
        response = await self.call("GET", f"/{ENTITY_TYPES[entity].path}/{record_id}")
        assert response.status_code == 200, response.text
        return dict(response.json()[entity])

    async def post(self, entity: str, body: dict[str, Any]) -> httpx.Response:
        return await self.call("POST", f"/{ENTITY_TYPES[entity].path}", json=body)

    async def query(self, text: str) -> httpx.Response:
        return await self.call("GET", "/query", params={"query": text})


def world(state: QuickBooksState) -> dict[str, str]:
    """One record of every entity the sandbox serves (ids by entity), with unbilled time and expenses."""
    customer = state.user_create("Customer", {
        "DisplayName": "ABC Corp", "CompanyName": "ABC Corp", "GivenName": "Kim", "FamilyName": "Allen",
        "PrimaryEmailAddr": {"Address": "ap@abc.example"}, "BillAddr": {"Line1": "1 Main St", "City": "Springfield"},
        "SalesTermRef": {"value": "3"}, "Notes": "SF:0015g00000AbCdEAA1"})
    project = state.user_create_project(customer, "ABC Rollout")
    employee = state.user_create("Employee", {"DisplayName": "Kim Allen", "GivenName": "Kim", "FamilyName": "Allen",
                                              "BillableTime": True, "BillRate": 150})
    item = state.user_create("Item", {"Name": "Consulting Hours", "Sku": "CONS-1", "Type": "Service",
                                      "UnitPrice": 150, "IncomeAccountRef": {"value": "1"}})
    invoice = state.user_create_invoice(customer, [("Consulting", 2, 150)], project_id=project)
    return {
        "Customer": project, "Term": "3", "Account": "3", "Employee": employee, "Item": item,
        "TimeActivity": state.user_log_time(employee, project, 2.5, rate=150, notes="Workshop"),
        "Purchase": state.user_create("Purchase", {
            "PaymentType": "Cash", "AccountRef": {"value": "2"}, "Line": [{
                "DetailType": "AccountBasedExpenseLineDetail", "Amount": 40, "AccountBasedExpenseLineDetail": {
                    "AccountRef": {"value": "3"}, "CustomerRef": {"value": project},
                    "BillableStatus": "Billable"}}]}),
        "Invoice": invoice,
        "Payment": state.user_record_payment(invoice, 100, reference="ACH-1"),
        "Estimate": state.user_create("Estimate", {
            "CustomerRef": {"value": customer}, "ExpirationDate": "2026-07-01", "Line": [{
                "DetailType": "SalesItemLineDetail", "Amount": 100,
                "SalesItemLineDetail": {"Qty": 1, "UnitPrice": 100}}]}),
    }


@pytest.fixture
def state() -> QuickBooksState:
    return QuickBooksState(clock=Clock(start=START))


@pytest.fixture
async def api(state: QuickBooksState) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(state)),
                                 base_url="http://qbo.test") as client:
        yield Api(client, state, state.issue_token()["access_token"])


def stable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what every write changes (SyncToken, MetaData)."""
    return {k: v for k, v in record.items() if k not in ("SyncToken", "MetaData")}


def fault(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    return dict(response.json()["Fault"]["Error"][0])


ENTITIES = sorted(ENTITY_TYPES)


def test_every_rendered_property_is_documented(state: QuickBooksState) -> None:
    world(state)
    for name, etype in ENTITY_TYPES.items():
        for record in state.records(name):
            assert set(record) <= etype.known, (name, set(record) - etype.known)


@pytest.mark.parametrize("entity", ENTITIES)
async def test_a_whole_object_is_a_valid_full_and_sparse_update(state, api, entity) -> None:
    ids = world(state)
    whole = await api.get(entity, ids[entity])
    full = await api.post(entity, copy.deepcopy(whole))
    assert full.status_code == 200, full.text
    after = full.json()[entity]
    assert after["SyncToken"] == str(int(whole["SyncToken"]) + 1)
    assert stable(after) == stable(whole)  # read-only properties ignored, writable ones kept as sent
    sparse = await api.post(entity, {**after, "sparse": True})
    assert sparse.status_code == 200, sparse.text
    assert stable(sparse.json()[entity]) == stable(whole)


@pytest.mark.parametrize("entity", ENTITIES)
async def test_a_whole_object_is_a_valid_create(state, api, entity) -> None:
    ids = world(state)
    whole = await api.get(entity, ids[entity])
    body = {k: v for k, v in copy.deepcopy(whole).items() if k not in ("Id", "SyncToken")}
    unique = UNIQUE[entity]
    if unique is not None:
        body[unique] = f"{whole[unique]} (copy)"
    response = await api.post(entity, body)
    assert response.status_code == 200, response.text
    created = response.json()[entity]
    assert created["Id"] != whole["Id"] and created["SyncToken"] == "0"
    if entity == "Customer":  # FullyQualifiedName and Level are derived, never taken from the body
        assert created["FullyQualifiedName"] == f"ABC Corp:{body['DisplayName']}" and created["Level"] == 1
        assert created["Balance"] == 0


async def test_read_only_properties_with_other_values_are_ignored(state, api) -> None:
    ids = world(state)
    body = {"DisplayName": "Oscorp", "FullyQualifiedName": "Something:Else", "Level": 7, "Balance": 99,
            "BalanceWithJobs": 99, "OpenBalanceDate": "2026-01-01", "V4IDPseudonym": "x", "domain": "QBO",
            "sparse": False, "MetaData": {"CreateTime": "2001-01-01T00:00:00-07:00"}}
    created = (await api.post("Customer", body)).json()["Customer"]
    assert (created["FullyQualifiedName"], created["Balance"], created["BalanceWithJobs"]) == ("Oscorp", 0, 0)
    assert "Level" not in created and "OpenBalanceDate" not in created
    invoice = await api.get("Invoice", ids["Invoice"])
    updated = (await api.post("Invoice", {**invoice, "TotalAmt": 1, "Balance": 1, "HomeBalance": 1,
                                          "InvoiceLink": "https://x"})).json()["Invoice"]
    assert (updated["TotalAmt"], updated["Balance"]) == (300.0, 200.0) and "InvoiceLink" not in updated


@pytest.mark.parametrize("entity", ENTITIES)
async def test_an_unknown_property_is_refused_as_qbo_does(state, api, entity) -> None:
    ids = world(state)
    whole = await api.get(entity, ids[entity])
    for body in ({**whole, "Planet": "Earth"}, {**whole, "Id": None, "SyncToken": None, "Planet": "Earth"}):
        error = fault(await api.post(entity, {k: v for k, v in body.items() if v is not None}))
        assert (error["code"], error["element"], error["Message"]) == (
            "2010", "Planet", "Request has invalid or unsupported property")
        assert error["Detail"].startswith(f'Property Name:Unrecognized field "Planet" (class '
                                          f"com.intuit.schema.finance.v3.{entity}), not marked as ignorable (")
    assert (await api.get(entity, ids[entity]))["SyncToken"] == whole["SyncToken"]


async def test_a_billed_invoice_and_its_time_take_their_whole_objects_back(state, api) -> None:
    ids = world(state)
    invoice_id = state.billing_run(ids["Customer"])
    assert invoice_id is not None
    for entity, record_id in (("Invoice", invoice_id), ("TimeActivity", ids["TimeActivity"]),
                              ("Purchase", ids["Purchase"])):
        whole = await api.get(entity, record_id)
        response = await api.post(entity, whole)
        assert response.status_code == 200, response.text
        assert stable(response.json()[entity]) == stable(whole)


# ------------------------------------------------------------------------------------------------
# queries
# ------------------------------------------------------------------------------------------------

async def _rows(api: Api, text: str) -> dict[str, Any]:
    response = await api.query(text)
    assert response.status_code == 200, response.text
    return dict(response.json()["QueryResponse"])


@pytest.fixture
def items(state: QuickBooksState) -> dict[str, str]:
    made = {name: state.user_create("Item", {"Name": name, "Sku": sku, "UnitPrice": price, "Type": "Service",
                                             "IncomeAccountRef": {"value": "1"}})
            for name, sku, price in (("Consulting", "C-1", 150), ("Design", "D-1", 120), ("Training", "T-1", 90))}
    state.user_create("Customer", {"DisplayName": "O'Brien & Sons"})
    return made


@pytest.mark.parametrize(("text", "names"), [
    ("SELECT * FROM Item", ["Services", "Consulting", "Design", "Training"]),
    ("SELECT *, Sku FROM Item WHERE Sku IN ('C-1', 'T-1')", ["Consulting", "Training"]),
    ("select * from item where name like '%in%' orderby Name desc", ["Training", "Consulting"]),
    ("SELECT * FROM Item ORDER BY UnitPrice ASC STARTPOSITION 2 MAXRESULTS 2", ["Training", "Design"]),
    ("  SELECT   *  FROM  Item   WHERE   UnitPrice >= 120   AND  UnitPrice < 150  AND Active = true ",
     ["Design"]),
    ("SELECT * FROM Item WHERE UnitPrice > 120 AND UnitPrice <= 150 AND Type = 'Service'", ["Consulting"]),
    ("SELECT * FROM Item WHERE Name LIKE 'Des%' AND Id > '0'", ["Design"]),
    ("SELECT * FROM Item ORDERBY Type, Name DESC MAXRESULTS 2", ["Training", "Services"]),
    ("SELECT * FROM Customer WHERE DisplayName = 'O\\'Brien & Sons'", ["O'Brien & Sons"]),
    ("SELECT * FROM Item WHERE Metadata.LastUpdatedTime >= '2026-01-01T00:00:00-07:00' AND Name = 'Design'",
     ["Design"]),
])
async def test_documented_query_forms(api, items, text, names) -> None:
    found = await _rows(api, text)
    entity = "Customer" if "Customer" in text else "Item"
    assert [r.get("Name") or r.get("DisplayName") for r in found.get(entity, [])] == names
    if "Sku" in text:
        assert all("Sku" in r and r["sparse"] is False for r in found["Item"])


async def test_count_and_projections(api, items) -> None:
    assert await _rows(api, "SELECT COUNT(*) FROM Item WHERE UnitPrice >= 100") == {"totalCount": 2}
    projected = await _rows(api, "SELECT Name, UnitPrice FROM Item WHERE Name = 'Design'")
    assert projected["Item"] == [{"domain": "QBO", "sparse": True, "Id": items["Design"], "Name": "Design",
                                  "UnitPrice": 120}]
    assert await _rows(api, "SELECT * FROM Item WHERE Name = 'Nothing'") == {}


@pytest.mark.parametrize(("text", "code"), [
    ("SELECT * FROM Item WHERE Name = 'Design' OR Name = 'Training'", "4000"),  # OR is not supported
    ("SELECT * FROM Item WHERE Name != 'Design'", "4000"),
    ("SELECT * FROM Item GROUP BY Type", "4000"),
    ("SELECT * FROM Item, Customer", "4000"),
    ("SELECT Planet FROM Item", "4001"),
    ("SELECT * FROM Item WHERE Planet = 'Earth'", "4001"),
    ("SELECT * FROM Item ORDERBY Planet", "4001"),
    ("SELECT * FROM Item MAXRESULTS 1001", "4001"),
])
async def test_what_qbo_refuses_is_refused(api, items, text, code) -> None:
    error = fault(await api.query(text))
    assert error["code"] == code
    assert error["Message"] == ("Error parsing query" if code == "4000" else "Invalid query")


# ------------------------------------------------------------------------------------------------
# company-level endpoints
# ------------------------------------------------------------------------------------------------

async def test_company_info_and_preferences(state, api) -> None:
    info = (await api.call("GET", f"/companyinfo/{state.realm_id}")).json()
    assert set(info) == {"CompanyInfo", "time"}
    company = info["CompanyInfo"]
    assert company["CompanyName"] == state.realm().company_name and company["Id"] == "1"
    assert {"LegalName", "CompanyAddr", "Country", "FiscalYearStartMonth", "NameValue", "MetaData",
            "SyncToken"} <= set(company)
    prefs = (await api.call("GET", "/preferences")).json()["Preferences"]
    assert prefs["CurrencyPrefs"] == {"MultiCurrencyEnabled": True, "HomeCurrency": {"value": "USD"}}
    assert {"AccountingInfoPrefs", "SalesFormsPrefs", "TimeTrackingPrefs", "MetaData"} <= set(prefs)
    queried = await _rows(api, "SELECT * FROM CompanyInfo")
    assert queried == {"CompanyInfo": [company], "startPosition": 1, "maxResults": 1}
    assert (await _rows(api, "select * from Preferences"))["Preferences"] == [prefs]
    unauth = await api.client.get(f"{api.base}/preferences", params={"minorversion": "75"})
    assert unauth.status_code == 401


def test_a_query_by_id_reads_those_rows_and_still_applies_every_condition() -> None:
    """``Id = 'x'`` / ``Id IN (...)`` read the named rows (a writer's read-before-write does not scan the
    table); the other conditions, deleted rows, unknown ids and ordering behave as in any query."""
    from accord.sandboxes.quickbooks.qql import id_set, parse

    assert id_set(parse("SELECT * FROM Customer WHERE Id IN ('1', '2', '3') AND Id = '2'")) == {"2"}
    assert id_set(parse("SELECT * FROM Customer WHERE DisplayName = 'x'")) is None
