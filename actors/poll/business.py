"""What a poller page adds to the business-process state (``streams.business``), in the page's own
atomic batch: SLA clocks and backlog entries of the changes it publishes (started when a change that a
target receives meets the target's ``when``; stopped when it no longer does, or on a delete), and, on
the owner's pages of time and expenses, each record's unbilled contribution."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from redis.asyncio import Redis

from accord.actors.governance import meets
from accord.actors.poll.page import PagePlan
from accord.config.business import deadline_ms
from accord.config.settings import Settings
from accord.streams import business as kpi
from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.records import ChangeRecord

Queue = Callable[[Batch], None]


async def plan_business(redis: Redis, keys: Keys, settings: Settings, system: str, entity: str, plan: PagePlan,
                        now_ms: int) -> None:
    """Add to ``plan.later`` what this page changes in the KPIs (read: the stored unbilled contributions)."""
    states = {system_id: fields for system_id, fields, _ in plan.remember}
    for change in plan.changes:
        for target in settings.targets_of(entity):
            if target != system:
                plan.later.append(_delivery(keys, settings, entity, target, change, states.get(change.source_id),
                                            now_ms))
    if entity in kpi.UNBILLED and settings.entities[entity].owner == system and states:
        ids = sorted(states)
        stored = await kpi.stored_contributions(redis, keys, system, entity, ids)
        for record_id, old in zip(ids, stored, strict=True):
            new = kpi.contribution(entity, states[record_id])
            plan.later.append(partial(kpi.queue_contribution, keys=keys, system=system, entity=entity,
                                      record_id=record_id, old=old, new=new))


def _delivery(keys: Keys, settings: Settings, entity: str, target: str, change: ChangeRecord,
              state: dict[str, Any] | None, now_ms: int) -> Queue:
    """Start or stop the clocks and the backlog entry of one published change towards ``target``."""
    ent = settings.entities[entity]
    if change.only_to and change.only_to != target:
        return lambda pipe: None
    sent = set(change.fields) - set(ent.exclude.get(target, []))
    owed = change.op != "delete" and meets(state or change.fields, dict(ent.when.get(target, {})))
    slas = [(name, sla) for name, sla in settings.sla.items()
            if sla.track == "delivery" and sla.entity == entity and sla.target == target]
    backlog = entity in settings.business.backlog

    def queue(pipe: Batch) -> None:
        if not owed:
            for name, _ in slas:
                kpi.queue_met(pipe, keys, name, [change.gid])
            if backlog:
                kpi.queue_arrived(pipe, keys, entity, target, [change.gid])
            return
        if not sent:
            return  # nothing this target receives changed: nothing is owed to it
        for name, sla in slas:
            kpi.queue_clock(pipe, keys, name, change.gid, deadline_ms(sla, settings.business.invoice_runs, now_ms))
        if backlog:
            kpi.queue_awaiting(pipe, keys, entity, target, change.gid, now_ms)
    return queue
