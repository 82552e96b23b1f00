"""What the pipeline still holds, named: every change record a consumer group has not acked, and every
provisioning process that has not finished.

For each partition stream ``chg:{entity}:{p}`` and each of its consumer groups (the targets' ``to:{target}``
and the provisioner's ``provision``) there are two kinds of unfinished entries: *pending* ones (delivered,
not acked: the group's PEL, read with XPENDING) and *undelivered* ones (after the group's last-delivered
id). ``scan_groups`` counts them cheaply (it is polled while the demo settles); ``stuck_entries`` names the
oldest ones: entity, target, partition, the record (global id, source and source id, decoded from the
entry), idle time, delivery count and a reason (the last event of its flow's trace, as ``accord trace``
shows it, or "never delivered"). ``provisioning`` lists processes still running, waiting or parked.
Built for ``accord demo``; an operator command can use it as is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from redis.asyncio import Redis

from accord.actors.provision.process import Provision, Provisions
from accord.config.settings import Settings
from accord.streams.audit import AuditTrail, TraceEvent
from accord.streams.keys import Keys
from accord.streams.log import id_ms
from accord.streams.records import MalformedEntry, decode
from accord.streams.replies import first_fields, pending_rows, stream_entries, text


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class GroupScan:
    """One consumer group of one partition stream: its PEL size and its first undelivered entries."""

    entity: str
    partition: int
    stream: str
    group: str  # e.g. "to:erp" or "provision"
    pending: int
    undelivered: list[str]  # ids after the last-delivered id (at most the scan's limit)

    @property
    def target(self) -> str:
        return self.group.removeprefix("to:")


async def scan_groups(redis: Redis, settings: Settings, keys: Keys | None = None, *,
                      limit: int = 1) -> list[GroupScan]:
    """Every group of every partition stream with its pending count and up to ``limit`` undelivered ids.
    Two pipelined round trips (XINFO GROUPS, then one XRANGE per group)."""
    keys = keys or Keys(settings.namespace)
    streams = [(e, p, keys.changes(e, p)) for e in settings.entities for p in range(settings.streams.partitions)]
    async with redis.pipeline(transaction=False) as pipe:
        for _e, _p, stream in streams:
            pipe.xinfo_groups(stream)
        infos = await pipe.execute(raise_on_error=False)
    groups: list[tuple[str, int, str, str, int, str]] = []
    for (entity, p, stream), info in zip(streams, infos, strict=True):
        if isinstance(info, Exception):
            continue  # no such stream yet: nothing published to this partition
        for g in info:
            groups.append((entity, p, stream, text(g["name"]), int(g.get("pending", 0)), text(g["last-delivered-id"])))
    async with redis.pipeline(transaction=False) as pipe:
        for _e, _p, stream, _g, _n, last in groups:
            pipe.xrange(stream, min="(" + last, max="+", count=limit)
        ranges = await pipe.execute()
    return [GroupScan(entity=e, partition=p, stream=stream, group=g, pending=n,
                      undelivered=[entry_id for entry_id, _fields in stream_entries(rows)])
            for (e, p, stream, g, n, _last), rows in zip(groups, ranges, strict=True)]


@dataclass(frozen=True)
class StuckEntry:
    """One change record a group has not acked."""

    entity: str
    target: str  # the group's target system ("provision" for the provisioner's group)
    partition: int
    entry_id: str
    delivered: bool  # False: never delivered to the group (lag only)
    idle_seconds: float  # since its last delivery; since it was added when never delivered
    deliveries: int
    gid: str = ""
    source: str = ""
    source_id: str = ""
    correlation_id: str = ""
    reason: str = ""

    def describe(self) -> str:
        record = f"{self.gid} ({self.source} {self.source_id})" if self.gid else "(no decodable record)"
        state = (f"pending, delivered {self.deliveries}x, idle {self.idle_seconds:.0f}s" if self.delivered
                 else f"undelivered for {self.idle_seconds:.0f}s")
        return (f"{self.entity} -> {self.target} p{self.partition} {self.entry_id}: {record}; {state}; "
                f"reason: {self.reason}")


@dataclass(frozen=True)
class Stuck:
    """The oldest unacked entries (``entries``, at most the limit asked for) and the totals they come from."""

    entries: list[StuckEntry] = field(default_factory=list)
    pending: int = 0  # delivered and unacked, every group
    undelivered: int = 0  # not yet delivered (counted up to the limit per group)

    @property
    def total(self) -> int:
        return self.pending + self.undelivered


async def stuck_entries(redis: Redis, settings: Settings, *, limit: int = 20, now_ms: int | None = None) -> Stuck:
    """The first ``limit`` unacked entries of every group of every partition stream, oldest first, each with
    its record and the reason it is still there."""
    keys = Keys(settings.namespace)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    scans = await scan_groups(redis, settings, keys, limit=limit)
    rows = await _pending_rows(redis, [s for s in scans if s.pending], limit)
    rows += [StuckEntry(entity=s.entity, target=s.target, partition=s.partition, entry_id=i, delivered=False,
                        idle_seconds=max(0.0, (now_ms - id_ms(i)) / 1000), deliveries=0)
             for s in scans for i in s.undelivered]
    rows.sort(key=lambda r: _id_key(r.entry_id))
    shown = await _explained(redis, settings, keys, rows[:limit], now_ms)
    return Stuck(entries=shown, pending=sum(s.pending for s in scans),
                 undelivered=sum(len(s.undelivered) for s in scans))


async def _pending_rows(redis: Redis, scans: list[GroupScan], limit: int) -> list[StuckEntry]:
    async with redis.pipeline(transaction=False) as pipe:
        for s in scans:
            pipe.xpending_range(s.stream, s.group, min="-", max="+", count=limit)
        replies = await pipe.execute()
    return [StuckEntry(entity=s.entity, target=s.target, partition=s.partition, entry_id=row.entry_id,
                       delivered=True, idle_seconds=row.idle_ms / 1000, deliveries=row.deliveries)
            for s, rows in zip(scans, replies, strict=True) for row in pending_rows(rows)]


async def _explained(redis: Redis, settings: Settings, keys: Keys, rows: list[StuckEntry],
                     now_ms: int) -> list[StuckEntry]:
    """``rows`` with their records decoded and a reason each."""
    async with redis.pipeline(transaction=False) as pipe:
        for r in rows:
            pipe.xrange(keys.changes(r.entity, r.partition), min=r.entry_id, max=r.entry_id)
        payloads = await pipe.execute()
    trail = AuditTrail(keys, settings.streams.audit_retention)
    out = []
    for row, found in zip(rows, payloads, strict=True):
        fields = first_fields(found)
        try:
            change = decode(fields)
        except MalformedEntry as exc:
            out.append(replace(row, reason=f"no change record in the entry ({exc})" if fields else
                                "the entry's payload was trimmed"))
            continue
        reason = "never delivered" if not row.delivered else await _last_event(
            redis, trail, change.correlation_id, change.gid, row.target, now_ms)
        out.append(replace(row, gid=change.gid, source=change.source, source_id=change.source_id,
                            correlation_id=change.correlation_id, reason=reason))
    return out


async def _last_event(redis: Redis, trail: AuditTrail, correlation_id: str, gid: str, system: str,
                      now_ms: int) -> str:
    """The flow's last trace event about this record in this target (else about the record, else any)."""
    if not correlation_id:
        return "no correlation id, so no trace"
    events = await trail.read(redis, correlation_id)
    for match in (lambda e: e.gid == gid and e.system == system, lambda e: e.gid == gid, lambda e: True):
        chosen = [e for e in events if match(e)]
        if chosen:
            return _event_text(chosen[-1], now_ms)
    return f"no trace event for flow {correlation_id}"


def _event_text(event: TraceEvent, now_ms: int) -> str:
    ago = f" ({(now_ms - event.at_ms) / 1000:.0f}s ago)" if event.at_ms else ""
    return f"{event.kind}: {event.detail}{ago}" if event.detail else f"{event.kind}{ago}"


# -- provisioning --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProvisionState:
    """A closed-won provisioning process that has not finished."""

    process: Provision
    reason: str = ""  # its last trace event, filled by ``provisioning(explain=True)``

    @property
    def parked(self) -> bool:
        """Stopped by an error: it waits on the exception desk, not on the sync."""
        return self.process.parked

    def describe(self) -> str:
        p = self.process
        state = "parked" if p.parked else "waiting" if p.waiting_since_ms else "running"
        why = p.error if p.parked and p.error else self.reason
        return f"opportunity {p.crm_id} ({p.opportunity}) {state} at step `{p.step}`" + (f": {why}" if why else "")


async def provisioning(redis: Redis, settings: Settings, *, explain: bool = False,
                       now_ms: int | None = None) -> list[ProvisionState]:
    """Every provisioning process not done (running, waiting on the sync, or parked), oldest first;
    with ``explain``, each with its last trace event."""
    if settings.provisioning is None:
        return []
    keys = Keys(settings.namespace)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    processes = sorted((p for p in await Provisions(redis, keys).all() if p.step != "done"),
                       key=lambda p: p.started_ms)
    if not explain:
        return [ProvisionState(p) for p in processes]
    trail = AuditTrail(keys, settings.streams.audit_retention)
    return [ProvisionState(p, await _last_event(redis, trail, p.correlation_id, p.opportunity,
                                                settings.provisioning.crm, now_ms)) for p in processes]
