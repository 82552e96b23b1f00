"""``config/examples/tryton_erp.toml`` (Salesforce CRM, Harvest PSA, Tryton ERP) loads and passes ``accord
check`` with its ``${...}`` filled in, and says what it syncs with Tryton."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from accord.config.load import load
from accord.connectors.tryton.settings import TrytonSettings

PROFILE = Path(__file__).resolve().parents[2] / "config" / "examples" / "tryton_erp.toml"
ENV = {"REDIS_URL": "redis://redis:6379/0", "ACCORD_ADMIN_TOKEN": "t", "SF_BASE_URL": "https://acme.example",
       "SF_CLIENT_ID": "id", "SF_CLIENT_SECRET": "s", "HARVEST_ACCOUNT_ID": "1234567", "HARVEST_TOKEN": "pat",
       "TRYTON_URL": "https://erp.acme.example", "TRYTON_DATABASE": "acme", "TRYTON_LOGIN": "syncbot",
       "TRYTON_PASSWORD": "pw"}


def test_the_tryton_erp_profile_loads_with_tryton_as_the_erp() -> None:
    settings = load(PROFILE, env=ENV)
    erp = settings.systems["erp"]
    assert isinstance(erp, TrytonSettings) and (erp.base_url, erp.database, erp.company) == (
        "https://erp.acme.example", "acme", 1)
    assert [type(settings.systems[s]).__name__ for s in ("crm", "psa")] == ["SalesforceSettings", "HarvestSettings"]
    assert "expense" not in settings.entities  # Tryton's timesheets hold time, not expenses
    for entity in ("account", "opportunity", "resource", "project", "task", "time_entry", "invoice", "payment"):
        assert "erp" in settings.targets_of(entity) or settings.entities[entity].owner == "erp", entity
    assert settings.entities["invoice"].owner == settings.entities["payment"].owner == "erp"
    assert settings.provisioning is not None and settings.provisioning.erp == "erp"
    assert {job.target for job in settings.reconcile.values()} == {"erp", "psa", "crm"}


def test_accord_check_passes_on_the_tryton_erp_profile() -> None:
    done = subprocess.run([sys.executable, "-m", "accord", "check", "--config", str(PROFILE)],
                          env={**os.environ, **ENV}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "OK (3 systems, 9 entities)" in done.stdout
