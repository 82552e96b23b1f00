"""The provisioner: turns won deals into customers, projects and work breakdowns (``provision_steps``).

It reads the opportunity change log as its own consumer group (``provision``): a change from the CRM
that makes its opportunity won starts a process (once: a re-delivered or later change of a started deal
does nothing), recorded in the same atomic batch as the XACK. Deals already won when the CRM was first
read are history, not provisioned. Due processes then run step by step; each step's
result is saved before the next runs, so a killed provisioner resumes at the step it was on. A step that
fails for good parks the process and files a ``provisioning`` exception naming the step; retrying that
exception (``accord exceptions retry``) resumes from the same step. Every step is in the deal's trace.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from redis.asyncio import Redis

from accord.actors.loop import LoopActor
from accord.actors.provision.process import STEPS, Provision, Provisions
from accord.actors.provision.steps import Next, ProvisionSteps, Wait
from accord.config.business import deadline_ms
from accord.config.settings import ProvisioningSettings, Settings, SlaSettings
from accord.connectors.base import CallStats, Connector, backoff_delay
from accord.connectors.errors import ConnectorError, Permanent
from accord.streams import business as kpi
from accord.streams.audit import TraceEvent
from accord.streams.batch import Batch
from accord.streams.exceptions import ExceptionRecord, file_exception
from accord.streams.log import Slot, read_slots
from accord.streams.records import ChangeRecord, MalformedEntry, decode, now_ms

GROUP = "provision"
WAIT_S = 2.0


class Provisioner(LoopActor):
    def __init__(self, settings: Settings, redis_url: str, *, redis: Redis | None = None, connectors: dict[str, Connector] | None = None) -> None:
        super().__init__(settings, redis_url, redis)
        assert settings.provisioning is not None
        self.conf: ProvisioningSettings = settings.provisioning
        self._connectors = dict(connectors or {})
        self._owned = set(self._connectors)
        self.call_stats: dict[str, CallStats] = {}
        self.started = 0
        self.finished = 0

    def connector(self, system: str) -> Connector:
        if system not in self._connectors:
            self._connectors[system] = self.ctx.connector(system, stats=self.call_stats.setdefault(system, CallStats()))
        return self._connectors[system]

    @property
    def steps(self) -> ProvisionSteps:
        return ProvisionSteps(self.ctx, self.conf, self.connector)

    @property
    def store(self) -> Provisions:
        return Provisions(self.ctx.redis, self.ctx.keys)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> bool:
        return self._launch(self.run(), name="provisioner")

    async def stop(self) -> None:
        await self._halt()
        await self._flush_call_stats(self.call_stats)
        for system, connector in list(self._connectors.items()):
            if system not in self._owned:
                await connector.aclose()
                del self._connectors[system]
        await self._close_redis()

    async def health(self) -> dict[str, Any]:
        return self._health("provisioner", started=self.started, finished=self.finished)

    async def run(self) -> None:
        while not self._stopping:
            try:
                took_in = await self.intake()
                ran = await self.run_due()
            except Exception:
                logger.exception("provisioner step failed; continuing")
                took_in, ran = 0, 0
            if not took_in and not ran:
                await asyncio.sleep(0.2)

    # -- intake: won deals start processes ------------------------------------------------------
    def _slots(self) -> list[Slot]:
        return [Slot.make(self.ctx.keys, "opportunity", p, GROUP) for p in range(self.settings.streams.partitions)]

    async def intake(self) -> int:
        """Read new opportunity changes; start a process for each newly won deal. Returns entries read."""
        slots = self._slots()
        batches = await read_slots(self.ctx.redis, slots, self.settings.streams.read_count)
        pipe = Batch()
        won: list[ChangeRecord] = []
        for slot, entries in zip(slots, batches, strict=True):
            for entry_id, fields in entries:
                won += self._newly_won(fields)
                pipe.xack(slot.stream, slot.group, entry_id)
        await self._start_processes(pipe, won)
        if len(pipe):
            await pipe.apply(self.ctx.redis)
        return sum(len(entries) for entries in batches)

    def _newly_won(self, fields: dict[bytes, bytes]) -> list[ChangeRecord]:
        """The entry as a change that makes its deal won in the CRM (else nothing)."""
        try:
            change = decode(fields)
        except MalformedEntry:
            return []  # the writers file malformed entries; the provisioner only ignores them
        if change.source != self.conf.crm or change.op == "delete" or change.fields.get("is_won") is not True:
            return []
        return [change]

    async def _start_processes(self, pipe: Batch, won: list[ChangeRecord]) -> None:
        """One process per deal still won now, not started before, and won after the CRM's first read."""
        loaded_ms = await self.ctx.cursors.loaded_ms(self.conf.crm, "opportunity") if won else None
        first: dict[str, ChangeRecord] = {}
        for change in won:  # else history; a deal won twice in one read starts once
            if loaded_ms is not None and change.observed_ms > loaded_ms:
                first.setdefault(change.gid, change)
        won = list(first.values())
        if not won:
            return
        deals, _ = await self.ctx.projections.load(self.conf.crm, "opportunity", [c.source_id for c in won])
        started = await self.ctx.redis.hmget(self.ctx.keys.provisions(), [c.gid for c in won])
        for change, deal, known in zip(won, deals, started, strict=True):
            if not deal or deal.get("is_won") is not True or known is not None:
                continue
            process = Provision(opportunity=change.gid, crm_id=change.source_id,
                                correlation_id=change.correlation_id, started_ms=now_ms())
            self.store.start(pipe, process)
            for name, sla in self._slas():  # won: the clock to customer and project starts
                kpi.queue_clock(pipe, self.ctx.keys, name, change.gid,
                                deadline_ms(sla, self.settings.business.invoice_runs, process.started_ms))
            self.ctx.audit.queue(pipe, TraceEvent(correlation_id=change.correlation_id, kind="provisioning started",
                                                  entity="opportunity", gid=change.gid, system=self.conf.crm,
                                                  record=change.source_id, detail="deal won"))
            self.started += 1

    def _slas(self) -> list[tuple[str, SlaSettings]]:
        return [(name, sla) for name, sla in self.settings.sla.items() if sla.track == "provisioning"]

    # -- running processes ----------------------------------------------------------------------
    async def run_due(self) -> int:
        ran = 0
        for gid in await self.store.due(now_ms()):
            process = await self.store.get(gid)
            if process is not None and not process.parked and process.step != "done":
                await self.advance(process)
                ran += 1
        return ran

    async def advance(self, process: Provision) -> None:
        """Run the process's steps until it is done, waits or fails; save after every step."""
        while process.step != "done" and not self._stopping:
            step = process.step
            try:
                outcome = await getattr(self.steps, step)(process)
            except ConnectorError as exc:
                await self._failed(process, exc)
                return
            if isinstance(outcome, Wait):
                await self._waiting(process, outcome)
                return
            assert isinstance(outcome, Next)
            process.step = STEPS[STEPS.index(step) + 1]
            process.attempts, process.waiting_since_ms, process.error = 0, 0, ""
            await self._save(process, f"provisioned {step}", outcome.detail, 0 if process.step != "done" else None)
        if process.step == "done":
            self.finished += 1

    async def _save(self, process: Provision, kind: str, detail: str, next_ms: int | None,
                    exception: ExceptionRecord | None = None) -> None:
        pipe = Batch()
        if process.step == "done":
            process.done_ms = now_ms()
            await self._close_exceptions(pipe, process)
        self.store.save(pipe, process, next_ms)
        if STEPS.index(process.step) > STEPS.index("project"):  # customer linked, project made
            for name, _ in self._slas():
                kpi.queue_met(pipe, self.ctx.keys, name, [process.opportunity])
        if exception is not None:
            file_exception(pipe, self.ctx.keys, exception)
        self.ctx.audit.queue(pipe, TraceEvent(correlation_id=process.correlation_id, kind=kind, entity="opportunity",
                                              gid=process.opportunity, system=self.conf.crm, record=process.crm_id,
                                              detail=detail))
        await pipe.apply(self.ctx.redis)

    async def _waiting(self, process: Provision, wait: Wait) -> None:
        now = now_ms()
        process.waiting_since_ms = process.waiting_since_ms or now
        if now - process.waiting_since_ms > self.conf.wait_timeout * 1000:
            await self._failed(process, Permanent(self.conf.erp, f"{wait.why} after waiting "
                                                                 f"{self.conf.wait_timeout:.0f}s (provisioning.wait_timeout)"))
            return
        await self._save(process, "provisioning waits", wait.why, now + int(WAIT_S * 1000))

    async def _failed(self, process: Provision, exc: ConnectorError) -> None:
        process.attempts += 1
        process.error = str(exc)
        if not isinstance(exc, Permanent):
            delay = backoff_delay(process.attempts, base=1.0, cap=float(self.conf.retry_backoff_cap))
            await self._save(process, "provisioning retry", f"step {process.step}: {exc}",
                             now_ms() + int(delay * 1000))
            return
        process.parked = True
        record = ExceptionRecord(
            exception_id=f"provision:{process.opportunity}:{process.step}:{process.attempts}", reason="provisioning",
            entity="opportunity", gid=process.opportunity, target=exc.system or self.conf.crm, source=self.conf.crm,
            source_id=process.crm_id, correlation_id=process.correlation_id, created_ms=now_ms(),
            message=f"closed-won provisioning of opportunity {process.crm_id} stopped at step `{process.step}`: "
                    f"{exc}; fix it, then retry this exception to resume from that step")
        logger.bind(correlation_id=process.correlation_id, gid=process.opportunity).error(record.message)
        await self._save(process, "provisioning parked", record.message, None, record)

    async def _close_exceptions(self, pipe: Batch, process: Provision) -> None:
        """A finished process closes any of its exceptions still open (a fix made outside the desk)."""
        for system in sorted({self.conf.crm, self.conf.psa, self.conf.erp}):
            found = await self.ctx.desk.open_for("opportunity", system, [process.opportunity])
            if found:
                self.ctx.desk.queue_closed(pipe, "opportunity", system, process.opportunity,
                                           found[process.opportunity], "provisioning finished",
                                           process.correlation_id)

