"""The exception desk: list, inspect, retry (optionally edited), resolve and skip exceptions.

An exception's record (``exceptions:index``) never changes; its *desk state* lives beside it in
``exceptions:state`` and is ``open`` until one of:

* ``retried``: an operator re-published its change (to the failed target only); if that fails too, a
  new exception is filed for the new delivery;
* ``resolved`` / ``skipped``: an operator fixed it by hand, or decided it needs nothing;
* ``closed``: a later change of the same record reached the same system (the writer closes it).

Every action is audited twice: in the desk's own stream (``audit:desk``: who did what, when) and in the
trail of the business flow (``trace:{correlation_id}``). A retry publishes its change and marks the
exception in one atomic batch, so running the same retry twice publishes once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis

from accord.actors.provision.process import Provisions
from accord.model.entities import validate_fields
from accord.streams.audit import TraceEvent
from accord.streams.batch import Batch, smembers_many
from accord.streams.exception_ledger import queue_settled
from accord.streams.exceptions import ExceptionRecord, decode_exception, record_key
from accord.streams.publish import publish
from accord.streams.records import (
    ChangeRecord,
    MalformedEntry,
    decode,
    now_ms,
)
from accord.streams.replies import binary, binary_or_none, zset_scored
from accord.streams.scope import Scope

DeskState = Literal["open", "retried", "resolved", "skipped", "closed"]
STATES: tuple[str, ...] = ("open", "retried", "resolved", "skipped", "closed")
_CHUNK = 500  # exceptions read per round trip while paging


class DeskStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    state: DeskState = "open"
    by: str = ""
    at_ms: int = 0
    note: str = ""
    retried_as: str = ""  # the change id a retry published


class DeskError(ValueError):
    """An action the desk refuses; the message names the exception, what is wrong and what to do."""


@dataclass(frozen=True)
class Filters:
    """Which exceptions to show or act on; ``None`` matches anything."""

    state: str | None = "open"
    system: str | None = None  # the failed target, or the source a record could not be read from
    entity: str | None = None
    reason: str | None = None
    correlation_id: str | None = None
    older_than_s: float | None = None
    newer_than_s: float | None = None

    def match(self, record: ExceptionRecord, status: DeskStatus, now: int) -> bool:
        age_s = (now - record.created_ms) / 1000
        return ((self.state is None or status.state == self.state)
                and (self.system is None or self.system in (record.target or record.source,))
                and (self.entity is None or record.entity == self.entity)
                and (self.reason is None or record.reason == self.reason)
                and (self.correlation_id is None or record.correlation_id == self.correlation_id)
                and (self.older_than_s is None or age_s >= self.older_than_s)
                and (self.newer_than_s is None or age_s <= self.newer_than_s))


@dataclass(frozen=True)
class Entry:
    record: ExceptionRecord
    status: DeskStatus

    def payload(self) -> dict[str, Any] | None:
        """The change that failed (writer side), or the fields that could not be read (poller side)."""
        if not self.record.payload:
            return None
        if self.record.stream:
            try:
                change: dict[str, Any] = msgspec.to_builtins(decode({b"d": self.record.payload}))
                return change
            except MalformedEntry:
                return None
        try:
            fields = msgspec.msgpack.decode(self.record.payload)
        except msgspec.DecodeError:
            return None
        return {"fields": fields} if isinstance(fields, dict) else None

    def as_json(self, *, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self.record)
        out.pop("payload", None)
        out.pop("state", None)
        out["status"] = msgspec.to_builtins(self.status)
        out.setdefault("status", {}).setdefault("state", "open")
        if full:
            out["payload"] = self.payload()
        return out


Entries = list[Entry]
MaybeEntries = list[Entry | None]
Ids = list[tuple[str, int]]  # (exception id, filed ms)


class ExceptionDesk:
    def __init__(self, redis: Redis, scope: Scope) -> None:
        self.redis = redis
        self.scope = scope
        self.keys = scope.keys
        self.audit = scope.audit

    # -- reading -----------------------------------------------------------------------------
    async def list(self, filters: Filters) -> Entries:
        """Every matching exception, oldest first (read through the ledger: open ones only, by default)."""
        entries, after = await self.page(filters, limit=_CHUNK)
        while after:
            more, after = await self.page(filters, limit=_CHUNK, after=after)
            entries += more
        return entries

    async def page(self, filters: Filters, limit: int, after: str = "") -> tuple[Entries, str]:
        """Up to ``limit`` matching exceptions filed after the cursor ``after``, oldest first, and the cursor
        of the next page ("" after the last). Open ones are read from the open ledger, others from all."""
        source = self.keys.exceptions_open_all() if filters.state == "open" else self.keys.exceptions_by_time()
        mark = _Cursor.parse(after)
        found: Entries = []
        now = now_ms()
        while True:
            ids = await self._ids_after(source, mark)
            if not ids:
                return found, ""
            for (eid, ms), entry in zip(ids, await self._entries([eid for eid, _ in ids]), strict=True):
                mark = _Cursor(ms, eid)
                if entry is not None and filters.match(entry.record, entry.status, now):
                    found.append(entry)
                    if len(found) == limit:
                        return found, str(mark)

    async def _ids_after(self, source: str, mark: _Cursor) -> Ids:
        """The next chunk of (id, filed ms) after ``mark``, in (time, id) order."""
        ids: Ids = []
        offset = 0
        while not ids:
            chunk = await self.redis.zrangebyscore(source, mark.ms, "+inf", start=offset, num=_CHUNK, withscores=True)
            if not chunk:
                return []
            ids = [(m, int(score)) for m, score in zset_scored(chunk) if (int(score), m) > (mark.ms, mark.eid)]
            offset += _CHUNK
        return ids

    async def _entries(self, ids: Sequence[str]) -> MaybeEntries:
        records = await self.redis.hmget(self.keys.exception_index(), list(ids))
        states = await self.redis.hmget(self.keys.exception_state(), list(ids))
        return [Entry(decode_exception(binary(data)), _status(binary_or_none(state))) if data is not None else None
                for data, state in zip(records, states, strict=True)]

    async def get(self, exception_id: str) -> Entry:
        data = await self.redis.hget(self.keys.exception_index(), exception_id)
        if data is None:
            raise DeskError(f"no exception `{exception_id}`: list them with `accord exceptions list`")
        state = await self.redis.hget(self.keys.exception_state(), exception_id)
        return Entry(decode_exception(binary(data)), _status(binary_or_none(state)))

    # -- acting ------------------------------------------------------------------------------
    async def retry(self, exception_id: str, by: str, edit: Mapping[str, Any] | None = None) -> str:
        """Re-publish the exception's change (with ``edit`` applied to its fields) to the system it
        failed to reach; returns the new change id."""
        entry = await self.get(exception_id)
        self._require_open(entry, "retried")
        if entry.record.reason == "provisioning":
            return await self._resume_provisioning(entry, by, edit)
        change = self._retry_change(entry, edit)
        pipe = Batch()
        publish(pipe, self.keys, self.scope.partitions, [change])
        detail = f"retried as {change.change_id}" + (f" with {', '.join(sorted(edit))} edited" if edit else "")
        self._close(pipe, entry, DeskStatus(state="retried", by=by, at_ms=now_ms(), note=detail,
                                             retried_as=change.change_id), "retry")
        await pipe.apply(self.redis)
        return change.change_id

    async def _resume_provisioning(self, entry: Entry, by: str, edit: Mapping[str, Any] | None) -> str:
        """A parked closed-won process runs again from the step it stopped at."""
        record = entry.record
        if edit:
            raise DeskError(f"exception `{record.exception_id}`: a provisioning step has no payload to edit; fix "
                            "the deal or the account in the CRM (or the config), then retry without --set")
        provisions = Provisions(self.redis, self.keys)
        process = await provisions.get(record.gid)
        if process is None:
            raise DeskError(f"exception `{record.exception_id}`: no provisioning process for {record.gid}")
        process.parked, process.attempts, process.waiting_since_ms = False, 0, 0
        pipe = Batch()
        provisions.save(pipe, process, 0)
        self._close(pipe, entry, DeskStatus(state="retried", by=by, at_ms=now_ms(),
                                             note=f"resumes at step {process.step}",
                                             retried_as=f"provision:{record.gid}"), "retry")
        await pipe.apply(self.redis)
        return f"provision:{record.gid}:{process.step}"

    async def resolve(self, exception_id: str, by: str, note: str = "") -> None:
        await self._settle(exception_id, "resolved", by, note)

    async def skip(self, exception_id: str, by: str, note: str = "") -> None:
        await self._settle(exception_id, "skipped", by, note)

    async def _settle(self, exception_id: str, state: DeskState, by: str, note: str) -> None:
        entry = await self.get(exception_id)
        self._require_open(entry, state)
        pipe = Batch()
        self._close(pipe, entry, DeskStatus(state=state, by=by, at_ms=now_ms(), note=note), state)
        await pipe.apply(self.redis)

    @staticmethod
    def _require_open(entry: Entry, verb: str) -> None:
        status = entry.status
        if status.state != "open":
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(status.at_ms / 1000)) if status.at_ms else "?"
            raise DeskError(f"exception `{entry.record.exception_id}` is already {status.state} "
                            f"(by {status.by or 'accord'} at {when} UTC{': ' + status.note if status.note else ''}); "
                            f"only open exceptions can be {verb}")

    def _close(self, pipe: Batch, entry: Entry, status: DeskStatus, action: str) -> None:
        record = entry.record
        pipe.hset(self.keys.exception_state(), record.exception_id, msgspec.msgpack.encode(status))
        queue_settled(pipe, self.keys, record.entity, [record.exception_id], status.at_ms, record.reason)
        system, key = record_key(record)
        if system and key:
            pipe.srem(self.keys.exceptions_open(record.entity, system, key), record.exception_id)
        pipe.xadd(self.keys.desk_audit(), {"at_ms": status.at_ms, "by": status.by, "action": action,
                                          "exception_id": record.exception_id, "note": status.note})
        self.audit.queue(pipe, TraceEvent(
            correlation_id=record.correlation_id, kind=f"desk {action}", entity=record.entity, gid=record.gid,
            system=record.target or record.source, detail=f"exception {record.exception_id} {status.state} "
                                                           f"by {status.by}{': ' + status.note if status.note else ''}"))

    def _retry_change(self, entry: Entry, edit: Mapping[str, Any] | None) -> ChangeRecord:
        record = entry.record
        if record.reason == "governance":
            raise DeskError(f"exception `{record.exception_id}` is a non-owner edit in {record.source}: change the "
                            "value in the owner system, or `resolve`/`skip` it; there is nothing to retry")
        patch = self._validated(record, edit)
        if record.stream:
            try:
                change = decode({b"d": record.payload})
            except MalformedEntry as exc:
                raise DeskError(f"exception `{record.exception_id}`: the stream entry could not be decoded ({exc}); "
                                "nothing to retry: `skip` it") from exc
            return change.retried(patch, record.target, record.exception_id)
        if not edit:
            raise DeskError(f"exception `{record.exception_id}`: {record.source} sent a record Accord could not "
                            "read; fix it in the source (it then flows by itself), or retry with the corrected "
                            "fields: `accord exceptions retry ID --set field=value`")
        return ChangeRecord.corrected(record.entity, record.gid, record.source, record.source_id,
                                      _version_of(record), patch, exception_id=record.exception_id,
                                      correlation_id=record.correlation_id)

    @staticmethod
    def _validated(record: ExceptionRecord, edit: Mapping[str, Any] | None) -> dict[str, Any]:
        if not edit:
            return {}
        try:
            return validate_fields(record.entity, dict(edit))
        except msgspec.ValidationError as exc:
            raise DeskError(f"exception `{record.exception_id}`: the edited {record.entity} does not fit the "
                            f"canonical model: {exc}; fix the value and retry") from exc

    # -- closing by a later success (called by writers) ------------------------------------------
    async def open_for(self, entity: str, system: str, records: Sequence[str]) -> dict[str, set[str]]:
        """Open exception ids of these records in ``system`` (records without any are absent)."""
        sets = await smembers_many(self.redis, [self.keys.exceptions_open(entity, system, r) for r in records])
        return {r: ids for r, ids in zip(records, sets, strict=True) if ids}

    def queue_closed(self, pipe: Batch, entity: str, system: str, record: str, exception_ids: Iterable[str],
                     why: str, correlation_id: str = "") -> None:
        """Close these exceptions because a later change of their record succeeded (same atomic batch)."""
        at = now_ms()
        status = msgspec.msgpack.encode(DeskStatus(state="closed", by="accord", at_ms=at, note=why))
        for eid in sorted(exception_ids):
            pipe.hset(self.keys.exception_state(), eid, status)
            pipe.xadd(self.keys.desk_audit(), {"at_ms": at, "by": "accord", "action": "close",
                                              "exception_id": eid, "note": why})
        pipe.srem(self.keys.exceptions_open(entity, system, record), *sorted(exception_ids))
        queue_settled(pipe, self.keys, entity, exception_ids, at)
        self.audit.queue(pipe, TraceEvent(correlation_id=correlation_id, kind="exception closed", entity=entity,
                                          system=system, record=record,
                                          detail=f"{', '.join(sorted(exception_ids))}: {why}"))


@dataclass(frozen=True)
class _Cursor:
    """A position in the desk's listing: after the exception ``eid`` filed at ``ms`` (text: ``ms-eid``)."""

    ms: int = 0
    eid: str = ""

    @staticmethod
    def parse(text_: str) -> _Cursor:
        ms, _, eid = text_.partition("-")
        if text_ and not ms.isdigit():
            raise DeskError(f"page cursor {text_!r} is not one this desk handed out: start again without it")
        return _Cursor(int(ms), eid) if text_ else _Cursor()

    def __str__(self) -> str:
        return f"{self.ms}-{self.eid}"


def _status(raw: bytes | None) -> DeskStatus:
    return msgspec.msgpack.decode(raw, type=DeskStatus) if raw else DeskStatus()


def _version_of(record: ExceptionRecord) -> int:
    """The source version a read-side exception was filed for (its id ends with it)."""
    tail = record.exception_id.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0
