"""Replay (retained changes re-delivered by entity, target, time range or correlation id) and resync (a
source re-read and republished in full): running either twice duplicates nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from redis.asyncio import Redis

from accord.opscli import UsageError, point_in_time
from accord.replay import Selection, replay
from accord.streams.records import ChangeRecord, decode, now_ms
from accord.streams.scope import Scope
from accord.streams.state import Cursors
from tests.unit.test_sync import Rig


@pytest.fixture
async def rig(any_redis: Redis) -> Rig:
    return await Rig(any_redis).setup()


async def _drain(rig: Rig) -> None:
    while await rig.writer.sweep():
        pass


async def test_replay_restores_a_target_and_twice_duplicates_nothing(rig: Rig) -> None:
    started = now_ms()
    a = rig.crm.user_create({"name": "Acme", "country": "US"})
    rig.crm.user_create({"name": "Globex", "country": "DE"})
    await rig.settle()
    assert rig.erp.creates == 2
    for record in rig.erp.records.values():  # the ERP is restored from an old backup behind Accord's back
        record["name"] = "lost"

    for run in ("r1", "r2"):
        report = await replay(rig.redis, Scope.of(rig.settings), Selection(entity="account", target="erp", since_ms=started),
                              run)
        assert report.replayed == 2 and report.by_source == {"crm": 2}
        await _drain(rig)
        assert sorted(r["name"] for r in rig.erp.records.values()) == ["Acme", "Globex"]
    assert rig.erp.creates == 2 and len(rig.erp.records) == 2
    assert rig.crm.records[a]["name"] == "Acme"

    again = await replay(rig.redis, Scope.of(rig.settings), Selection(entity="account", target="erp"), "r3", dry_run=True)
    assert again.replayed == 2, "copies made by earlier replays are never replayed again"


async def test_replay_by_correlation_id_and_time_range(rig: Rig) -> None:
    rig.crm.user_create({"name": "Acme", "country": "US"})
    rig.crm.user_create({"name": "Globex", "country": "DE"})
    await rig.settle()
    flows = [e.correlation_id for e in await _published(rig)]
    one = await replay(rig.redis, Scope.of(rig.settings), Selection(entity="account", correlation_id=flows[0]), "c", dry_run=True)
    assert one.replayed == 1
    future = await replay(rig.redis, Scope.of(rig.settings), Selection(entity="account", since_ms=now_ms() + 60_000), "f")
    assert future.replayed == 0


async def _published(rig: Rig) -> list[ChangeRecord]:
    out: list[ChangeRecord] = []
    for p in range(rig.settings.streams.partitions):
        out += [decode(f) for _, f in await rig.redis.xrange(rig.keys.changes("account", p))]
    return out


def test_points_in_time_are_iso_or_ages() -> None:
    nine_utc = int(dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC).timestamp() * 1000)
    assert point_in_time("--since", "2026-11-25T09:00Z") == nine_utc
    assert point_in_time("--since", "2026-11-25T09:00") == nine_utc  # naive means UTC
    assert point_in_time("--since", "2026-11-25T10:00+01:00") == nine_utc
    assert point_in_time("--since", "2h", now=10_000.0) == (10_000 - 7200) * 1000
    assert point_in_time("--since", None) is None
    with pytest.raises(UsageError, match="--since: 'yesterday'"):
        point_in_time("--since", "yesterday")


async def test_resync_republishes_a_source_in_full_once_per_request(rig: Rig) -> None:
    for name in ("Acme", "Globex"):
        rig.crm.user_create({"name": name, "country": "US"})
    await rig.settle()
    for record in rig.erp.records.values():
        record["name"] = "lost"  # the ERP restored from a backup: nothing Accord could notice
    await rig.settle()
    assert sorted(r["name"] for r in rig.erp.records.values()) == ["lost", "lost"]

    cursors = Cursors(rig.redis, rig.keys)
    for run in ("a", "b"):
        await cursors.request_resync("crm", "account", 0, run)
        await rig.settle()
        assert sorted(r["name"] for r in rig.erp.records.values()) == ["Acme", "Globex"]
        position = await cursors.position("crm", "account")
        assert not position.in_resync, "a finished resync clears its request"
    assert rig.erp.creates == 2 and len(rig.erp.records) == 2
    writes = rig.erp.write_calls
    await rig.settle()
    assert rig.erp.write_calls == writes, "after the resync, polls are incremental again"
