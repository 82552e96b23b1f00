"""What a writer's commit records for the records it wrote to one target, queued onto the commit's
atomic batch: xref links, applied versions, last-seen projections (in canonical spelling, references
global), cleared in-flight marks, values published back on the target's behalf (match-rule links,
values a create seeded into fields the target owns), exceptions, the trail and the open exceptions a
success closes.

What survives a crash: all of it is applied in the same fenced Lua call as the XACKs, so either every
piece is in Redis or none is and the entries are attempted again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from accord.actors.context import Context
from accord.actors.poll.page import DELETED_FIELD
from accord.actors.write.locked import ADJUSTED_FIELD
from accord.actors.write.outcome import Outcome, RecordWork
from accord.actors.write.planner import WritePlanner
from accord.config.settings import Settings
from accord.connectors.base import WriteResult
from accord.model.entities import normalise_fields
from accord.streams.batch import Batch
from accord.streams.business import queue_delivered
from accord.streams.exceptions import file_exception
from accord.streams.latency import bucket_counts, started_ms
from accord.streams.publish import publish
from accord.streams.records import ChangeRecord, now_ms
from accord.streams.state import Stats


class Committer:
    """Queues the state of one target's written records (one entity) onto a commit batch."""

    def __init__(self, settings: Settings, entity: str, ctx: Callable[[], Context], planner: WritePlanner) -> None:
        self.settings = settings
        self.entity = entity
        self._ctx = ctx
        self.planner = planner

    @property
    def ctx(self) -> Context:
        return self._ctx()

    async def closing(self, target: str, outcome: Outcome) -> dict[str, set[str]]:
        """Open exceptions of the records that now reached the target (closed by this commit)."""
        return await self.ctx.desk.open_for(self.entity, target, sorted({w.gid for w, _ in outcome.done}))

    def queue(self, batch: Batch, target: str, outcome: Outcome, closing: dict[str, set[str]]) -> None:
        self._queue_state(batch, target, outcome)
        self._queue_closed(batch, target, outcome, closing)

    def _queue_state(self, pipe: Batch, target: str, outcome: Outcome) -> None:
        ctx = self.ctx
        taken_over: list[ChangeRecord] = []
        for work, result in outcome.done:
            target_id = result.target_id or work.target_id
            if target_id is None:
                continue
            self._queue_written(pipe, target, work, result, target_id)
            back = work.link_back or self._seeded_back(target, work, result, target_id)
            if back is not None:
                taken_over.append(back)
        publish(pipe, ctx.keys, self.settings.streams.partitions, taken_over)
        self._queue_latency(pipe, target, outcome)
        queue_delivered(pipe, ctx.keys, self.settings, self.entity, target,  # SLA clocks, backlog
                        {w.gid for w, _ in outcome.done} | outcome.settled)
        settled = sorted({g for w, _ in outcome.done for g in w.gids} | {r.gid for r in outcome.exceptions if r.gid})
        if settled:
            ctx.projections.created(pipe, target, self.entity, settled)
        for record in outcome.exceptions:
            file_exception(pipe, ctx.keys, record)
        for event in outcome.events:
            ctx.audit.queue(pipe, event)

    def _queue_latency(self, pipe: Batch, target: str, outcome: Outcome) -> None:
        """Source change to this write, per written record (``stats:latency``)."""
        now = now_ms()
        latencies = [now - started_ms(w.source.version, w.source.observed_ms, now)
                     for w, _ in outcome.done if w.source is not None]
        self.ctx.stats.add(pipe, Stats.LATENCY, bucket_counts(self.entity, target, latencies))

    def _queue_written(self, pipe: Batch, target: str, work: RecordWork, result: WriteResult, target_id: str) -> None:
        """What one written record leaves: its link, the versions it applied, what the target holds now."""
        ctx = self.ctx
        if work.new_link:
            ctx.identity.link(pipe, self.entity, work.gid, target, target_id)
        if work.linked_from is not None:
            pipe.hdel(ctx.keys.xref(self.entity, work.linked_from), target)
        for source, version in work.versions.items():  # an adjustment applied its original's change
            ctx.versions.record(pipe, target, self.entity, work.original_gid or work.gid, source, version)
        if work.adjusts is not None:
            ctx.projections.remember(pipe, target, self.entity, work.adjusts[0], {ADJUSTED_FIELD: work.adjusts[1]})
        ctx.projections.remember(pipe, target, self.entity, target_id, self._written(target, work, result),
                                 result.version)
        ctx.projections.clear_inflight(pipe, target, self.entity, target_id)

    def _written(self, target: str, work: RecordWork, result: WriteResult) -> dict[str, Any]:
        """What the target holds now, as its poller will read it back: canonical spelling, references in
        their global form."""
        written = {**self.canonical(result.fields or work.fields),
                   **{k: v for k, v in work.fields.items() if k in self.planner.reference_fields(target)}}
        if work.source is not None and work.source.op == "delete":
            written[DELETED_FIELD] = True  # deleted by its owner: later edits here are not changes
        return written

    def _seeded_back(self, target: str, work: RecordWork, result: WriteResult, target_id: str) -> ChangeRecord | None:
        """A create that seeded fields the target owns publishes them as the target's (they are its now)."""
        if not work.seeded or not result.created or work.source is None:
            return None
        return ChangeRecord.taken_over("seed", target, target_id, int(result.version or 0),
                                       self.canonical(work.seeded), cause=work.source)

    def _queue_closed(self, pipe: Batch, target: str, outcome: Outcome, closing: dict[str, set[str]]) -> None:
        """Open exceptions of records that now reached the target are closed by this success."""
        for work, _ in outcome.done:
            if work.gid in closing:
                source = work.source
                self.ctx.desk.queue_closed(
                    pipe, self.entity, target, work.gid, closing.pop(work.gid),
                    f"a later change ({source.change_id if source else '?'}) reached {target}",
                    source.correlation_id if source else "")

    def canonical(self, fields: dict[str, Any]) -> dict[str, Any]:
        """What the target holds, in canonical spelling (as its poller will read it back)."""
        try:
            return normalise_fields(self.entity, fields)
        except msgspec.ValidationError:
            return dict(fields)
