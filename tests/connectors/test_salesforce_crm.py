"""Contact and Opportunity through SalesforceConnector against the sandbox, and their field tables."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import parse_qs

import pytest

from accord.connectors.errors import Permanent
from accord.connectors.salesforce.client import SalesforceConnector
from accord.connectors.salesforce.mapping import MappingError, to_canonical, to_wire, written_projection
from accord.model.entities import entity_fields, validate_fields
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.salesforce.seed import seed_accounts, seed_contacts, seed_opportunities
from tests.connectors.sf_rig import Recorder, drain, op, settings

STAMP = "2026-04-02T10:15:30.000+0000"
ACCOUNT_ID = "0015g00000AbCdEAA1"
CONTACT_FIELDS = {"account", "first_name", "last_name", "email", "phone", "title"}
OPPORTUNITY_FIELDS = set(entity_fields("opportunity"))


def sent_bodies(sf_recorder: Recorder, method: str = "PATCH") -> list[dict[str, Any]]:
    return [json.loads(r.content) for r in sf_recorder.requests if r.method == method]


def soql_of(sf_state: SalesforceState) -> list[str]:
    return [parse_qs(e.query)["q"][0] for e in sf_state.requests.entries("query") if "q=" in e.query]


OPP_WIRE = {"Id": "0065g00000XyZabAAB", "Name": "Acme ERP rollout", "AccountId": ACCOUNT_ID,
            "StageName": "Closed Won", "IsWon": True, "IsClosed": True, "Amount": 125000.0, "CloseDate": "2026-03-31",
            "CurrencyIsoCode": "USD", "Service_Line__c": "Implementation", "Billing_Model__c": "Fixed Fee",
            "Delivery_Region__c": "EMEA", "Accord_Project_Id__c": "prj-7f3a", "Accord_Id__c": "g-opp",
            "IsDeleted": False, "SystemModstamp": STAMP}
OPP_CANONICAL = {"account": ACCOUNT_ID, "name": "Acme ERP rollout", "stage": "Closed Won", "is_won": True,
                 "amount": "125000.00", "currency": "USD", "close_date": "2026-03-31",
                 "service_line": "Implementation", "billing_model": "fixed_fee", "delivery_region": "EMEA",
                 "project": "prj-7f3a", "project_ref": None, "customer_ref": None}


# -- field tables -------------------------------------------------------------------------------------

def test_contact_maps_both_ways() -> None:
    wire = {"Id": "0035g00000QrStUAAV", "AccountId": ACCOUNT_ID, "FirstName": "Kim", "LastName": "Allen",
            "Email": "kim@abc.example", "Phone": "+44 20 7946 0018", "Title": "", "Accord_Id__c": None,
            "IsDeleted": False, "SystemModstamp": STAMP}
    fields, gid, _, deleted = to_canonical("contact", wire)
    assert fields == {"account": ACCOUNT_ID, "first_name": "Kim", "last_name": "Allen", "email": "kim@abc.example",
                      "phone": "+44 20 7946 0018", "title": None}
    assert (gid, deleted) == (None, False)
    assert to_wire("contact", {"title": "CFO", "account": None}) == {"Title": "CFO", "AccountId": None}
    assert written_projection("contact", {"last_name": "Allen", "email": ""}) == {"last_name": "Allen",
                                                                                  "email": None}


def test_opportunity_maps_both_ways() -> None:
    fields, gid, _, _ = to_canonical("opportunity", OPP_WIRE)
    assert fields == OPP_CANONICAL and gid == "g-opp"
    # msgpack-native, in canonical spelling (the poller normalises every read: decimals unpadded)
    assert validate_fields("opportunity", fields) == {**fields, "amount": "125000"}
    other = to_canonical("opportunity", {**OPP_WIRE, "Amount": 99.5, "Billing_Model__c": "Time & Materials",
                                         "IsWon": False, "Accord_Project_Id__c": None})[0]
    assert (other["amount"], other["billing_model"], other["is_won"], other["project"]) == (
        "99.50", "time_and_materials", False, None)
    wire = to_wire("opportunity", OPP_CANONICAL)
    assert "IsWon" not in wire  # derived by Salesforce: never written
    assert wire == {"AccountId": ACCOUNT_ID, "Name": "Acme ERP rollout", "StageName": "Closed Won",
                    "Amount": 125000.0, "CurrencyIsoCode": "USD", "CloseDate": "2026-03-31",
                    "Service_Line__c": "Implementation", "Billing_Model__c": "Fixed Fee",
                    "Delivery_Region__c": "EMEA", "Accord_Project_Id__c": "prj-7f3a",
                    "PSA_Project_Id__c": None, "ERP_Customer_Id__c": None}
    assert to_wire("opportunity", {"amount": "1234.5", "billing_model": "retainer"}) == {
        "Amount": 1234.5, "Billing_Model__c": "Retainer"}
    assert written_projection("opportunity", {"amount": 1234.5, "is_won": True, "stage": "Prospecting"}) == {
        "amount": "1234.50", "stage": "Prospecting"}  # is_won is not claimed: the next read reports it


@pytest.mark.parametrize(("fields", "field", "value"), [
    ({"billing_model": "capped_tm"}, "billing_model", "capped_tm"),
    ({"amount": "lots"}, "amount", "lots"),
    ({"close_date": "31/03/2026"}, "close_date", "31/03/2026"),
    ({"close_date": "2026-02-30"}, "close_date", "2026-02-30"),
])
def test_opportunity_unmappable_writes_name_field_and_value(fields: dict[str, Any], field: str, value: Any) -> None:
    with pytest.raises(MappingError, match=rf"opportunity\.{field}: cannot map '{value}'; expected") as caught:
        to_wire("opportunity", fields)
    assert caught.value.field == field and isinstance(caught.value, Permanent)


def test_opportunity_unmappable_reads_name_field_value_and_fix() -> None:
    wire = {**OPP_WIRE, "Billing_Model__c": "Capped T&M", "CloseDate": "03/31/2026"}
    problems: list[MappingError] = []
    fields = to_canonical("opportunity", wire, on_error=problems.append)[0]
    assert fields.keys() == OPPORTUNITY_FIELDS - {"billing_model", "close_date"}
    assert [(p.field, p.value) for p in problems] == [("close_date", "03/31/2026"), ("billing_model", "Capped T&M")]
    assert "add it to the opportunity billing_model table" in problems[1].message


# -- contacts against the sandbox ----------------------------------------------------------------------

async def test_contacts_write_and_read_with_native_account_reference(sf_state: SalesforceState,
                                                                   sf: SalesforceConnector,
                                                                   sf_recorder: Recorder) -> None:
    [acme] = seed_accounts(sf_state, 1, random.Random(1))
    full = {"account": acme, "first_name": "Kim", "last_name": "Allen", "email": "kim@acme.example",
            "phone": "+1 617 555 0100", "title": "CFO"}
    [made] = await sf.write("contact", [op("g-kim", full)])
    assert made.ok and made.created and made.target_id and made.target_id.startswith("003")
    assert made.fields == full
    [sent] = sent_bodies(sf_recorder)
    assert sf_recorder.requests[-1].url.path.endswith("/composite/sobjects/Contact/Accord_Id__c")
    assert sent["records"][0]["attributes"] == {"type": "Contact"} and sent["records"][0]["AccountId"] == acme
    records, _ = await drain(sf, "contact", None)
    assert [(r.id, r.gid, r.fields, r.error) for r in records] == [(made.target_id, "g-kim", full, None)]
    assert "FROM Contact" in soql_of(sf_state)[-1]
    [update] = await sf.write("contact", [op("g-kim", {"title": "Group CFO"}, target_id=made.target_id)])
    row = sf_state.get("Contact", made.target_id)
    assert update.ok and row is not None and (row["Title"], row["Email"], row["AccountId"]) == (
        "Group CFO", "kim@acme.example", acme)  # sparse: only the title was written


async def test_contact_errors_are_per_record(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    live, gone = seed_accounts(sf_state, 2, random.Random(2))
    sf_state.user_delete("Account", gone)
    results = await sf.write("contact", [
        op("g-1", {"account": live, "last_name": "Ok"}),
        op("g-2", {"account": live, "first_name": "No Last"}),
        op("g-3", {"account": gone, "last_name": "Orphan"}),
        op("g-4", {"account": "001000000000000AAA", "last_name": "Nowhere"}),
        op("g-5", {"account": "not-an-id", "last_name": "Garbled"}),
    ])
    assert [r.ok for r in results] == [True, False, False, False, False]
    assert all(isinstance(r.error, Permanent) for r in results[1:])
    assert [r.error.code for r in results[1:] if r.error] == [
        "REQUIRED_FIELD_MISSING", "INVALID_CROSS_REFERENCE_KEY", "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID"]
    assert results[1].error is not None and "LastName" in results[1].error.message
    assert "Accord_Id__c=g-3" in str(results[2].error) and "AccountId" in str(results[2].error)
    assert [r["Accord_Id__c"] for r in sf_state.records("Contact")] == ["g-1"]
    assert sf_state.requests.count("composite") == 1  # one collection upsert for the whole batch


async def test_contacts_incremental_and_cascade_delete(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    accounts = seed_accounts(sf_state, 6, random.Random(4))
    contacts = seed_contacts(sf_state, accounts, random.Random(4))
    first, cursor = await drain(sf, "contact", None)
    assert sorted(r.id for r in first) == sorted(contacts)
    assert all(r.fields.keys() == CONTACT_FIELDS and r.fields["account"] in accounts for r in first)
    sf_state.clock.advance(60)
    sf_state.user_update("Contact", contacts[1], {"Title": "Chief Data Officer"})
    changed, cursor = await drain(sf, "contact", cursor)
    assert [(r.id, r.fields["title"]) for r in changed] == [(contacts[1], "Chief Data Officer")]
    assert "WHERE SystemModstamp >= " in soql_of(sf_state)[-1]
    sf_state.clock.advance(60)
    owner = str(sf_state.get("Contact", contacts[0])["AccountId"])  # type: ignore[index]
    sf_state.user_delete("Account", owner)  # Salesforce deletes the account's contacts with it
    tombs, cursor = await drain(sf, "contact", cursor)
    expected = sorted(r.id for r in first if r.fields["account"] == owner)
    assert sorted(r.id for r in tombs) == expected and all(r.deleted and r.fields == {} for r in tombs)
    assert (await drain(sf, "contact", cursor))[0] == []


async def test_contact_find_created_and_delete(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    made = await sf.write("contact", [op("g-a", {"last_name": "Able"}), op("g-b", {"last_name": "Baker"})])
    found = await sf.find_created("contact", ["g-a", "g-b", "g-c"], 0)
    assert {gid: r.id for gid, r in found.items()} == {"g-a": made[0].target_id, "g-b": made[1].target_id}
    [deleted] = await sf.write("contact", [op("g-a", {}, target_id=made[0].target_id, kind="delete")])
    assert deleted.ok and [r["LastName"] for r in sf_state.records("Contact")] == ["Baker"]


# -- opportunities against the sandbox ------------------------------------------------------------------

async def test_opportunity_write_read_and_is_won_never_written(sf_state: SalesforceState, sf: SalesforceConnector,
                                                               sf_recorder: Recorder) -> None:
    [acme] = seed_accounts(sf_state, 1, random.Random(3))
    fields = {**OPP_CANONICAL, "account": acme, "stage": "Proposal/Price Quote", "is_won": True,
              "currency": "EUR", "amount": "98765.43"}
    [made] = await sf.write("opportunity", [op("g-opp", fields)])
    assert made.ok and made.target_id and made.target_id.startswith("006")
    assert "is_won" not in made.fields and made.fields == {k: v for k, v in fields.items() if k != "is_won"}
    [sent] = sent_bodies(sf_recorder)
    assert "IsWon" not in sent["records"][0] and sent["records"][0]["Amount"] == 98765.43
    row = sf_state.get("Opportunity", made.target_id)
    assert row is not None and (row["IsWon"], row["IsClosed"], row["Probability"]) == (False, False, 75.0)
    records, cursor = await drain(sf, "opportunity", None)
    assert [r.fields for r in records] == [{**fields, "is_won": False}]  # what Salesforce derived
    sf_state.clock.advance(30)
    sf_state.user_update("Opportunity", made.target_id, {"StageName": "Closed Won"})
    [won], cursor = await drain(sf, "opportunity", cursor)
    assert (won.fields["stage"], won.fields["is_won"]) == ("Closed Won", True) and won.version > records[0].version
    sf_state.set_stage("Signed - Delivery", closed=True, won=True, probability=100.0)  # an org that renamed stages
    sf_state.clock.advance(30)
    [renamed] = await sf.write("opportunity", [op("g-opp", {"stage": "Signed - Delivery"},
                                                  target_id=made.target_id)])
    assert renamed.ok and renamed.fields == {"stage": "Signed - Delivery"}
    [signed], _ = await drain(sf, "opportunity", cursor)
    assert (signed.fields["stage"], signed.fields["is_won"]) == ("Signed - Delivery", True)


async def test_opportunity_required_fields_and_picklists_per_record(sf_state: SalesforceState,
                                                                    sf: SalesforceConnector) -> None:
    [acme] = seed_accounts(sf_state, 1, random.Random(5))
    base = {"account": acme, "name": "Deal", "stage": "Prospecting", "close_date": "2026-06-30"}
    results = await sf.write("opportunity", [
        op("g-ok", base),
        op("g-noname", {k: v for k, v in base.items() if k != "name"}),
        op("g-nostage", {**base, "stage": None}),
        op("g-nodate", {k: v for k, v in base.items() if k != "close_date"}),
        op("g-line", {**base, "service_line": "Catering"}),
        op("g-stage", {**base, "stage": "Maybe Later"}),
        op("g-model", {**base, "billing_model": "capped_tm"}),
    ])
    assert [r.ok for r in results] == [True] + [False] * 6
    errors = [r.error for r in results[1:]]
    assert [e.code for e in errors if e] == ["REQUIRED_FIELD_MISSING"] * 3 + [
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"] * 2 + ["MAPPING_ERROR"]
    assert all(isinstance(e, Permanent) for e in errors)
    assert [str(e).split("(fields: ")[-1] for e in errors[:3]] == ["Name)", "StageName)", "CloseDate)"]
    assert "Catering" in str(errors[3]) and isinstance(errors[5], MappingError)
    assert [r["Accord_Id__c"] for r in sf_state.records("Opportunity")] == ["g-ok"]
    assert sf_state.requests.count("composite") == 1  # the unmappable op never left the connector


async def test_opportunities_incremental_fetch(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    accounts = seed_accounts(sf_state, 8, random.Random(6))
    opps = seed_opportunities(sf_state, accounts, random.Random(6))
    first, cursor = await drain(sf, "opportunity", None)
    assert sorted(r.id for r in first) == sorted(opps) and all(r.error is None for r in first)
    assert all(r.fields.keys() == OPPORTUNITY_FIELDS for r in first)
    assert all(r.fields["is_won"] == (r.fields["stage"] == "Closed Won") for r in first)
    assert "FROM Opportunity" in soql_of(sf_state)[-1] and "IsWon" in soql_of(sf_state)[-1]
    sf_state.clock.advance(60)
    target = next(r for r in first if r.fields["stage"] != "Closed Won")
    sf_state.user_update("Opportunity", target.id, {"StageName": "Closed Won", "Amount": 250000.5})
    changed, cursor = await drain(sf, "opportunity", cursor)
    assert [(r.id, r.fields["is_won"], r.fields["amount"]) for r in changed] == [(target.id, True, "250000.50")]
    sf_state.clock.advance(0.5)  # inside the overlap: the same change is not returned twice
    assert (await drain(sf, "opportunity", cursor))[0] == []


async def test_unmappable_opportunity_is_returned_with_error(sf_state: SalesforceState,
                                                             sf: SalesforceConnector) -> None:
    [acme] = seed_accounts(sf_state, 1, random.Random(8))
    sf_state.add_picklist_value("Opportunity", "Billing_Model__c", "Capped T&M")  # an admin adds a value
    odd = sf_state.user_create("Opportunity", {"AccountId": acme, "Name": "Odd", "StageName": "Prospecting",
                                            "CloseDate": "2026-07-01", "Billing_Model__c": "Capped T&M"})
    fine = sf_state.user_create("Opportunity", {"AccountId": acme, "Name": "Fine", "StageName": "Prospecting",
                                             "CloseDate": "2026-07-01", "Billing_Model__c": "Retainer"})
    records, _ = await drain(sf, "opportunity", None)
    by_id = {r.id: r for r in records}
    assert by_id.keys() == {odd, fine} and by_id[fine].error is None
    bad = by_id[odd]
    assert bad.error is not None and "billing_model" in bad.error and "'Capped T&M'" in bad.error
    assert "Billing_Model__c label must be one of" in bad.error and odd in bad.error
    assert "billing_model" not in bad.fields and bad.fields["name"] == "Odd" and sf.stats.errors == 1


async def test_opportunity_find_created_and_single_currency(sf_state: SalesforceState, sf_recorder: Recorder) -> None:
    sf_state.multi_currency = False
    conn = SalesforceConnector(settings(multi_currency=False), transport=sf_recorder)
    [made] = await conn.write("opportunity", [op("g-1", {"name": "Mono", "stage": "Qualification",
                                                         "close_date": "2026-05-01", "currency": "EUR",
                                                         "amount": 1000})])
    assert made.ok and made.fields == {"name": "Mono", "stage": "Qualification", "close_date": "2026-05-01",
                                       "amount": "1000.00"}
    found = await conn.find_created("opportunity", ["g-1"], 0)
    assert found["g-1"].id == made.target_id
    assert found["g-1"].fields.keys() == OPPORTUNITY_FIELDS - {"currency"}
    assert found["g-1"].fields["is_won"] is False
    await conn.aclose()


async def test_account_legal_entity_and_parent(sf_state: SalesforceState, sf: SalesforceConnector) -> None:
    [group] = seed_accounts(sf_state, 1, random.Random(9))
    results = await sf.write("account", [
        op("g-sub", {"name": "Acme Sub Ltd", "parent": group, "legal_entity": "Accord Consulting UK Ltd"}),
        op("g-bad", {"name": "Bad Parent Ltd", "parent": "0035g0000000001AAA"}),
    ])
    assert results[0].ok and results[0].fields["parent"] == group
    assert results[1].error is not None and results[1].error.code == "FIELD_INTEGRITY_EXCEPTION"
    records, _ = await drain(sf, "account", None)
    sub = next(r for r in records if r.gid == "g-sub")
    assert (sub.fields["parent"], sub.fields["legal_entity"]) == (group, "Accord Consulting UK Ltd")
