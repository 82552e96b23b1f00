"""Replay: re-deliver retained change records, chosen by entity, target, time range or correlation id.

Each chosen record is published again at the end of its partition, marked ``replay`` (so writers apply
it even at the version the target already has) and, with a target, addressed to that target only. The
target's writer applies it like any change: an update of the record the xref knows, never a second
create, so a replay run twice writes the same values twice and duplicates nothing. Records that are
themselves replays are not replayed again. Retention (``streams.retention``) bounds what can be replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from accord.streams.audit import AuditTrail, TraceEvent
from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.log import next_id
from accord.streams.publish import publish
from accord.streams.records import ChangeRecord, MalformedEntry, decode
from accord.streams.replies import Entry, stream_entries
from accord.streams.scope import Scope

PAGE = 500


@dataclass(frozen=True)
class Selection:
    entity: str
    target: str | None = None  # None: every target of the entity
    since_ms: int | None = None
    until_ms: int | None = None
    correlation_id: str | None = None

    def wants(self, change: ChangeRecord) -> bool:
        return (not change.replay
                and (self.target is None or change.source != self.target)
                and (self.target is None or change.only_to in (None, self.target))
                and (self.correlation_id is None or change.correlation_id == self.correlation_id))


@dataclass
class ReplayReport:
    scanned: int = 0
    replayed: int = 0
    malformed: int = 0
    by_source: dict[str, int] = field(default_factory=dict)


async def replay(redis: Redis, scope: Scope, selection: Selection, run_id: str, *,
                 dry_run: bool = False) -> ReplayReport:
    """Re-publish the selected retained records; ``run_id`` names this run in change ids and the trail."""
    keys, audit = scope.keys, scope.audit
    report = ReplayReport()
    for partition in range(scope.partitions):
        stream = keys.changes(selection.entity, partition)
        start = str(selection.since_ms) if selection.since_ms is not None else "-"
        end = await _end(redis, stream, selection.until_ms)  # never past this run's own copies
        if end is None:
            continue
        while True:
            entries = stream_entries(await redis.xrange(stream, start, end, count=PAGE))
            if not entries:
                break
            chosen = _choose(entries, selection, report)
            if chosen and not dry_run:
                await _publish(redis, keys, audit, selection, run_id, scope.partitions, chosen)
            start = next_id(entries[-1][0])
            if len(entries) < PAGE:
                break
    return report


async def _end(redis: Redis, stream: str, until_ms: int | None) -> str | None:
    last = stream_entries(await redis.xrevrange(stream, "+", "-", count=1))
    if not last:
        return None
    last_id = last[0][0]
    return last_id if until_ms is None else min(last_id, f"{until_ms}-18446744073709551615", key=_order)


def _order(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-", 1)
    return int(ms), int(seq)


def _choose(entries: list[Entry], selection: Selection, report: ReplayReport) -> list[ChangeRecord]:
    chosen = []
    for _, fields in entries:
        report.scanned += 1
        try:
            change = decode(fields)
        except MalformedEntry:
            report.malformed += 1
            continue
        if selection.wants(change):
            chosen.append(change)
            report.replayed += 1
            report.by_source[change.source] = report.by_source.get(change.source, 0) + 1
    return chosen


async def _publish(redis: Redis, keys: Keys, audit: AuditTrail, selection: Selection, run_id: str,
                   partitions: int, changes: list[ChangeRecord]) -> None:
    pipe = Batch()  # one page, atomically: a crash mid-run leaves whole pages, and a rerun is harmless
    publish(pipe, keys, partitions, [change.replayed(run_id, selection.target) for change in changes])
    for change in changes:
        audit.queue(pipe, TraceEvent(correlation_id=change.correlation_id, kind="replayed", entity=change.entity,
                                     gid=change.gid, system=change.source, record=change.source_id,
                                     detail=f"run {run_id} to {selection.target or 'every target'}"))
    await pipe.apply(redis)
