"""Reads between settling reads continue a busy second by keyset (``SystemModstamp``, ``Id``) instead of
transferring the whole second again; a row of that second that commits late below the key still arrives,
with the next settling read, and a quiet second is read whole again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from accord.connectors.errors import Retryable
from accord.connectors.salesforce.client import SalesforceConnector
from accord.connectors.salesforce.dedup import CURSOR_PAIRS
from accord.connectors.salesforce.incremental import KEYSET_MIN
from accord.sandboxes.salesforce.sandbox import SalesforceState
from tests.connectors.sf_rig import drain as drain_entity


async def drain(sf: SalesforceConnector, cursor: str | None) -> tuple[list[Any], str]:
    return await drain_entity(sf, "account", cursor)


def _restamp(state: SalesforceState, rid: str, stamp_ms: int) -> None:
    """``rid`` edited by a transaction that took its stamp at ``stamp_ms`` and commits now."""
    with state.lock:
        row = {**state.store.rows["Account"][rid], "Name": "Edited late", "SystemModstamp": stamp_ms,
               "LastModifiedDate": stamp_ms}
        state.store._put("Account", rid, row)


async def test_a_busy_second_is_continued_by_keyset_and_a_late_commit_below_the_key_arrives_when_settling(
        sf_state: SalesforceState, sf: SalesforceConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    sf._clock = lambda: now[0]
    sent: list[tuple[str | None, int]] = []
    query = SalesforceConnector._query

    async def recording(self: SalesforceConnector, path: str, soql: str | None = None) -> dict[str, Any]:
        body = await query(self, path, soql)
        sent.append((soql, len(body.get("records", []))))
        return body

    monkeypatch.setattr(SalesforceConnector, "_query", recording)
    with sf_state.transaction():
        burst = [sf_state.user_create("Account", {"Name": f"Burst {i}"}) for i in range(KEYSET_MIN + 50)]
    records, cursor = await drain(sf, None)
    assert [r.id for r in records] == burst  # in (second, Id) order: Ids are base 62, case is a digit
    assert json.loads(cursor)["key"] == burst[-1]  # a busy second: the next read continues after its last Id
    wm = json.loads(cursor)["wm"]

    fresh = []
    for i in range(3):  # three polls inside the same second, one new account each
        sf_state.clock.advance(0.1)
        now[0] += 0.2
        fresh.append(sf_state.user_create("Account", {"Name": f"Fresh {i}"}))
        records, cursor = await drain(sf, cursor)
        assert [r.id for r in records] == [fresh[-1]]
        assert sent[-1][1] == 1  # only the new row was transferred (the whole second would be 251, 252, 253)
        assert f"OR Id > '{burst[-1] if i == 0 else fresh[i - 1]}'" in str(sent[-1][0])

    _restamp(sf_state, burst[0], wm + 1)  # the lowest Id, stamped inside the second already read
    records, cursor = await drain(sf, cursor)
    assert records == []  # below the key: a fast read cannot see it
    now[0] += 2.0
    records, cursor = await drain(sf, cursor)
    assert [(r.id, r.fields["name"]) for r in records] == [(burst[0], "Edited late")]  # the settling read finds it
    assert "OR Id" not in str(sent[-1][0])

    sf_state.clock.advance(1.5)  # a quiet second: read whole again (nothing of it waits for a settling read)
    quiet = sf_state.user_create("Account", {"Name": "Quiet"})
    records, cursor = await drain(sf, cursor)
    assert [r.id for r in records] == [quiet]
    assert json.loads(cursor).get("key") is None


async def test_a_settling_read_is_thin_and_reads_whole_only_what_it_had_not_seen(
        sf_state: SalesforceState, sf: SalesforceConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    sf._clock = lambda: now[0]
    sent: list[tuple[str | None, int]] = []
    query = SalesforceConnector._query

    async def recording(self: SalesforceConnector, path: str, soql: str | None = None) -> dict[str, Any]:
        body = await query(self, path, soql)
        sent.append((soql, len(body.get("records", []))))
        return body

    monkeypatch.setattr(SalesforceConnector, "_query", recording)
    first = [sf_state.user_create("Account", {"Name": f"First {i}"}) for i in range(20)]
    records, cursor = await drain(sf, None)
    assert len(records) == 20 and "Name" in str(sent[-1][0])  # the first read is whole
    wm = json.loads(cursor)["wm"]
    sf_state.clock.advance(3.0)
    now[0] += 2.0
    _restamp(sf_state, first[3], wm - 100)  # committed late, stamped among rows already read
    records, cursor = await drain(sf, cursor)
    thin, whole = sent[-2], sent[-1]
    assert str(thin[0]).startswith("SELECT Id, SystemModstamp FROM Account") and thin[1] == 20
    assert f"WHERE Id IN ('{first[3]}')" in str(whole[0]) and whole[1] == 1  # only the row not seen yet
    assert [(r.id, r.fields["name"]) for r in records] == [(first[3], "Edited late")]
    assert json.loads(cursor)["settled"] <= wm - 2000  # settled from the bound the thin read stopped at


async def test_once_the_watermark_is_final_an_idle_org_costs_one_small_read_a_poll(
        sf_state: SalesforceState, sf: SalesforceConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    """A settling read that starts ``overlap`` + 1 s after the watermark was first seen sees every row that
    will ever be stamped up to its second: the settled floor moves past it and no settling read is due until
    the watermark moves (regression: an idle org's last ``overlap`` seconds were read again, thin or whole,
    every ``overlap``, forever)."""
    now, wall = [0.0], [1_000_000.0]
    sf._clock, sf._wall = (lambda: now[0]), (lambda: wall[0])
    sent: list[tuple[str | None, int]] = []
    query = SalesforceConnector._query

    async def recording(self: SalesforceConnector, path: str, soql: str | None = None) -> dict[str, Any]:
        body = await query(self, path, soql)
        sent.append((soql, len(body.get("records", []))))
        return body

    monkeypatch.setattr(SalesforceConnector, "_query", recording)
    with sf_state.transaction():
        burst = [sf_state.user_create("Account", {"Name": f"Burst {i}"}) for i in range(KEYSET_MIN + 10)]
    records, cursor = await drain(sf, None)
    assert len(records) == len(burst)
    now[0] += 2.0
    wall[0] += 1.0  # too early to be final: the floor stays overlap behind the watermark
    assert (await drain(sf, cursor))[0] == []
    assert "SELECT Id, SystemModstamp" in str(sent[-1][0])
    assert json.loads(cursor)["settled"] < json.loads(cursor)["wm"]
    now[0] += 2.0
    wall[0] += 3.0  # overlap + 1 s after the watermark was first seen: this settling read is final
    records, cursor = await drain(sf, cursor)
    assert records == [] and "SELECT Id, SystemModstamp" in str(sent[-1][0])
    state = json.loads(cursor)
    assert state["settled"] > state["wm"]
    before = len(sent)
    for _ in range(5):  # idle: fast reads after the key only, each returning nothing
        now[0] += 2.0
        wall[0] += 2.0
        records, cursor = await drain(sf, cursor)
        assert records == []
    assert [n for _, n in sent[before:]] == [0] * 5
    assert all("OR Id >" in str(q) for q, _ in sent[before:])
    sf_state.clock.advance(5.0)
    fresh = sf_state.user_create("Account", {"Name": "Fresh"})  # the watermark moves: settling reads resume
    records, cursor = await drain(sf, cursor)
    assert [r.id for r in records] == [fresh]
    now[0] += 2.0
    records, cursor = await drain(sf, cursor)
    assert records == [] and "SELECT Id, SystemModstamp" in str(sent[-1][0])


async def test_a_settling_read_that_fails_while_reading_rows_whole_keeps_its_window(
        sf_state: SalesforceState, sf: SalesforceConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large window's pairs live only in memory; a settling read that failed half-way used to drop them, so
    its retry re-read every row of the window by Id (a 20,000-row window: ~100 queries of the API quota)."""
    now = [0.0]
    sf._clock = lambda: now[0]
    sent: list[str] = []
    failing = [True]
    query = SalesforceConnector._query

    async def flaky(self: SalesforceConnector, path: str, soql: str | None = None) -> dict[str, Any]:
        if soql is not None and "WHERE Id IN" in soql:
            sent.append(soql)
            if failing[0]:
                failing[0] = False
                raise Retryable("crm", "503 Service Unavailable")
        return await query(self, path, soql)

    monkeypatch.setattr(SalesforceConnector, "_query", flaky)
    with sf_state.transaction():
        rows = [sf_state.user_create("Account", {"Name": f"Row {i}"}) for i in range(CURSOR_PAIRS + 44)]
    records, cursor = await drain(sf, None)
    assert len(records) == len(rows) and json.loads(cursor).get("recent") is None  # pairs in memory only
    wm = json.loads(cursor)["wm"]
    sf_state.clock.advance(3.0)
    now[0] += 2.0
    _restamp(sf_state, rows[3], wm - 100)
    with pytest.raises(Retryable):
        await drain(sf, cursor)
    now[0] += 2.0  # the next settling read is due
    records, _ = await drain(sf, cursor)  # the poller retries from the cursor it had
    assert [(r.id, r.fields["name"]) for r in records] == [(rows[3], "Edited late")]
    assert len(sent) == 2 and all(soql.count("'") == 2 for soql in sent), "only the row not seen, each time"
