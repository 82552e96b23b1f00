"""Publishing a change record happens in one place (``streams.publish``), through the named constructors
of ``ChangeRecord``; published records land on their partition's stream and are counted produced."""

from __future__ import annotations

import ast
from pathlib import Path

from redis.asyncio import Redis

from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.publish import publish
from accord.streams.records import ChangeRecord, decode, partition_of

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("daemon", "actors", "connectors", "streams", "config", "model")


async def test_published_changes_land_on_their_partitions_and_are_counted(any_redis: Redis) -> None:
    keys, partitions = Keys("pub"), 4
    changes = [ChangeRecord.observed("crm", "account", f"gid{i}", "upsert", f"00{i}", 1, {"name": f"N{i}"})
               for i in range(12)]
    pipe = Batch()
    assert publish(pipe, keys, partitions, changes) == 12
    await pipe.apply(any_redis)
    produced = {int(k): int(v) for k, v in (await any_redis.hgetall(keys.produced("account"))).items()}
    for p in range(partitions):
        entries = await any_redis.xrange(keys.changes("account", p))
        expected = [c for c in changes if partition_of(c.gid, partitions) == p]
        assert [decode(fields) for _, fields in entries] == expected
        assert produced.get(p, 0) == len(expected)


def test_a_taken_over_change_names_its_cause_and_kind() -> None:
    cause = ChangeRecord.observed("crm", "account", "g1", "upsert", "001", 5, {"name": "Acme"})
    seed = ChangeRecord.taken_over("seed", "erp", "77", 3, {"tax_id": "X"}, cause=cause)
    assert seed.change_id.endswith(":seed") and seed.causation_id == cause.change_id
    assert (seed.source, seed.source_id, seed.gid, seed.correlation_id) == ("erp", "77", "g1", cause.correlation_id)
    again = seed.replayed("run1", "psa")
    assert again.replay and again.only_to == "psa" and again.change_id == f"{seed.change_id}:replay:run1"


def _calls(tree: ast.AST, attribute: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == attribute]


def test_only_streams_publish_adds_change_records_and_only_records_builds_them() -> None:
    xadds, builds = [], []
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            name = str(path.relative_to(ROOT))
            xadds += [f"{name}:{c.lineno}" for c in _calls(tree, "xadd")
                      if c.args and ".changes(" in ast.unparse(c.args[0]) and name != "streams/publish.py"]
            builds += [f"{name}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Call)
                       and isinstance(n.func, ast.Name) and n.func.id == "ChangeRecord"]
    assert xadds == [], "change records are published only by accord.streams.publish.publish"
    assert builds == [], "build change records with ChangeRecord's named constructors"
