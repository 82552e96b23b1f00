"""Reconciliation: prove that a source and a target agree on one entity, or say exactly where not.

A job reads both systems in full through their connectors (the real APIs, as the pollers do), maps the
records the way the pipeline does (configured maps, canonical spelling, global ids in references) and
pairs them through the xref. It reports records missing from the target, extra in the target, paired
records whose compared fields differ, and per-period totals. Reading is all it does to the systems; the
report is kept in Redis for metrics and the desk, and findings optionally become exceptions (one per
record and kind, filed once however often the job runs).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from loguru import logger
from redis.asyncio import Redis

from accord.actors.budget import shared_budget
from accord.actors.canonical import Canonicaliser
from accord.actors.governance import meets
from accord.actors.references import References
from accord.config.settings import ReconcileJob, Settings
from accord.connectors.base import Connector, SourceRecord
from accord.connectors.registry import build_connector
from accord.streams.batch import Batch
from accord.streams.exceptions import ExceptionRecord, file_exception
from accord.streams.keys import Keys
from accord.streams.state import Identity, RedisTokenCache

LISTED = 200  # findings kept per kind in a stored report (counts are always complete)


class Finding(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: str  # missing | extra | mismatched
    gid: str = ""
    source_id: str = ""
    target_id: str = ""
    period: str = ""
    differences: dict[str, list[Any]] = {}  # field -> [source value, target value]


class PeriodTotals(msgspec.Struct, frozen=True, kw_only=True):
    period: str
    field: str
    source: str
    target: str

    @property
    def agrees(self) -> bool:
        return Decimal(self.source) == Decimal(self.target)


class Report(msgspec.Struct, kw_only=True):
    job: str
    entity: str
    source: str
    target: str
    period: str | None
    ran_ms: int
    compared: int = 0
    missing: int = 0
    extra: int = 0
    mismatched: int = 0
    findings: list[Finding] = []
    totals: list[PeriodTotals] = []

    @property
    def agrees(self) -> bool:
        return not (self.missing or self.extra or self.mismatched) and all(t.agrees for t in self.totals)


class Reconciler:
    def __init__(self, settings: Settings, redis: Redis, connectors: Mapping[str, Connector] | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.namespace)
        self.identity = Identity(redis, self.keys)
        self.references = References(settings, self.identity)
        self._given = dict(connectors or {})
        self._connectors = dict(self._given)
        self._canonicalisers: dict[str, Canonicaliser] = {}

    def _connector(self, system: str) -> Connector:
        if system not in self._connectors:
            self._connectors[system] = build_connector(
                system, self.settings.systems[system], budget=shared_budget(self.redis, self.keys, system,
                                                                            self.settings.systems[system]),
                token_cache=RedisTokenCache(self.redis, self.keys, system))
        return self._connectors[system]

    def _canonicaliser(self, system: str) -> Canonicaliser:
        if system not in self._canonicalisers:
            self._canonicalisers[system] = Canonicaliser(self.settings, system, self.references)
        return self._canonicalisers[system]

    async def aclose(self) -> None:
        for system, connector in self._connectors.items():
            if system not in self._given:
                await connector.aclose()
        self._connectors = dict(self._given)

    async def run(self, name: str, job: ReconcileJob, period: str | None = None) -> Report:
        """Compare, store the report, and file exceptions when the job asks for them."""
        source = await self._snapshot(job.source, job.entity)
        target = await self._snapshot(job.target, job.entity)
        report = self._compare(name, job, source, target, period)
        await self._store(report, job)
        logger.bind(job=name, entity=job.entity).info(
            "reconcile {}: {} compared, {} missing, {} extra, {} mismatched", name, report.compared,
            report.missing, report.extra, report.mismatched)
        return report

    async def _snapshot(self, system: str, entity: str) -> dict[str, SourceRecord]:
        """Every live record of ``entity`` in ``system``, canonical, keyed by global id."""
        connector = self._connector(system)
        records: list[SourceRecord] = []
        cursor: str | None = None
        while True:
            page = await connector.fetch(entity, cursor)
            records += [r for r in page.records if not r.deleted and not r.error]
            cursor = page.cursor
            if not page.more:
                break
        latest = {r.id: r for r in records}  # a record changed mid-read may come twice: keep the last
        canonical = await self._canonicaliser(system).records(entity, list(latest.values()))
        gids = await self.identity.gids_for(entity, system, [r.id for r in canonical])
        return {gids.get(r.id) or f"?{system}:{r.id}": r for r in canonical if not r.error}

    def _compare(self, name: str, job: ReconcileJob, source: dict[str, SourceRecord],
                 target: dict[str, SourceRecord], period: str | None) -> Report:
        where = job.where if job.where is not None else self.settings.entities[job.entity].when.get(job.target, {})
        report = Report(job=name, entity=job.entity, source=job.source, target=job.target, period=period,
                        ran_ms=int(time.time() * 1000))
        target = _fold_adjustments(target, sorted({*job.fields, *job.sum}))
        expected = {g: r for g, r in source.items() if meets(r.fields, where)
                    and _in_period(r, job.period, period)}
        present = {g: r for g, r in target.items() if _in_period(r, job.period, period)
                   and meets(r.fields, job.target_where)}
        for gid, record in expected.items():
            other = target.get(gid)
            if other is None:
                report.missing += 1
                self._note(report, Finding(kind="missing", gid=gid, source_id=record.id,
                                           period=_period_of(record, job.period)))
                continue
            report.compared += 1
            differences = {f: [record.fields.get(f), other.fields.get(f)] for f in job.fields
                           if not _same(record.fields.get(f), other.fields.get(f))}
            if differences:
                report.mismatched += 1
                self._note(report, Finding(kind="mismatched", gid=gid, source_id=record.id, target_id=other.id,
                                           period=_period_of(record, job.period), differences=differences))
        for gid, record in present.items():
            if gid not in expected and not (gid in source and meets(source[gid].fields, where)):
                report.extra += 1
                self._note(report, Finding(kind="extra", gid="" if gid.startswith("?") else gid,
                                           target_id=record.id, period=_period_of(record, job.period)))
        report.totals = _totals(job, expected, present)
        return report

    @staticmethod
    def _note(report: Report, finding: Finding) -> None:
        if sum(1 for f in report.findings if f.kind == finding.kind) < LISTED:
            report.findings.append(finding)

    async def _store(self, report: Report, job: ReconcileJob) -> None:
        pipe = Batch()
        pipe.hset(self.keys.reconcile(report.job), mapping={
            "report": msgspec.json.encode(report), "ran_ms": report.ran_ms, "missing": report.missing,
            "extra": report.extra, "mismatched": report.mismatched, "compared": report.compared,
            "totals_off": sum(1 for t in report.totals if not t.agrees)})
        if job.open_exceptions:
            await self._file(pipe, report)
        await pipe.apply(self.redis)

    async def _file(self, pipe: Batch, report: Report) -> None:
        ids = [f"recon:{report.job}:{f.kind}:{f.gid or f.target_id}" for f in report.findings]
        known = await self.redis.hmget(self.keys.exception_index(), ids) if ids else []
        for eid, finding, exists in zip(ids, report.findings, known, strict=True):
            if exists is None:
                file_exception(pipe, self.keys, _exception(eid, report, finding))


def _exception(eid: str, report: Report, finding: Finding) -> ExceptionRecord:
    where = {"missing": f"in {report.source} ({finding.source_id}) but not in {report.target}",
             "extra": f"in {report.target} ({finding.target_id}) without a matching {report.source} record",
             "mismatched": f"{report.source} {finding.source_id} and {report.target} {finding.target_id} differ: "
                           + "; ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in finding.differences.items())}
    return ExceptionRecord(
        exception_id=eid, reason="reconcile", entity=report.entity, gid=finding.gid,
        target=report.target if finding.kind != "missing" else "", source=report.source,
        source_id=finding.source_id, created_ms=report.ran_ms,
        message=f"reconcile {report.job}: {report.entity} {where[finding.kind]}"
                + (f" (period {finding.period})" if finding.period else "")
                + "; fix the record, or replay it: accord replay --entity " + report.entity)


def _fold_adjustments(records: dict[str, SourceRecord], fields: list[str]) -> dict[str, SourceRecord]:
    """Adjustment records (``<gid>~adj<version>``, written for changes to locked records) count towards
    their original: its numeric fields become the sums. An adjustment whose original is gone stays (extra)."""
    out = {g: r for g, r in records.items() if "~adj" not in g}
    for gid, adjustment in records.items():
        if "~adj" not in gid:
            continue
        original_gid = gid.split("~adj", 1)[0]
        original = out.get(original_gid)
        if original is None:
            out[gid] = adjustment
            continue
        summed = dict(original.fields)
        for field in fields:
            if adjustment.fields.get(field) is not None and _numeric(summed.get(field)):
                summed[field] = _text(_decimal(summed.get(field)) + _decimal(adjustment.fields.get(field)))
        out[original_gid] = msgspec.structs.replace(original, fields=summed)
    return out


def _numeric(value: Any) -> bool:
    try:
        Decimal(str(value))
    except (InvalidOperation, ValueError):
        return False
    return value is not None and not isinstance(value, bool)


def _period_of(record: SourceRecord, field: str | None) -> str:
    value = record.fields.get(field) if field else None
    return str(value)[:7] if value else ""


def _in_period(record: SourceRecord, field: str | None, period: str | None) -> bool:
    return period is None or not field or _period_of(record, field) == period


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except (InvalidOperation, ValueError):
        return False


def _totals(job: ReconcileJob, expected: dict[str, SourceRecord], present: dict[str, SourceRecord]) -> list[PeriodTotals]:
    sums: dict[tuple[str, str], list[Decimal]] = {}
    for side, records in ((0, expected), (1, present)):
        for record in records.values():
            for field in job.sum:
                key = (_period_of(record, job.period) or "all", field)
                pair = sums.setdefault(key, [Decimal(0), Decimal(0)])
                pair[side] += _decimal(record.fields.get(field))
    return [PeriodTotals(period=p, field=f, source=_text(s), target=_text(t))
            for (p, f), (s, t) in sorted(sums.items())]


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"
