"""Redis Streams plumbing for partitioned change logs: groups, reads, acks, delivery counts, trimming.

Semantics (measured in ``shared/reference/redis-and-ray.md``), valid on Redis 6.2 and 7.x:

* one consumer group per target system (``to:{target}``), one consumer per partition (``p{p}``): the
  pending entries list (PEL) of consumer ``p{p}`` survives whatever actor held the partition;
* a reader first re-reads its own PEL (id ``0``) until empty, then new entries (``>``);
* a pending entry whose payload was trimmed comes back with no fields: it is gone and gets acked;
* trimming uses ``MINID`` below the slowest group's low-water mark, never ``MAXLEN``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from accord.streams.keys import Keys
from accord.streams.replies import Entry, PendingRow, first_fields, pending_rows, read_entries, text


async def ensure_groups(redis: Redis, keys: Keys, entity: str, targets: Iterable[str], partitions: int) -> None:
    """Create every partition stream and its target groups (from id 0, so nothing is skipped)."""
    targets = list(targets)
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            for target in targets:
                pipe.xgroup_create(keys.changes(entity, p), Keys.group(target), id="0", mkstream=True)
        results = await pipe.execute(raise_on_error=False)
    for result in results:
        if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
            raise result


@dataclass(eq=False)
class Slot:
    """One (partition, target) read position: a partition stream, a target's group, the partition's consumer."""

    entity: str
    partition: int
    target: str
    backlog: bool = True  # for ``read_slots``: True while the consumer's own PEL has not been drained
    stream: str = ""
    group: str = ""
    consumer: str = ""

    @classmethod
    def make(cls, keys: Keys, entity: str, partition: int, target: str) -> Slot:
        return cls(entity=entity, partition=partition, target=target,
                   stream=keys.changes(entity, partition), group=Keys.group(target),
                   consumer=Keys.consumer(partition))


async def read_slots(redis: Redis, slots: Sequence[Slot], count: int) -> list[list[Entry]]:
    """One pipelined XREADGROUP per slot (non-blocking); a slot whose backlog read comes back empty
    switches to new entries in the same call, so nothing waits an extra round trip."""
    results = await _read(redis, slots, count)
    again = [i for i, (slot, got) in enumerate(zip(slots, results, strict=True)) if slot.backlog and not got]
    for i in again:
        slots[i].backlog = False
    if again:
        more = await _read(redis, [slots[i] for i in again], count)
        for i, got in zip(again, more, strict=True):
            results[i] = got
    return results


async def _read(redis: Redis, slots: Sequence[Slot], count: int) -> list[list[Entry]]:
    return await _read_from(redis, [(slot, "0" if slot.backlog else ">") for slot in slots], count)


async def read_new(redis: Redis, slots: Sequence[Slot], count: int) -> list[list[Entry]]:
    """Entries never delivered to each slot's group (``>``), one pipelined non-blocking XREADGROUP per slot;
    they enter the slot consumer's PEL."""
    return await _read_from(redis, [(slot, ">") for slot in slots], count)


async def read_pending(redis: Redis, slot: Slot, after: str, count: int) -> list[Entry]:
    """The slot consumer's own pending entries with ids above ``after`` (``"0"``: from the start). Every
    entry read counts one more delivery; a trimmed entry comes back with no fields."""
    [entries] = await _read_from(redis, [(slot, after)], count)
    return entries


async def _read_from(redis: Redis, reads: Sequence[tuple[Slot, str]], count: int) -> list[list[Entry]]:
    if not reads:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for slot, position in reads:
            pipe.xreadgroup(slot.group, slot.consumer, {slot.stream: position}, count=count)
        replies = await pipe.execute()
    return [read_entries(reply) for reply in replies]


async def fetch(redis: Redis, stream: str, entry_ids: Sequence[str]) -> list[Entry]:
    """The payload of each entry (``{}`` when trimmed), without counting a delivery."""
    if not entry_ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for entry_id in entry_ids:
            pipe.xrange(stream, entry_id, entry_id, count=1)
        replies = await pipe.execute()
    return [(entry_id, first_fields(reply)) for entry_id, reply in zip(entry_ids, replies, strict=True)]


async def idle_pending(redis: Redis, slot: Slot, min_idle_ms: int, count: int) -> list[PendingRow]:
    """The slot consumer's pending entries idle for at least ``min_idle_ms`` (XPENDING with IDLE, 6.2+)."""
    rows = await redis.xpending_range(slot.stream, slot.group, min="-", max="+", count=count,
                                      consumername=slot.consumer, idle=min_idle_ms)
    return pending_rows(rows)


async def delivery_counts(redis: Redis, slot: Slot, entry_ids: Sequence[str]) -> dict[str, int]:
    """Times each pending entry has been delivered (XPENDING extended form over the id range)."""
    if not entry_ids:
        return {}
    ordered = sorted(entry_ids, key=id_order)
    rows = await redis.xpending_range(slot.stream, slot.group, min=ordered[0], max=ordered[-1],
                                      count=len(entry_ids) + 1000, consumername=slot.consumer)
    wanted = set(entry_ids)
    return {row.entry_id: row.deliveries for row in pending_rows(rows) if row.entry_id in wanted}


def id_order(entry_id: str) -> tuple[int, int]:
    """Sort key of a stream id (``ms-seq``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def id_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def next_id(entry_id: str) -> str:
    ms, seq = entry_id.split("-", 1)
    return f"{ms}-{int(seq) + 1}"


async def low_water_mark(redis: Redis, stream: str) -> str | None:
    """The smallest id any group still needs: its oldest pending entry, or the first undelivered one.

    Entries below it have been delivered to and acked by every group. ``None``: no groups (keep all).
    """
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return None
    if not groups:
        return None
    marks: list[tuple[int, int]] = []
    for group in groups:
        name = text(group["name"])
        last = text(group["last-delivered-id"])
        mark = next_id(last)
        if int(group.get("pending", 0)):
            summary = await redis.xpending(stream, name)
            if summary and summary.get("min"):
                mark = text(summary["min"])
        ms, seq = mark.split("-", 1)
        marks.append((int(ms), int(seq)))
    low = min(marks)
    return f"{low[0]}-{low[1]}"


async def trim(redis: Redis, stream: str, retention_ms: int, now_ms: int) -> int:
    """Trim entries every group has acked and that are older than the retention; returns how many
    were removed. Approximate (``~``) trimming only ever removes less, never more."""
    mark = await low_water_mark(redis, stream)
    if mark is None:
        return 0
    keep_from = max(0, now_ms - retention_ms)
    mark_ms, mark_seq = (int(x) for x in mark.split("-", 1))
    if keep_from < mark_ms:
        mark = f"{keep_from}-0"
    elif keep_from == mark_ms:
        mark = f"{mark_ms}-{mark_seq}"
    removed = await redis.xtrim(stream, minid=mark, approximate=False, limit=None)
    return int(removed)
