"""What a writer holds during one sweep for one target: the deliveries, the per-record work, and the
outcome it commits atomically (acks, state, exceptions, counters) or leaves pending (deferrals)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from accord.actors.write.pending import Held, Wait
from accord.connectors.base import WriteOp, WriteResult
from accord.connectors.errors import ConnectorError, RateLimited, StaleVersion
from accord.streams.audit import TraceEvent
from accord.streams.exceptions import ExceptionRecord, Reason, exception_id
from accord.streams.log import Slot
from accord.streams.records import ChangeRecord, now_ms
from accord.streams.state import Stats


@dataclass(frozen=True)
class Deferral:
    """Why a delivery stays pending after its sweep: parked until ``waits`` are met (or its re-check),
    or retried after its backoff (at least ``retry_after`` seconds)."""

    parked: bool
    why: str
    waits: frozenset[Wait] = frozenset()
    retry_after: float = 0.0
    maybe_written: bool = False  # the failed request may have reached the target (a timeout, a 5xx)


@dataclass
class Delivery:
    """One stream entry in hand."""

    slot: Slot
    entry_id: str
    raw: dict[bytes, bytes]
    record: ChangeRecord | None = None
    attempts: int = 1  # this is the entry's n-th delivery (write attempts; parking does not count)
    maybe_written: bool = False  # an earlier attempt may have reached the target (a crash, a lost reply)
    failing_for: float = 0.0  # seconds since its first failed attempt (in this writer process)
    deferral: Deferral | None = None  # set when the sweep leaves it pending

    @classmethod
    def of(cls, slot: Slot, held: Held) -> Delivery:
        """A held entry taken in hand for this sweep."""
        failing_for = time.monotonic() - held.failing_since if held.failing_since is not None else 0.0
        return cls(slot=slot, entry_id=held.entry_id, raw=held.raw, record=held.record, attempts=held.attempts,
                   maybe_written=held.maybe_written, failing_for=failing_for)


@dataclass(eq=False)
class RecordWork:
    """All deliveries of one global id in this sweep, coalesced into at most one write.

    ``fields`` is the canonical (global-id) form of what will be written; ``op`` carries the target's
    native form. ``link_back`` is a change to publish on the target's behalf after a match-rule link."""

    gid: str
    deliveries: list[Delivery]
    op: WriteOp | None = None
    source: ChangeRecord | None = None
    target_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    linked_from: str | None = None  # the gid the matched target record carried before the link
    link_back: ChangeRecord | None = None
    seeded: dict[str, Any] | None = None  # fields the target owns that this create seeds: published back
    ready: bool = False  # planned and to be written this sweep
    new_link: bool = False  # created, found or matched in the target: record the xref after the write
    native: dict[str, Any] | None = None  # ``fields`` with references as the target's ids
    version: int | None = None  # the target's own version of the record, when known (SyncToken)
    original_gid: str | None = None  # set on an adjustment record: the locked record it adjusts
    adjusts: tuple[str, str] | None = None  # (the original's target id, its adjustments' new total)

    @property
    def gids(self) -> set[str]:
        """Its gid and every gid its changes were published under (aliases minted before a link)."""
        return {self.gid} | {d.record.gid for d in self.deliveries if d.record is not None}

    @property
    def first_ms(self) -> int:
        return min(int(d.entry_id.split("-", 1)[0]) for d in self.deliveries)

    @property
    def exhausted_after(self) -> int:
        return max(d.attempts for d in self.deliveries)

    @property
    def failing_for(self) -> float:
        return max(d.failing_for for d in self.deliveries)


@dataclass
class Outcome:
    """What one target's sweep commits: acks, state updates, exceptions, counters, retries."""

    entity: str
    target: str
    acks: dict[Slot, list[str]] = field(default_factory=lambda: defaultdict(list))
    exceptions: list[ExceptionRecord] = field(default_factory=list)
    done: list[tuple[RecordWork, WriteResult]] = field(default_factory=list)
    deferred: list[Delivery] = field(default_factory=list)
    retry_after: float = 0.0  # the target asked to be left alone this long (429 Retry-After)
    counts: Counter[str] = field(default_factory=Counter)
    events: list[TraceEvent] = field(default_factory=list)  # the audit trail of this sweep
    nudges: set[tuple[str, str]] = field(default_factory=set)  # (system, entity) to read now: parked records wait
    settled: set[str] = field(default_factory=set)  # gids skipped with nothing left to write (not owed any more)

    def trace(self, deliveries: list[Delivery], kind: str, detail: str, record_id: str = "") -> None:
        """One trail event per business flow among ``deliveries`` (coalesced changes may span flows)."""
        flows = {d.record.correlation_id: d.record.gid for d in deliveries if d.record is not None}
        for correlation_id, gid in flows.items():
            self.events.append(TraceEvent(correlation_id=correlation_id, kind=kind, entity=self.entity, gid=gid,
                                          system=self.target, record=record_id, detail=detail))

    def ack(self, d: Delivery) -> None:
        self.acks[d.slot].append(d.entry_id)

    def skip(self, work: RecordWork, reason: str) -> None:
        """Nothing to write for this record: ack its deliveries and count why."""
        work.ready = False
        self.settled.add(work.gid)
        for d in work.deliveries:
            self.ack(d)
        self.counts[Stats.label("skipped", self.entity, reason)] += len(work.deliveries)
        self.trace(work.deliveries, "skipped", f"nothing written to {self.target}: {reason}", work.target_id or "")

    def defer(self, works: list[RecordWork], exc: ConnectorError | None = None, *, parked: bool = False,
              why: str = "", waits: frozenset[Wait] = frozenset()) -> None:
        """Leave these entries pending: parked ones until ``waits`` are met, the others for a retry."""
        kind = "parked" if parked else "retry"
        detail = why or (f"{type(exc).__name__}: {exc.message}" if exc is not None else "will retry")
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else 0.0
        refused = isinstance(exc, RateLimited | StaleVersion)  # turned away before anything was done
        deferral = Deferral(parked=parked, why=detail, waits=waits, retry_after=retry_after,
                            maybe_written=exc is not None and not refused)
        for work in works:
            work.op, work.ready = None, False
            for d in work.deliveries:
                d.deferral = deferral
                self.deferred.append(d)
            self.trace(work.deliveries, kind, f"{self.target}: {detail}", work.target_id or "")
        self.retry_after = max(self.retry_after, retry_after)
        if parked:
            self.counts[Stats.label("parked", self.entity)] += len(works)
        else:
            self.counts[Stats.label("deferred", self.entity)] += len(works)

    def fail_work(self, work: RecordWork, reason: Reason, message: str) -> None:
        work.op, work.ready = None, False
        for d in work.deliveries:
            self.fail(d, reason, message)

    def fail(self, d: Delivery, reason: Reason, message: str) -> None:
        """File an exception for this delivery and ack it (the partition keeps flowing)."""
        record = d.record
        self.exceptions.append(ExceptionRecord(
            exception_id=exception_id(d.slot.stream, d.entry_id, self.target), reason=reason, message=message,
            entity=self.entity, target=self.target, gid=record.gid if record else "",
            source=record.source if record else "", source_id=record.source_id if record else "",
            correlation_id=record.correlation_id if record else "", attempts=d.attempts,
            stream=d.slot.stream, entry_id=d.entry_id, payload=d.raw.get(b"d", b""), created_ms=now_ms()))
        self.ack(d)
        self.counts[Stats.label("exceptions", self.target, self.entity, reason)] += 1
        self.trace([d], "exception", f"{reason}: {message}")
        logger.bind(entity=self.entity, target=self.target, correlation_id=record.correlation_id if record else "",
                    entry=d.entry_id).error("exception filed ({}): {}", reason, message)
