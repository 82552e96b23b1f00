"""The Tryton connector against a real trytond server: a listing of accounts holds the customers' parties,
not the company's own party nor its employees' (found by `accord demo --profile tryton`: its final
reconciliation counted the firm and its consultants as accounts Tryton had and the CRM had not)."""

from __future__ import annotations

import pytest

from accord.connectors.base import SourceRecord
from accord.connectors.tryton.client import TrytonConnector
from accord.sandboxes.tryton.bootstrap import Rpc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # the first test may build the template


async def drain(connector: TrytonConnector, cursor: str | None) -> tuple[list[SourceRecord], str]:
    records: list[SourceRecord] = []
    while True:
        page = await connector.fetch("account", cursor)
        records += page.records
        cursor = page.cursor
        if not page.more:
            return records, cursor


async def test_the_company_and_employee_parties_are_not_accounts(connector: TrytonConnector, rpc: Rpc) -> None:
    company_party = rpc.call("model.company.company.read", [rpc.context["company"]], ["party"])[0]["party"]
    customer, staff = rpc.call("model.party.party.create", [{"name": "Globex"}, {"name": "Jane Consultant"}])
    rpc.call("model.company.employee.create", [{"party": staff, "company": rpc.context["company"]}])

    records, cursor = await drain(connector, None)  # pages of 3: the filter runs on every page
    ids = {r.id for r in records}
    assert str(customer) in ids
    assert str(staff) not in ids and str(company_party) not in ids

    rpc.call("model.party.party.write", [staff, customer], {"name": "renamed"})  # both change
    changed, _ = await drain(connector, cursor)
    assert [r.id for r in changed] == [str(customer)]


async def test_a_re_read_inside_the_overlap_costs_the_listings_only(connector: TrytonConnector, rpc: Rpc) -> None:
    """Found by the demo's API use (10 Tryton calls per synced change): every poll within `overlap` of a
    change filtered and expanded again the records it had returned already (up to five more calls a page)."""
    rpc.call("model.party.party.create", [{"name": "Initech"}])
    _, cursor = await drain(connector, None)
    before, fetches = connector.stats.calls, 0
    while True:  # the same parties again, inside the 5 s overlap
        page = await connector.fetch("account", cursor)
        cursor, fetches = page.cursor, fetches + 1
        assert page.records == []
        if not page.more:
            break
    assert connector.stats.calls - before == 2 * fetches  # the written and never-written listings, nothing else

    party, = rpc.call("model.party.party.search", [["name", "=", "Initech"]], 0, 1, None)
    rpc.call("model.party.party.write", [party], {"name": "Initech Ltd"})
    changed, _ = await drain(connector, cursor)
    assert [(r.id, r.fields["name"]) for r in changed] == [(str(party), "Initech Ltd")]
