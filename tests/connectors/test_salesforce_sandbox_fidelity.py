"""The Salesforce sandbox is exactly as strict as Salesforce with whole objects: a record's GET body sent
back as a create or an update is refused with one ``INVALID_FIELD_FOR_INSERT_UPDATE`` naming every
non-createable (non-updateable) field describe lists; the createable / updateable part of it is accepted;
an unknown field is ``INVALID_FIELD``. Plus the account endpoints: ``/limits``, ``/sobjects``, describe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from accord.sandboxes.salesforce.sandbox import SalesforceState, build_app
from accord.sandboxes.server import Clock

V = "/services/data/v66.0"
START = 1_775_124_930.0
READ_ONLY_TEXT = ("Unable to create/update fields: {}. Please check the security settings of this field and "
                  "verify that it is read/write for your profile or permission set.")


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


def world(state: SalesforceState) -> dict[str, str]:
    account = state.user_create("Account", {"Name": "ABC Corp", "Website": "https://abc.example",
                                            "BillingCity": "Springfield"})
    invoice = state.user_create("Invoice__c", {"Name": "INV-1", "Account__c": account, "Total__c": 300.0,
                                               "Issue_Date__c": "2026-04-01", "Status__c": "Open"})
    return {"Account": account,
            "Contact": state.user_create("Contact", {"LastName": "Allen", "FirstName": "Kim", "AccountId": account,
                                                     "Email": "kim@abc.example"}),
            "Opportunity": state.user_create("Opportunity", {"Name": "Rollout", "StageName": "Prospecting",
                                                             "CloseDate": "2026-06-30", "AccountId": account,
                                                             "Amount": 1000.0}),
            "Invoice__c": invoice,
            "Payment__c": state.user_create("Payment__c", {"Invoice__c": invoice, "Amount__c": 100.0,
                                                           "Paid_Date__c": "2026-04-15"})}


async def describe(client: httpx.AsyncClient, obj: str) -> dict[str, dict[str, Any]]:
    body = (await client.get(f"{V}/sobjects/{obj}/describe")).json()
    return {f["name"]: f for f in body["fields"]}


async def whole(client: httpx.AsyncClient, obj: str, rid: str) -> dict[str, Any]:
    response = await client.get(f"{V}/sobjects/{obj}/{rid}")
    assert response.status_code == 200, response.text
    return {k: v for k, v in response.json().items() if k != "attributes"}


OBJECTS = ["Account", "Contact", "Opportunity", "Invoice__c", "Payment__c"]


@pytest.mark.parametrize("obj", OBJECTS)
async def test_a_whole_object_create_names_every_read_only_field(state, client, obj) -> None:
    rid = world(state)[obj]
    fields, record = await describe(client, obj), await whole(client, obj, rid)
    refused = await client.post(f"{V}/sobjects/{obj}", json=record)
    read_only = [name for name in record if not fields[name]["createable"]]
    assert refused.status_code == 400
    assert refused.json() == [{"message": READ_ONLY_TEXT.format(", ".join(read_only)),
                               "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE", "fields": read_only}]
    createable = {k: v for k, v in record.items() if fields[k]["createable"] and not fields[k]["unique"]}
    created = await client.post(f"{V}/sobjects/{obj}", json=createable)
    assert created.status_code == 201, created.text
    copy = await whole(client, obj, created.json()["id"])
    assert {k: copy[k] for k in createable} == createable


@pytest.mark.parametrize("obj", OBJECTS)
async def test_a_whole_object_update_names_every_read_only_field(state, client, obj) -> None:
    rid = world(state)[obj]
    fields, record = await describe(client, obj), await whole(client, obj, rid)
    refused = await client.patch(f"{V}/sobjects/{obj}/{rid}", json=record)
    read_only = [name for name in record if not fields[name]["updateable"]]
    assert refused.status_code == 400 and refused.json()[0]["fields"] == read_only
    assert refused.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    updateable = {k: v for k, v in record.items() if fields[k]["updateable"]}
    assert (await client.patch(f"{V}/sobjects/{obj}/{rid}", json=updateable)).status_code == 204
    after = await whole(client, obj, rid)
    assert {k: after[k] for k in updateable} == updateable


@pytest.mark.parametrize("obj", OBJECTS)
async def test_an_unknown_field_is_refused_before_read_only_ones(state, client, obj) -> None:
    rid = world(state)[obj]
    record = await whole(client, obj, rid)
    for response in (await client.post(f"{V}/sobjects/{obj}", json={**record, "Planet__c": "Earth"}),
                     await client.patch(f"{V}/sobjects/{obj}/{rid}", json={**record, "Planet__c": "Earth"})):
        assert response.status_code == 400
        assert response.json() == [{"message": f"No such column 'Planet__c' on sobject of type {obj}",
                                    "errorCode": "INVALID_FIELD", "fields": ["Planet__c"]}]


async def test_limits_describe_global_and_describe(client) -> None:
    limits = (await client.get(f"{V}/limits")).json()
    assert limits["DailyApiRequests"]["Max"] == 15000 and 0 < limits["DailyApiRequests"]["Remaining"] <= 15000
    catalogue = (await client.get(f"{V}/sobjects")).json()
    assert {"encoding", "maxBatchSize", "sobjects"} <= set(catalogue)
    assert set(OBJECTS) <= {s["name"] for s in catalogue["sobjects"]}
    fields = await describe(client, "Opportunity")
    assert fields["IsWon"]["createable"] is False and fields["StageName"]["createable"] is True
    assert fields["SystemModstamp"]["updateable"] is False
