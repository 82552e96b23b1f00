"""Issue 11's done-when for business SLAs: a won deal whose customer the ERP refuses, and approved time that
misses the configured invoice run, on the real poller, writer and provisioner (in-memory systems, fakeredis
and real Redis). Both breaches show on /metrics, and the scraped values fed to ``promtool test rules`` with
the real deploy/alerts.yml raise the SLA alerts. The clock is injected (``render(now_ms=...)``): no sleeping."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

from redis.asyncio import Redis

from accord.actors.provision.provisioner import GROUP
from accord.config.business import deadline_ms
from accord.connectors.errors import Permanent
from accord.pipeline_metrics import render
from accord.streams.log import ensure_groups
from accord.streams.records import now_ms
from accord.streams.replies import text
from tests.test_alerts import ALERTS, promtool
from tests.unit.test_provision import CONFIG as PROVISION_CONFIG
from tests.unit.test_provision import World, _won_deal

CONFIG = PROVISION_CONFIG + """
[entities.time_entry]
owner = "psa"
systems = ["psa", "erp"]
exclude = { erp = ["locked", "invoice"] }
when = { erp = { approval = "approved", billable = true } }
[business]
invoice_runs = "0 6 1 * *"
[sla.won_deal_provisioned]
process = "quote-to-cash"
track = "provisioning"
within = "15m"
severity = "critical"
[sla.approved_time_in_erp]
process = "project-to-revenue"
track = "delivery"
entity = "time_entry"
target = "erp"
before = "invoice run"
severity = "warning"
"""
MINUTE = 60_000
DEAL = 'process="quote-to-cash",severity="critical",sla="won_deal_provisioned"'  # labels as /metrics sorts them
TIME = 'process="project-to-revenue",severity="warning",sla="approved_time_in_erp"'


class SlaWorld(World):
    ENTITIES = ("account", "opportunity", "project", "task", "time_entry")

    def __init__(self, redis: Redis) -> None:
        import tests.unit.test_provision as provision

        provision.CONFIG, saved = CONFIG, provision.CONFIG  # World reads the module's CONFIG and ENTITIES
        provision.ENTITIES, saved_entities = self.ENTITIES, provision.ENTITIES
        try:
            super().__init__(redis)
        finally:
            provision.CONFIG, provision.ENTITIES = saved, saved_entities

    async def setup(self) -> SlaWorld:
        for entity in self.ENTITIES:
            extra = [GROUP] if entity == "opportunity" else []
            await ensure_groups(self.redis, self.keys, entity, [*self.settings.targets_of(entity), *extra], 2)
        return self

    async def settle(self, rounds: int = 4) -> None:
        for _ in range(rounds):
            for entity in self.ENTITIES:
                for system in self.settings.entities[entity].systems:
                    await self.pollers[system].poll_page(entity)
                while await self.writers[entity].sweep():
                    pass
            await self.provisioner.intake()
            await self.provisioner.run_due()

    async def gid(self, entity: str, system: str, record: str) -> str:
        await self.pollers[system].poll_page(entity)
        return text(await self.redis.get(self.keys.xid(entity, system, record)))


def value(body: str, metric: str, labels: str) -> float:
    found = re.search(rf"^{metric}\{{{re.escape(labels)}\}} (\S+)$", body, re.M)
    assert found, f"{metric}{{{labels}}} not on /metrics: " + "\n".join(line for line in body.splitlines() if metric in line)
    return float(found.group(1))


async def test_a_refused_customer_and_time_missing_the_invoice_run_breach_their_slas(any_redis: Redis,
                                                                                     tmp_path: Path) -> None:
    world = await SlaWorld(any_redis).setup()
    erp, psa = world.systems["erp"], world.systems["psa"]
    account, deal = _won_deal(world)
    erp.fail_records[await world.gid("account", "crm", account)] = Permanent("erp", "400 customer refused")
    await world.settle()
    world.systems["crm"].user_update(deal, {"stage": "Closed Won", "is_won": True}, "opportunity")
    entry = psa.user_create({"hours": "6", "billable": True, "approval": "approved", "bill_rate": "150",
                             "currency": "USD", "work_date": dt.date.today().isoformat()}, "time_entry")
    erp.fail_records[await world.gid("time_entry", "psa", entry)] = Permanent("erp", "400 period closed")
    await world.settle()
    assert world.table("psa", "project") == {} and world.table("erp", "time_entry") == {}
    start = now_ms()

    early = (await render(world.redis, world.settings, now_ms=start + 13 * MINUTE)).decode()
    assert value(early, "accord_sla_breaches_total", DEAL) == 0 == value(early, "accord_sla_breaches_total", TIME)
    assert value(early, "accord_sla_at_risk", DEAL) == 1, "two minutes before its deadline the deal is at risk"
    assert value(early, "accord_unbilled_hours", 'age="<7d",entity="time_entry"') == 6
    assert value(early, "accord_backlog_records", 'entity="time_entry",process="project-to-revenue",target="erp"') == 1

    assert value(early, "accord_exceptions_open_by_process", 'age="<1h",process="quote-to-cash"') == 1
    assert value(early, "accord_exceptions_open_by_process", 'age="<1h",process="project-to-revenue"') == 1

    invoice_run = deadline_ms(world.settings.sla["approved_time_in_erp"], "0 6 1 * *", start)
    late_ms = max(start + 16 * MINUTE, invoice_run + MINUTE)
    for _ in range(2):  # a second scrape (and sweep) counts nothing twice
        late = (await render(world.redis, world.settings, now_ms=late_ms)).decode()
        assert value(late, "accord_sla_breaches_total", DEAL) == 1
        assert value(late, "accord_sla_breaches_total", TIME) == 1
        assert value(late, "accord_sla_overdue", DEAL) == 1 == value(late, "accord_sla_overdue", TIME)

    fired = _promtool_alerts(tmp_path, early, late)
    assert ("AccordSlaBreached", "won_deal_provisioned", "critical") in fired
    assert ("AccordSlaBreached", "approved_time_in_erp", "warning") in fired
    assert ("AccordSlaOverdue", "approved_time_in_erp", "warning") in fired


def _promtool_alerts(tmp: Path, early: str, late: str) -> set[tuple[str, str, str]]:
    """Feed the two scrapes (early for 3 minutes, then late) to ``promtool test rules`` against the real
    deploy/alerts.yml; returns the (alert, sla, severity) that the generated test expects and promtool confirms."""
    series, expected = [], []
    for labels in (DEAL, TIME):
        for metric in ("accord_sla_breaches_total", "accord_sla_overdue"):
            before, after = value(early, metric, labels), value(late, metric, labels)
            series.append(f'      - series: \'{metric}{{{labels}}}\'\n        values: "{before:g}x2 {after:g}x20"')
    for alert, labels in (("AccordSlaBreached", DEAL), ("AccordSlaBreached", TIME), ("AccordSlaOverdue", TIME)):
        expected.append(f'          {{__name__="ALERTS", alertname="{alert}", alertstate="firing", {labels}}}')
    doc = f"""rule_files:
  - {ALERTS}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
{chr(10).join(series)}
    promql_expr_test:
      - expr: 'ALERTS{{alertname=~"AccordSla.*", alertstate="firing", sla="approved_time_in_erp"}}'
        eval_time: 10m
        exp_samples:
          - labels: '{{__name__="ALERTS", alertname="AccordSlaBreached", alertstate="firing", {TIME}}}'
            value: 1
          - labels: '{{__name__="ALERTS", alertname="AccordSlaOverdue", alertstate="firing", {TIME}}}'
            value: 1
      - expr: 'ALERTS{{alertname="AccordSlaBreached", alertstate="firing", sla="won_deal_provisioned"}}'
        eval_time: 10m
        exp_samples:
          - labels: '{{__name__="ALERTS", alertname="AccordSlaBreached", alertstate="firing", {DEAL}}}'
            value: 1
      - expr: 'ALERTS{{alertname="AccordSlaBreached"}}'
        eval_time: 2m
        exp_samples: []
"""
    path = tmp / "sla_test.yml"
    path.write_text(doc, encoding="utf-8")
    done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, doc + done.stdout + done.stderr
    return {(a, s, v) for a, v, s in re.findall(r'alertname="(\w+)".*?severity="(\w+)",sla="(\w+)"',
                                                  "\n".join(expected))}


def test_sla_config_errors_name_their_json_path() -> None:
    import pytest

    from accord.config.load import ConfigError, loads

    bad = PROVISION_CONFIG + """
[business]
invoice_runs = "61 6 1 * *"
[sla.deal]
process = "quote-to-cash"
track = "provisioning"
[sla.time]
process = "project-to-revenue"
track = "delivery"
entity = "time_entry"
target = "erp"
before = "invoice run"
"""
    with pytest.raises(ConfigError) as caught:
        loads(bad, env={})
    message = str(caught.value)
    assert "$.business.invoice_runs" in message
    assert "$.sla.deal: give `within`" in message
    assert "$.sla.time.entity: `time_entry` is not configured" in message
