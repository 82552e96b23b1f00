"""What one poller page commits in its atomic batch (built by ``poller``, judged by ``edits``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec

from accord.actors.poll.suspects import Suspect
from accord.connectors.base import SourceRecord
from accord.streams.exceptions import ExceptionRecord
from accord.streams.records import ChangeRecord, now_ms

DELETED_FIELD = "_deleted"  # in a projection: the record was deleted (by its owner, or seen deleted)


class PagePlan:
    """Everything one page commits in its MULTI. In a resync, every record read is republished in full."""

    def __init__(self, *, resync: bool = False, fetched_ms: int = 0) -> None:
        self.resync = resync
        self.fetched_ms = fetched_ms  # when the page was asked for: what it shows happened before
        self.changes: list[ChangeRecord] = []
        self.remember: list[tuple[str, dict[str, Any], int]] = []
        self.exceptions: list[ExceptionRecord] = []
        self.counts: Counter[str] = Counter()
        self.reverts: list[tuple[SourceRecord, str, dict[str, tuple[Any, Any]]]] = []
        self.adopted: list[tuple[SourceRecord, str, dict[str, Any]]] = []
        self.suspects: list[tuple[SourceRecord, str, dict[str, tuple[Any, Any]]]] = []
        self.parked: list[tuple[str, Suspect]] = []  # suspects of this page, to judge after the owner's next read
        self.judged: list[str] = []  # parked suspects judged on this page
        self.billed: list[tuple[str, str]] = []  # (billed set, gid) on a live invoice of this page
        self.unbilled: list[tuple[str, str]] = []  # ... on an invoice voided or deleted
        self.closing: dict[str, set[str]] = {}  # record id -> its mapping exceptions, closed by this page
        self.index: list[tuple[str, str]] = []
        self.unindex: list[tuple[str, str]] = []
        self.later: list[Callable[[Any], None]] = []  # more to queue onto the batch (``poll.business``)

    def queue_later(self, pipe: Any) -> None:
        for queue in self.later:
            queue(pipe)


def mapping_exception(system: str, entity: str, record: SourceRecord, gid: str, message: str) -> ExceptionRecord:
    """The exception a record that cannot be read files (one per record version; replayable)."""
    return ExceptionRecord(
        exception_id=f"map:{system}:{entity}:{record.id}:{record.version}", reason="mapping",
        message=message, entity=entity, gid=gid, source=system, source_id=record.id,
        payload=msgspec.msgpack.encode(record.fields), created_ms=now_ms())
