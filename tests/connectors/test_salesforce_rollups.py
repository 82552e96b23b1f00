"""The sandbox's billing custom objects over HTTP: Invoice__c and Payment__c as master-detail children,
the roll-up summary fields Salesforce keeps on their masters, cascade deletes, and describe."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from accord.connectors.salesforce.fieldmap import parse_datetime_ms, soql_datetime
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.salesforce.store import id18

V = "/services/data/v66.0"
ROLLUPS = ("Invoiced_Total__c", "Open_Balance__c", "Last_Payment_Date__c")
READ_ONLY = ("Unable to create/update fields: {}. Please check the security settings of this field and verify "
             "that it is read/write for your profile or permission set.")


def invoice(account: str, number: str, total: float, balance: float, status: str = "Open",
            **extra: Any) -> dict[str, Any]:
    return {"Name": number, "Account__c": account, "Issue_Date__c": "2026-03-01", "Due_Date__c": "2026-03-31",
            "Total__c": total, "Balance__c": balance, "Tax__c": 0.0, "Status__c": status, **extra}


def payment(invoice_id: str, amount: float, paid: str, **extra: Any) -> dict[str, Any]:
    return {"Invoice__c": invoice_id, "Amount__c": amount, "Paid_Date__c": paid, **extra}


async def create(api: httpx.AsyncClient, kind: str, *items: dict[str, Any]) -> list[str]:
    """Create ``items`` in one sObject Collections call (one transaction); their ids."""
    body = {"allOrNone": True, "records": [{"attributes": {"type": kind}, **item} for item in items]}
    results = (await api.post(f"{V}/composite/sobjects", json=body)).json()
    assert all(r["success"] for r in results), results
    return [r["id"] for r in results]


async def get(api: httpx.AsyncClient, kind: str, rid: str) -> dict[str, Any]:
    response = await api.get(f"{V}/sobjects/{kind}/{rid}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def patch(api: httpx.AsyncClient, kind: str, rid: str, fields: dict[str, Any]) -> None:
    response = await api.patch(f"{V}/sobjects/{kind}/{rid}", json=fields)
    assert response.status_code == 204, response.text


async def summary(api: httpx.AsyncClient, account: str) -> tuple[Any, ...]:
    row = await get(api, "Account", account)
    return tuple(row[name] for name in ROLLUPS)


async def test_invoice_rollups_follow_insert_update_delete(sf_state: SalesforceState,
                                                           sf_api: httpx.AsyncClient) -> None:
    acme = sf_state.user_create("Account", {"Name": "Acme"})
    other = sf_state.user_create("Account", {"Name": "Other"})
    assert await summary(sf_api, acme) == (0.0, 0.0, None)  # SUM over nothing is 0, MAX is null
    one, two, void = await create(sf_api, "Invoice__c", invoice(acme, "INV-1", 1000, 400),
                                  invoice(acme, "INV-2", 250.5, 0, "Paid"), invoice(acme, "INV-3", 700, 0, "Void"))
    assert await summary(sf_api, acme) == (1250.5, 400.0, None)  # the void invoice is not invoiced
    await patch(sf_api, "Invoice__c", one, {"Total__c": 1200.25, "Balance__c": 600})
    assert await summary(sf_api, acme) == (1450.75, 600.0, None)
    await patch(sf_api, "Invoice__c", void, {"Status__c": "Open", "Balance__c": 700})  # un-voided
    assert await summary(sf_api, acme) == (2150.75, 1300.0, None)
    await patch(sf_api, "Invoice__c", one, {"Status__c": "Void"})
    assert await summary(sf_api, acme) == (950.5, 1300.0, None)  # Open_Balance has no filter
    await patch(sf_api, "Invoice__c", two, {"Account__c": other})  # reparented: both masters recompute
    assert (await summary(sf_api, acme), await summary(sf_api, other)) == ((700.0, 1300.0, None),
                                                                          (250.5, 0.0, None))
    assert (await sf_api.delete(f"{V}/sobjects/Invoice__c/{void}")).status_code == 204
    assert await summary(sf_api, acme) == (0.0, 600.0, None)


async def test_payment_rollups_and_last_payment_date(sf_state: SalesforceState, sf_api: httpx.AsyncClient) -> None:
    acme = sf_state.user_create("Account", {"Name": "Acme"})
    march, april = await create(sf_api, "Invoice__c", invoice(acme, "INV-1", 1000, 1000),
                                invoice(acme, "INV-2", 500, 500))
    first, second = await create(sf_api, "Payment__c", payment(march, 100, "2026-03-05"),
                                 payment(march, 50.25, "2026-03-20", Reference__c="WIRE-77"))
    paid = await get(sf_api, "Invoice__c", march)
    assert (paid["Amount_Paid__c"], paid["Last_Payment_Date__c"]) == (150.25, "2026-03-20")
    assert await summary(sf_api, acme) == (1500.0, 1500.0, "2026-03-20")  # roll-up of a roll-up
    [late] = await create(sf_api, "Payment__c", payment(april, 500, "2026-04-01"))
    assert (await summary(sf_api, acme))[2] == "2026-04-01"
    assert (await get(sf_api, "Invoice__c", march))["Last_Payment_Date__c"] == "2026-03-20"
    await patch(sf_api, "Payment__c", first, {"Amount__c": 200, "Paid_Date__c": "2026-03-25"})
    paid = await get(sf_api, "Invoice__c", march)
    assert (paid["Amount_Paid__c"], paid["Last_Payment_Date__c"]) == (250.25, "2026-03-25")
    assert (await sf_api.delete(f"{V}/sobjects/Payment__c/{late}")).status_code == 204
    assert (await summary(sf_api, acme))[2] == "2026-03-25"
    assert ((await get(sf_api, "Invoice__c", april))["Amount_Paid__c"],
            (await get(sf_api, "Invoice__c", april))["Last_Payment_Date__c"]) == (0.0, None)
    names = [(await get(sf_api, "Payment__c", rid))["Name"] for rid in (first, second)]
    assert names == ["PMT-000001", "PMT-000002"]  # an auto-number Name


@pytest.mark.parametrize(("kind", "field", "value"), [
    ("Account", "Invoiced_Total__c", 5.0), ("Account", "Open_Balance__c", 0.0),
    ("Account", "Last_Payment_Date__c", "2026-01-01"), ("Invoice__c", "Amount_Paid__c", 1.0),
    ("Invoice__c", "Last_Payment_Date__c", "2026-01-01"), ("Payment__c", "Name", "PMT-9"),
])
async def test_rollup_fields_refuse_writes(sf_state: SalesforceState, sf_api: httpx.AsyncClient, kind: str,
                                           field: str, value: Any) -> None:
    acme = sf_state.user_create("Account", {"Name": "Acme"})
    bill = sf_state.user_create("Invoice__c", invoice(acme, "INV-1", 10, 10))
    rid = {"Account": acme, "Invoice__c": bill,
           "Payment__c": sf_state.user_create("Payment__c", payment(bill, 1, "2026-03-01"))}[kind]
    before = await get(sf_api, kind, rid)
    refused = await sf_api.patch(f"{V}/sobjects/{kind}/{rid}", json={field: value})
    assert refused.status_code == 400
    assert refused.json() == [{"message": READ_ONLY.format(field), "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                               "fields": [field]}]
    upsert = {"records": [{"attributes": {"type": kind}, "Accord_Id__c": "g-new", field: value}]}
    [result] = (await sf_api.patch(f"{V}/composite/sobjects/{kind}/Accord_Id__c", json=upsert)).json()
    assert result["errors"] == [{"statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE", "message": READ_ONLY.format(field),
                                 "fields": [field]}]
    assert await get(sf_api, kind, rid) == before and len(sf_state.records(kind)) == 1


async def test_rollup_change_bumps_the_master_modstamp(sf_state: SalesforceState, sf_api: httpx.AsyncClient) -> None:
    acme = sf_state.user_create("Account", {"Name": "Acme"})
    created = await get(sf_api, "Account", acme)
    sf_state.clock.advance(60)
    [bill] = await create(sf_api, "Invoice__c", invoice(acme, "INV-1", 100, 100))
    row, master = await get(sf_api, "Invoice__c", bill), await get(sf_api, "Account", acme)
    assert master["SystemModstamp"] == master["LastModifiedDate"] == row["CreatedDate"] > created["SystemModstamp"]
    since = soql_datetime(parse_datetime_ms(created["SystemModstamp"]) + 30_000)  # between the two changes
    polled = (await sf_api.get(f"{V}/query", params={"q": f"SELECT Id FROM Account WHERE SystemModstamp > {since}"}))
    assert [r["Id"] for r in polled.json()["records"]] == [acme]  # visible to an incremental poll
    sf_state.clock.advance(60)
    await patch(sf_api, "Invoice__c", bill, {"Due_Date__c": "2026-05-01", "Project_Ref__c": "prj-1"})
    assert (await get(sf_api, "Account", acme))["SystemModstamp"] == master["SystemModstamp"]  # no roll-up moved
    sf_state.clock.advance(60)
    [paid] = await create(sf_api, "Payment__c", payment(bill, 40, "2026-03-09"))
    stamps = {(await get(sf_api, kind, rid))["SystemModstamp"] for kind, rid in (
        ("Payment__c", paid), ("Invoice__c", bill), ("Account", acme))}
    assert len(stamps) == 1 and parse_datetime_ms(stamps.pop()) > parse_datetime_ms(master["SystemModstamp"])


async def test_deleting_a_master_deletes_its_details(sf_state: SalesforceState, sf_api: httpx.AsyncClient) -> None:
    acme = sf_state.user_create("Account", {"Name": "Acme"})
    keep = sf_state.user_create("Account", {"Name": "Keep"})
    bills = await create(sf_api, "Invoice__c", invoice(acme, "INV-1", 100, 60), invoice(acme, "INV-2", 50, 50),
                         invoice(keep, "INV-3", 70, 0))
    paid = await create(sf_api, "Payment__c", payment(bills[0], 40, "2026-03-02"),
                        payment(bills[2], 70, "2026-03-03"))
    sf_state.clock.advance(30)
    assert (await sf_api.delete(f"{V}/sobjects/Invoice__c/{bills[1]}")).status_code == 204
    assert await summary(sf_api, acme) == (100.0, 60.0, "2026-03-02")
    sf_state.lock_record(paid[0])  # a locked grandchild fails the whole delete before anything changes
    locked = await sf_api.delete(f"{V}/sobjects/Account/{acme}")
    assert locked.status_code == 400 and locked.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert sf_state.get("Invoice__c", bills[0])["IsDeleted"] is False  # type: ignore[index]
    sf_state.lock_record(paid[0], False)
    sf_state.clock.advance(30)
    assert (await sf_api.delete(f"{V}/sobjects/Account/{acme}")).status_code == 204
    q = "SELECT Id, IsDeleted, SystemModstamp FROM {} WHERE IsDeleted = true"
    gone = {kind: (await sf_api.get(f"{V}/queryAll", params={"q": q.format(kind)})).json()["records"]
            for kind in ("Account", "Invoice__c", "Payment__c")}
    assert {kind: sorted(r["Id"] for r in rows) for kind, rows in gone.items()} == {
        "Account": [acme], "Invoice__c": sorted(bills[:2]), "Payment__c": [paid[0]]}
    assert len({r["SystemModstamp"] for r in gone["Account"] + gone["Payment__c"]}) == 1  # one transaction
    assert (await sf_api.get(f"{V}/sobjects/Payment__c/{paid[0]}")).json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert await summary(sf_api, keep) == (70.0, 0.0, "2026-03-03")


async def test_details_need_a_live_master(sf_state: SalesforceState, sf_api: httpx.AsyncClient) -> None:
    acme = sf_state.user_create("Account", {"Name": "Acme"})
    bill = sf_state.user_create("Invoice__c", invoice(acme, "INV-1", 10, 10))
    body = {"allOrNone": False, "records": [{"attributes": {"type": kind}, **item} for kind, item in (
        ("Invoice__c", {"Name": "INV-2", "Total__c": 5.0}),
        ("Invoice__c", invoice(acme, "INV-3", 5, 5, "Overdue")),
        ("Payment__c", {"Amount__c": 5.0}),
        ("Payment__c", payment(acme, 5, "2026-03-01")),
        ("Payment__c", payment(id18("a0B5g0000000zzz"), 5, "2026-03-01")),
        ("Payment__c", payment(bill, 5, "2026-03-01")))]}
    results = (await sf_api.post(f"{V}/composite/sobjects", json=body)).json()
    assert [(r["errors"][0]["statusCode"], r["errors"][0]["fields"]) for r in results[:5]] == [
        ("REQUIRED_FIELD_MISSING", ["Account__c"]), ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Status__c"]),
        ("REQUIRED_FIELD_MISSING", ["Invoice__c"]), ("FIELD_INTEGRITY_EXCEPTION", ["Invoice__c"]),
        ("INVALID_CROSS_REFERENCE_KEY", ["Invoice__c"])]
    assert results[5]["success"] and results[5]["id"].startswith("a0C")
    assert (await get(sf_api, "Invoice__c", bill))["Amount_Paid__c"] == 5.0  # only the good one counted


async def test_locked_master_fails_its_detail_and_leaves_no_trace(sf_state: SalesforceState,
                                                                  sf_api: httpx.AsyncClient) -> None:
    busy = sf_state.user_create("Account", {"Name": "Busy"})
    free = sf_state.user_create("Account", {"Name": "Free"})
    sf_state.lock_record(busy)
    body = {"allOrNone": False, "records": [{"attributes": {"type": "Invoice__c"}, **item} for item in (
        invoice(busy, "INV-1", 10, 10), invoice(free, "INV-2", 20, 20))]}
    results = (await sf_api.post(f"{V}/composite/sobjects", json=body)).json()
    assert [r["success"] for r in results] == [False, True]
    assert results[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert [r["Name"] for r in sf_state.records("Invoice__c", include_deleted=True)] == ["INV-2"]


async def test_rollups_convert_into_the_master_currency(sf_state: SalesforceState, sf_api: httpx.AsyncClient) -> None:
    london = sf_state.user_create("Account", {"Name": "London Ltd", "CurrencyIsoCode": "GBP"})
    euro, inherited = await create(sf_api, "Invoice__c", invoice(london, "INV-1", 920, 0, CurrencyIsoCode="EUR"),
                                   invoice(london, "INV-2", 100, 100))
    assert (await get(sf_api, "Invoice__c", inherited))["CurrencyIsoCode"] == "GBP"  # the master's currency
    [paid] = await create(sf_api, "Payment__c", payment(euro, 460, "2026-03-01"))
    assert (await get(sf_api, "Payment__c", paid))["CurrencyIsoCode"] == "EUR"
    assert (await get(sf_api, "Invoice__c", euro))["Amount_Paid__c"] == 460.0
    assert await summary(sf_api, london) == (890.0, 100.0, "2026-03-01")  # 920 EUR = 790 GBP at 0.92 / 0.79
    await patch(sf_api, "Account", london, {"CurrencyIsoCode": "USD"})
    assert (await summary(sf_api, london))[:2] == (1126.58, 126.58)  # 1000 USD + 100 GBP / 0.79
    sf_state.set_conversion_rate("GBP", 0.8)
    await patch(sf_api, "Invoice__c", inherited, {"Tax__c": 0})  # the next recalculation uses the new rate
    assert (await summary(sf_api, london))[:2] == (1125.0, 125.0)
    sf_state.multi_currency = False
    await patch(sf_api, "Invoice__c", inherited, {"Balance__c": 50})  # a single-currency org converts nothing
    assert (await summary(sf_api, london))[:2] == (1020.0, 50.0)


async def test_describe_lists_the_custom_objects(sf_api: httpx.AsyncClient) -> None:
    listed = {o["name"]: o for o in (await sf_api.get(f"{V}/sobjects")).json()["sobjects"]}
    assert (listed["Invoice__c"]["keyPrefix"], listed["Payment__c"]["keyPrefix"]) == ("a0B", "a0C")
    assert listed["Invoice__c"]["custom"] is True and listed["Account"]["custom"] is False
    invoice_d = (await sf_api.get(f"{V}/sobjects/Invoice__c/describe")).json()
    fields = {f["name"]: f for f in invoice_d["fields"]}
    assert (invoice_d["label"], fields["Account__c"]["referenceTo"], fields["Account__c"]["nillable"],
            fields["Account__c"]["cascadeDelete"]) == ("Invoice", ["Account"], False, True)
    assert (fields["Amount_Paid__c"]["calculated"], fields["Amount_Paid__c"]["updateable"],
            fields["Amount_Paid__c"]["type"]) == (True, False, "currency")
    assert [v["value"] for v in fields["Status__c"]["picklistValues"]] == ["Draft", "Open", "Paid", "Void"]
    assert fields["Accord_Id__c"]["externalId"] and fields["Accord_Id__c"]["unique"] and "OwnerId" not in fields
    account = (await sf_api.get(f"{V}/sobjects/Account/describe")).json()
    rollups = {f["name"]: (f["calculated"], f["createable"], f["type"]) for f in account["fields"] if f["calculated"]}
    assert rollups == {"Invoiced_Total__c": (True, False, "currency"), "Open_Balance__c": (True, False, "currency"),
                       "Last_Payment_Date__c": (True, False, "date")}
    assert {"childSObject": "Invoice__c", "field": "Account__c", "cascadeDelete": True} in account["childRelationships"]
    payment_d = {f["name"]: f for f in (await sf_api.get(f"{V}/sobjects/Payment__c/describe")).json()["fields"]}
    assert payment_d["Name"]["autoNumber"] and not payment_d["Name"]["createable"]
