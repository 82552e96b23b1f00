"""The pending book of one writer slot: every entry of the slot's pending list this replica knows of,
and when each is attempted next.

The liveness invariant (DESIGN §2) lives here. An entry enters the book the moment it is read and
leaves it only when a committed batch acked it; in between it is either *in hand* (in the sweep
running now) or *scheduled*: due for another attempt at its backoff, or parked until what it waits for
happens (woken early) or its re-check time. Nothing else is possible, so nothing is forgotten.

Holds are per record (global id), never per partition: a waiting record holds back only the later
changes of the same record, which join its hold and are attempted with it, in stream order.

What survives a crash: nothing here; the book is rebuilt from the slot's pending list in Redis
(``Lane.recover``) whenever the replica (re)acquires the slot's lease, so a book is only trusted while
its lease was held without a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from accord.streams.log import id_order
from accord.streams.records import ChangeRecord, MalformedEntry, decode

# What a parked record waits for: ("loaded", target, entity) — the target's first full read of the
# entity; ("xref", entity, gid, target) — the referenced record's id in the target.
Wait = tuple[str, ...]

IN_HAND = "in hand"
RETRY = "retry"
PARKED = "parked"


@dataclass
class Held:
    """One pending entry: its payload, its record and what has been tried."""

    entry_id: str
    raw: dict[bytes, bytes]
    gid: str  # the record's global id; ``!<entry id>`` for an entry that does not decode
    record: ChangeRecord | None = None  # decoded from ``raw`` (``None``: trimmed or malformed)
    attempts: int = 1  # deliveries so far, this one included (the stream's delivery counter)
    maybe_written: bool = False  # an earlier attempt may have reached the target (crash, lost reply)
    failing_since: float | None = None  # monotonic time of its first failed attempt in this process

    @classmethod
    def of_entry(cls, entry_id: str, raw: dict[bytes, bytes], attempts: int, *, maybe_written: bool = False) -> Held:
        """A pending entry with its record decoded (a trimmed or malformed one is held alone, by its id)."""
        try:
            record = decode(raw) if raw else None
        except MalformedEntry:
            record = None
        gid = record.gid if record is not None else f"!{entry_id}"
        return cls(entry_id=entry_id, raw=raw, gid=gid, record=record, attempts=attempts, maybe_written=maybe_written)


@dataclass
class Hold:
    """Every held entry of one record, and when the record is attempted next."""

    due: float
    state: str = IN_HAND
    why: str = ""
    waits: frozenset[Wait] = frozenset()
    entries: dict[str, Held] = field(default_factory=dict)


class PendingBook:
    """The pending entries of one (partition, target) slot, held per record."""

    def __init__(self) -> None:
        self._holds: dict[str, Hold] = {}
        self._gid_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._gid_of)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._gid_of

    def holds(self, gid: str) -> bool:
        return gid in self._holds

    def hold_of(self, gid: str) -> Hold | None:
        return self._holds.get(gid)

    def get(self, entry_id: str) -> Held | None:
        gid = self._gid_of.get(entry_id)
        return None if gid is None else self._holds[gid].entries.get(entry_id)

    def clear(self) -> None:
        self._holds.clear()
        self._gid_of.clear()

    # -- entering -----------------------------------------------------------------------------
    def take_in_hand(self, held: Held, now: float) -> None:
        """A freshly read entry whose record is not held: it is attempted in the sweep running now."""
        hold = self._holds.setdefault(held.gid, Hold(due=now))
        hold.entries[held.entry_id] = held
        self._gid_of[held.entry_id] = held.gid

    def join(self, held: Held) -> None:
        """A later change of a record that is held: it waits behind the hold and goes with it."""
        self._holds[held.gid].entries[held.entry_id] = held
        self._gid_of[held.entry_id] = held.gid

    def schedule(self, held: Held, due: float, state: str = RETRY, why: str = "") -> None:
        """An entry found pending (recovery, stuck) or held back: attempted at ``due`` with its record."""
        hold = self._holds.get(held.gid)
        if hold is None:
            hold = self._holds[held.gid] = Hold(due=due, state=state, why=why)
        else:
            hold.due = min(hold.due, due)
        hold.entries[held.entry_id] = held
        self._gid_of[held.entry_id] = held.gid

    # -- taking -------------------------------------------------------------------------------
    def take_due(self, now: float, limit: int) -> list[Held]:
        """Every entry of the records due by ``now`` (about ``limit`` entries at most, whole records
        only), in stream order; they are in hand from now on."""
        out: list[Held] = []
        for hold in sorted(self._holds.values(), key=lambda h: h.due):
            if hold.due > now:
                break
            if hold.state == IN_HAND:
                continue
            if out and len(out) + len(hold.entries) > limit:
                break
            hold.state, hold.due = IN_HAND, now
            out.extend(hold.entries.values())
        return sorted(out, key=lambda h: id_order(h.entry_id))

    def next_due(self) -> float | None:
        """When the earliest scheduled record is due (``None``: nothing scheduled)."""
        return min((h.due for h in self._holds.values() if h.state != IN_HAND), default=None)

    # -- leaving ------------------------------------------------------------------------------
    def settle(self, entry_ids: Iterable[str]) -> None:
        """Acked in a committed batch: these entries leave the book."""
        for entry_id in entry_ids:
            gid = self._gid_of.pop(entry_id, None)
            if gid is None:
                continue
            hold = self._holds[gid]
            hold.entries.pop(entry_id, None)
            if not hold.entries:
                del self._holds[gid]

    def defer(self, gid: str, due: float, state: str, why: str = "", waits: frozenset[Wait] = frozenset()) -> None:
        """The record's entries still pending after its sweep: attempted again at ``due`` (or woken
        earlier when ``waits`` are met)."""
        hold = self._holds.get(gid)
        if hold is None:
            return
        hold.due, hold.state, hold.why, hold.waits = due, state, why, waits

    def release_in_hand(self, due: float, why: str) -> int:
        """After a sweep that failed before its outcome: every entry in hand is retried at ``due``."""
        released = 0
        for hold in self._holds.values():
            if hold.state == IN_HAND:
                hold.due, hold.state, hold.why = due, RETRY, why
                released += len(hold.entries)
        return released

    # -- waking -------------------------------------------------------------------------------
    def waits(self) -> set[Wait]:
        """Everything some parked record waits for."""
        return {w for hold in self._holds.values() if hold.state == PARKED for w in hold.waits}

    def wake(self, met: set[Wait], now: float) -> int:
        """Parked records waiting for something in ``met`` are due now; returns how many."""
        woken = 0
        for hold in self._holds.values():
            if hold.state == PARKED and hold.waits & met and hold.due > now:
                hold.due = now
                woken += 1
        return woken

    # -- reading ------------------------------------------------------------------------------
    def entries(self) -> Iterator[tuple[Held, Hold]]:
        for hold in self._holds.values():
            for held in hold.entries.values():
                yield held, hold

    def in_hand(self) -> list[Held]:
        return [held for held, hold in self.entries() if hold.state == IN_HAND]
