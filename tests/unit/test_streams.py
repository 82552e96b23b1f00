"""Stream semantics the writer relies on, on fakeredis, Redis 6.2 and Redis 7."""

from __future__ import annotations

from redis.asyncio import Redis

from accord.streams.keys import Keys
from accord.streams.log import Slot, delivery_counts, ensure_groups, low_water_mark, read_slots, trim

KEYS = Keys("t")


async def _add(redis: Redis, n: int, partition: int = 0) -> list[str]:
    ids = []
    for i in range(n):
        raw = await redis.xadd(KEYS.changes("account", partition), {"d": f"r{i}".encode()})
        ids.append(raw.decode())
    return ids


async def test_groups_are_idempotent_and_start_at_zero(any_redis: Redis) -> None:
    await _add(any_redis, 2)  # entries added before the group exists are still delivered
    await ensure_groups(any_redis, KEYS, "account", ["erp", "crm"], 2)
    await ensure_groups(any_redis, KEYS, "account", ["erp", "crm"], 2)  # BUSYGROUP is fine
    slot = Slot.make(KEYS, "account", 0, "erp")
    slot.backlog = False
    [entries] = await read_slots(any_redis, [slot], 10)
    assert [f[b"d"] for _, f in entries] == [b"r0", b"r1"]
    groups = await any_redis.xinfo_groups(KEYS.changes("account", 1))
    assert sorted(g["name"] for g in groups) == [b"to:crm", b"to:erp"]


async def test_pending_entries_come_back_first_with_counts(any_redis: Redis) -> None:
    await ensure_groups(any_redis, KEYS, "account", ["erp"], 1)
    ids = await _add(any_redis, 3)
    first = Slot.make(KEYS, "account", 0, "erp")
    [got] = await read_slots(any_redis, [first], 2)  # empty backlog, so new entries in the same call
    assert [i for i, _ in got] == ids[:2] and first.backlog is False
    # the actor dies without acking; a new owner of partition 0 reads the same consumer's PEL first
    second = Slot.make(KEYS, "account", 0, "erp")
    [again] = await read_slots(any_redis, [second], 10)
    assert [i for i, _ in again] == ids[:2] and second.backlog is True
    counts = await delivery_counts(any_redis, second, ids[:2])
    assert counts == {ids[0]: 2, ids[1]: 2}
    await any_redis.xack(second.stream, second.group, *ids[:2])
    [rest] = await read_slots(any_redis, [second], 10)
    assert [i for i, _ in rest] == ids[2:] and second.backlog is False


async def test_trim_never_drops_pending_or_undelivered(any_redis: Redis) -> None:
    await ensure_groups(any_redis, KEYS, "account", ["erp", "crm"], 1)
    ids = await _add(any_redis, 10)
    erp = Slot.make(KEYS, "account", 0, "erp")
    erp.backlog = False
    crm = Slot.make(KEYS, "account", 0, "crm")
    crm.backlog = False
    [read_erp] = await read_slots(any_redis, [erp], 6)
    await any_redis.xack(erp.stream, erp.group, *[i for i, _ in read_erp[:4]])  # 4 acked, 2 pending
    [read_crm] = await read_slots(any_redis, [crm], 8)
    await any_redis.xack(crm.stream, crm.group, *[i for i, _ in read_crm])  # crm acked 8
    assert await low_water_mark(any_redis, erp.stream) == ids[4]  # erp's oldest pending
    now = int(ids[-1].split("-")[0]) + 10_000
    removed = await trim(any_redis, erp.stream, retention_ms=0, now_ms=now)
    assert removed == 4
    remaining = [i.decode() for i, _ in await any_redis.xrange(erp.stream)]
    assert remaining == ids[4:]
    # retention keeps even fully acked entries younger than it
    assert await trim(any_redis, erp.stream, retention_ms=10**9, now_ms=now) == 0


async def test_trimmed_pending_entry_reads_back_empty(any_redis: Redis) -> None:
    await ensure_groups(any_redis, KEYS, "account", ["erp"], 1)
    ids = await _add(any_redis, 2)
    slot = Slot.make(KEYS, "account", 0, "erp")
    slot.backlog = False
    await read_slots(any_redis, [slot], 10)
    await any_redis.xdel(slot.stream, ids[0])  # as a blind MAXLEN trim would
    again = Slot.make(KEYS, "account", 0, "erp")
    [entries] = await read_slots(any_redis, [again], 10)
    assert entries[0] == (ids[0], {}) and entries[1][0] == ids[1]


async def test_a_batch_of_thousands_of_members_applies_in_one_atomic_call(any_redis: Redis) -> None:
    """A page of thousands of records queues commands with thousands of arguments (found by the fault
    suite at 20k records: Lua's unpack refused them and the CRM poller never advanced again)."""
    from accord.streams.batch import Batch

    members = [f"m{i}" for i in range(20_000)]
    batch = Batch()
    batch.sadd("big:set", *members)
    batch.hset("big:hash", mapping={m: 1 for m in members})
    batch.hdel("big:hash", *members[:15_000])
    assert await batch.apply(any_redis)
    assert await any_redis.scard("big:set") == 20_000
    assert await any_redis.hlen("big:hash") == 5_000
