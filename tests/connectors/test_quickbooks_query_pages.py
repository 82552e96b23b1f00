"""The QuickBooks sandbox keeps a query's Id-ordered result between pages (``sandboxes/quickbooks/pages.py``):
paging N rows costs each page what it returns (regression: every page filtered and sorted every row
changed since the floor, so the ERP poller's reads grew with the square of its lag), and a page read
after writes is exactly what a fresh scan of the tables answers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from accord.connectors.quickbooks.faults import qbo_time
from accord.sandboxes.quickbooks import qql
from accord.sandboxes.quickbooks.sandbox import QuickBooksState
from accord.sandboxes.quickbooks.seed import seed_customers
from accord.sandboxes.quickbooks.store import Realm


def _fresh_answer(realm: Realm, text: str) -> dict[str, Any]:
    """What the query answers when evaluated from scratch over every row (the reference)."""
    parsed = qql.parse(text)
    etype = qql_entity(realm, parsed.entity)
    rows = sorted((r for r in realm.tables[etype].values() if not r.deleted), key=lambda r: int(r.wire["Id"]))
    page, total = qql.run(parsed, rows, realm.resolve, active_only=etype in ("Customer", "Item", "Employee"))
    if parsed.count:
        return {"totalCount": total}
    return {etype: [realm.render(None, r) for r in page], "startPosition": parsed.start,
            "maxResults": len(page)} if page else {}


def qql_entity(realm: Realm, name: str) -> str:
    return next(table for table in realm.tables if table.lower() == name.lower())


def _stamp(state: QuickBooksState, seconds: float) -> str:
    return qbo_time(state.clock.now() - seconds, millis=True)


def _write_something(state: QuickBooksState, rnd: random.Random, customers: list[str], invoices: list[str]) -> None:
    state.clock.advance(rnd.choice((0.0, 0.4, 1.0)))
    choice = rnd.randrange(6)
    if choice == 0:
        customers.append(state.user_create("Customer", {"DisplayName": f"New {len(customers)} {rnd.random()}"}))
    elif choice == 1:
        state.user_update("Customer", rnd.choice(customers), {"CompanyName": f"Co {rnd.randrange(5)}"})
    elif choice == 2:
        state.user_update("Customer", rnd.choice(customers), {"Active": rnd.random() < 0.5})
    elif choice == 3:
        invoices.append(state.user_create_invoice(rnd.choice(customers), [("Work", 1, rnd.randrange(1, 9) * 100)]))
    elif choice == 4 and invoices:
        state.user_delete("Invoice", invoices.pop(rnd.randrange(len(invoices))))
    elif invoices:
        state.user_update("Invoice", rnd.choice(invoices), {"PrivateNote": f"note {rnd.random()}"})


def test_pages_read_between_writes_answer_what_a_fresh_scan_answers(qbo_state: QuickBooksState) -> None:
    rnd = random.Random(11)
    seed_customers(qbo_state, 300, rnd)
    realm = qbo_state.realm()
    customers = [r["Id"] for r in qbo_state.records("Customer")]
    invoices: list[str] = []
    for _ in range(60):
        _write_something(qbo_state, rnd, customers, invoices)
    floors = [_stamp(qbo_state, s) for s in (0.5, 5.0, 30.0, 10_000.0)]
    statements = [
        "SELECT * FROM Customer WHERE Active IN (true, false) AND Metadata.LastUpdatedTime >= '{floor}' ORDERBY Id",
        "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime >= '{floor}'",
        "SELECT * FROM Customer WHERE CompanyName = 'Co 2' ORDER BY Id ASC",
        "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime > '{floor}' ORDERBY Id",
        "SELECT COUNT(*) FROM Invoice WHERE Metadata.LastUpdatedTime >= '{floor}'",
        "SELECT * FROM Customer ORDERBY Id",
        "SELECT * FROM Customer ORDERBY DisplayName DESC",  # not Id order: evaluated afresh
    ]
    for step in range(400):
        text = rnd.choice(statements).format(floor=rnd.choice(floors))
        text += f" STARTPOSITION {rnd.randrange(1, 120, 7)} MAXRESULTS {rnd.choice((5, 25, 100))}"
        assert realm.query(text) == _fresh_answer(realm, text), (step, text)
        for _ in range(rnd.randrange(3)):
            _write_something(qbo_state, rnd, customers, invoices)


def test_paging_a_large_change_set_costs_each_page_what_it_returns(
        qbo_state: QuickBooksState, monkeypatch: pytest.MonkeyPatch) -> None:
    realm = qbo_state.realm()
    seed_customers(qbo_state, 3000, random.Random(5))
    calls = [0]
    resolve = realm.resolve

    def counting(row: Any, path: str) -> Any:
        calls[0] += 1
        return resolve(row, path)

    monkeypatch.setattr(realm, "resolve", counting)
    floor = _stamp(qbo_state, 10_000)
    statement = ("SELECT * FROM Customer WHERE Active IN (true, false) AND Metadata.LastUpdatedTime >= "
                 f"'{floor}' ORDERBY Id STARTPOSITION {{start}} MAXRESULTS 100")
    seen: list[str] = []
    start = 1
    while True:
        rows = realm.query(statement.format(start=start)).get("Customer", [])
        seen += [r["Id"] for r in rows]
        if start == 1001:  # a writer changes rows between two pages
            qbo_state.clock.advance(1)
            qbo_state.user_update("Customer", seen[0], {"CompanyName": "Moved Ltd"})
            new = qbo_state.user_create("Customer", {"DisplayName": "Arrived between pages"})
        if len(rows) < 100:
            break
        start += len(rows)
    # each row was tested once when the result was made, and the two written rows once more: two conditions each
    assert calls[0] <= 2 * (3000 + 2) + 2 * 2 * 100, calls[0]  # without: 30 pages x 3,000 rows x 2
    assert len(seen) == 3001 and seen[-1] == new and len(set(seen)) == 3001
