"""The steps of closed-won provisioning, each idempotent and each recording what it made.

* ``customer``: the deal's account meets the ERP's rules (required fields, a currency the firm bills in, a
  legal entity for the delivery region) and has reached the ERP and the PSA (the account sync creates or
  links it there: matching by tax id or name prevents a duplicate customer).
* ``project``: the project in the PSA, with a global id derived from the deal's, so a retry finds the
  project an earlier attempt made instead of creating another.
* ``tasks``: the service line's work breakdown as the project's tasks ("<phase> / <task>").
* ``writeback``: the project (global id and PSA id) and the ERP customer id on the CRM opportunity.

A step returns ``Next`` (move on), ``Wait`` (the sync has not caught up yet: try again soon) or raises a
``ConnectorError`` (``Permanent``: the process parks and files an exception naming the step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accord.actors.context import Context
from accord.actors.provision.process import Provision
from accord.config.settings import ProjectTemplate, ProvisioningSettings
from accord.connectors.base import Connector, WriteOp, WriteResult
from accord.connectors.errors import Permanent
from accord.streams.batch import Batch


@dataclass(frozen=True)
class Next:
    detail: str


@dataclass(frozen=True)
class Wait:
    why: str


Outcome = Next | Wait


class ProvisionSteps:
    def __init__(self, ctx: Context, settings: ProvisioningSettings, connector: Callable[[str], Connector]) -> None:
        self.ctx = ctx
        self.conf = settings
        self.connector = connector

    async def deal(self, process: Provision) -> dict[str, Any]:
        """The opportunity as the CRM last showed it (references as global ids)."""
        [seen], _ = await self.ctx.projections.load(self.conf.crm, "opportunity", [process.crm_id])
        if not seen:
            raise Permanent(self.conf.crm, f"opportunity {process.crm_id} is no longer in {self.conf.crm}")
        return seen

    async def customer(self, process: Provision) -> Outcome:
        deal = await self.deal(process)
        account = deal.get("account")
        if not account:
            raise Permanent(self.conf.crm, f"opportunity {process.crm_id} has no account: set it in the CRM")
        xref = await self._xref("account", account)
        crm_account = xref.get(self.conf.crm)
        if crm_account is None:
            return Wait(f"account {account} is not linked to {self.conf.crm} yet")
        [fields], _ = await self.ctx.projections.load(self.conf.crm, "account", [crm_account])
        if fields is None:  # the deal was read before its account: the account's read is on its way
            return Wait(f"account {crm_account} has not been read from {self.conf.crm} yet")
        missing = [f for f in self.conf.required if fields.get(f) in (None, "")]
        if missing:
            raise Permanent(self.conf.erp, f"account {crm_account or account} lacks {', '.join(missing)}, which the "
                                           "ERP requires (provisioning.required): fill them in the CRM")
        currency = deal.get("currency") or fields.get("currency")
        if self.conf.currencies and currency not in self.conf.currencies:
            raise Permanent(self.conf.erp, f"currency {currency!r} is not one the firm bills in "
                                           f"({', '.join(self.conf.currencies)}): fix the deal or the account")
        process.legal_entity = self._legal_entity(deal.get("delivery_region"))
        if not xref.get(self.conf.erp):
            return Wait(f"account {account} has not reached {self.conf.erp} yet")
        if not xref.get(self.conf.psa):
            return Wait(f"account {account} has not reached {self.conf.psa} yet")
        process.customer_id, process.client_id = xref[self.conf.erp], xref[self.conf.psa]
        return Next(f"customer {process.customer_id} in {self.conf.erp}, client {process.client_id} in "
                    f"{self.conf.psa}, legal entity {process.legal_entity or '-'}")

    def _legal_entity(self, region: Any) -> str:
        if not self.conf.legal_entities:
            return ""
        entity = self.conf.legal_entities.get(str(region))
        if entity is None:
            raise Permanent(self.conf.erp, f"delivery region {region!r} has no legal entity: add "
                                           f"provisioning.legal_entities.{region} or fix the deal's region")
        return entity

    async def project(self, process: Provision) -> Outcome:
        process.project_gid = process.project_gid or f"prov{process.opportunity}"
        known = (await self._xref("project", process.project_gid)).get(self.conf.psa)
        if known:
            process.project_id = known
            return Next(f"project {known} already in {self.conf.psa}")
        deal = await self.deal(process)
        template = self.template(deal)
        budget = template.budget_hours or sum(t.budget_hours or 0 for p in template.phases for t in p.tasks) or None
        fields = {"account": process.client_id, "name": f"{deal.get('name') or 'Project'} #{process.crm_id[-5:]}",
                  "start_date": deal.get("close_date"), "billing_model": template.billing_model
                  or deal.get("billing_model"), "contract_value": deal.get("amount"), "budget_hours": budget}
        result = await self._write(self.conf.psa, "project", process, process.project_gid,
                                   {k: v for k, v in fields.items() if v is not None})
        process.project_id = str(result.target_id)
        return Next(f"project {process.project_id} {'created' if result.created else 'found'} in {self.conf.psa}")

    async def tasks(self, process: Provision) -> Outcome:
        deal = await self.deal(process)
        name = self._template_name(deal)
        wanted = [(phase.name, task) for phase in self.conf.templates[name].phases for task in phase.tasks]
        gids = [f"{process.project_gid}.{index}" for index in range(len(wanted))]
        made = {gid: xref.get(self.conf.psa) for gid, xref in
                zip(gids, await self.ctx.identity.xrefs("task", gids), strict=True)}
        todo = [(gid, {k: v for k, v in {"project": process.project_id, "name": f"{phase} / {task.name}",
                                         "billable": task.billable, "budget_hours": task.budget_hours}.items()
                       if v is not None})
                for gid, (phase, task) in zip(gids, wanted, strict=True) if made[gid] is None]
        for gid, fields in todo:  # one at a time: Harvest makes each task's global task and its assignment
            made[gid] = str((await self._write(self.conf.psa, "task", process, gid, fields)).target_id)
        process.tasks = [str(made[gid]) for gid in gids]
        return Next(f"{len(gids)} task(s) of the {name} work breakdown ({len(todo)} created now)")

    async def writeback(self, process: Provision) -> Outcome:
        fields = {"project": process.project_gid, "project_ref": process.project_id,
                  "customer_ref": process.customer_id}
        await self._write(self.conf.crm, "opportunity", process, process.opportunity, fields,
                          target_id=process.crm_id)
        return Next(f"project {process.project_id} and customer {process.customer_id} on opportunity "
                    f"{process.crm_id}")

    def template(self, deal: dict[str, Any]) -> ProjectTemplate:
        return self.conf.templates[self._template_name(deal)]

    def _template_name(self, deal: dict[str, Any]) -> str:
        line = str(deal.get("service_line") or "")
        if line in self.conf.templates:
            return line
        if "default" in self.conf.templates:
            return "default"
        raise Permanent(self.conf.psa, f"no work breakdown for service line {line!r}: add "
                                       f"provisioning.templates.{line or 'default'}")

    async def _xref(self, entity: str, gid: str) -> dict[str, str]:
        return (await self.ctx.identity.xrefs(entity, [gid]))[0]

    async def _write(self, system: str, entity: str, process: Provision, gid: str, fields: dict[str, Any],
                     target_id: str | None = None) -> WriteResult:
        [result] = await self._write_many(system, entity, process, [(gid, fields)], target_id)
        return result

    async def _write_many(self, system: str, entity: str, process: Provision, records: list[tuple[str, dict[str, Any]]],
                          target_id: str | None = None) -> list[WriteResult]:
        """Idempotent writes in the connector's batches; new records are linked to their global ids at
        once (the next step relies on them). The first refused record raises."""
        connector = self.connector(system)
        ops = [WriteOp(gid=gid, kind="upsert", fields=fields, key=f"provision:{gid}:{system}", target_id=target_id,
                       correlation_id=process.correlation_id) for gid, fields in records]
        results: list[WriteResult] = []
        for start in range(0, len(ops), max(1, connector.batch_size)):
            results += await connector.write(entity, ops[start:start + connector.batch_size])
        batch = Batch()
        for result in results:
            if result.ok and target_id is None and result.target_id:
                self.ctx.identity.link(batch, entity, result.gid, system, str(result.target_id))
        await batch.apply(self.ctx.redis)
        for result in results:
            if not result.ok:
                raise result.error or Permanent(system, f"{entity} {result.gid}: write refused")
        return results
