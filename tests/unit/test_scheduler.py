"""When reconciliation jobs fall due."""

from __future__ import annotations

import datetime as dt

from accord.actors.reconcile.scheduler import next_due
from accord.config.load import loads
from tests.helpers import CRM_AND_ERP

CONFIG = CRM_AND_ERP + """
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
[reconcile.hourly]
entity = "account"
source = "crm"
target = "erp"
interval = "1h"
[reconcile.nightly]
entity = "account"
source = "crm"
target = "erp"
cron = "0 2 * * *"
[reconcile.on_demand]
entity = "account"
source = "crm"
target = "erp"
"""


def _at(hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 11, 25, hour, minute, tzinfo=dt.UTC).timestamp()


def test_interval_cron_and_on_demand_jobs() -> None:
    jobs = loads(CONFIG, env={}).reconcile
    now = _at(12)
    assert next_due(jobs["hourly"], None, now) == now  # never ran: due at once
    assert next_due(jobs["hourly"], int(_at(11, 30) * 1000), now) == _at(12, 30)
    assert next_due(jobs["nightly"], int(_at(1) * 1000), now) == _at(2)
    assert next_due(jobs["nightly"], int(_at(2, 0) * 1000) + 5, now) == _at(2) + 86400
    assert next_due(jobs["on_demand"], None, now) is None
