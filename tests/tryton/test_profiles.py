"""The Tryton profile files pass config validation: `tryton_psa_erp.toml` (Salesforce as the CRM, one
Tryton as PSA and ERP; secrets from the environment) and `demo_tryton.toml` (the same profile on one
machine, run by `accord demo --profile tryton`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from accord.config.load import ConfigError, load
from accord.connectors.salesforce.settings import SalesforceSettings
from accord.connectors.tryton.settings import TrytonSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
ENV = {"SF_CLIENT_ID": "a", "SF_CLIENT_SECRET": "b", "REDIS_URL": "redis://localhost:6379/0",
       "SF_BASE_URL": "https://acme.my.salesforce.com", "ACCORD_ADMIN_TOKEN": "s",
       "TRYTON_URL": "https://erp.acme.example", "TRYTON_DATABASE": "acme", "TRYTON_LOGIN": "accord",
       "TRYTON_PASSWORD": "from-the-environment"}


def test_the_psa_and_erp_profile_validates_with_secrets_from_the_environment() -> None:
    settings = load(EXAMPLES / "tryton_psa_erp.toml", env=ENV)
    tryton = settings.systems["tryton"]
    assert isinstance(tryton, TrytonSettings)
    assert (tryton.base_url, tryton.database, tryton.login, tryton.password, tryton.company) == (
        "https://erp.acme.example", "acme", "accord", "from-the-environment", 1)
    assert isinstance(settings.systems["crm"], SalesforceSettings)
    assert settings.provisioning is not None
    assert (settings.provisioning.crm, settings.provisioning.psa, settings.provisioning.erp) == ("crm", "tryton", "tryton")
    assert {name: (e.owner, sorted(e.systems)) for name, e in settings.entities.items()} == {
        "account": ("crm", ["crm", "tryton"]), "opportunity": ("crm", ["crm", "tryton"]),
        "invoice": ("tryton", ["crm", "tryton"])}
    assert {(j.entity, j.source, j.target) for j in settings.reconcile.values()} == {
        ("account", "crm", "tryton"), ("opportunity", "crm", "tryton"), ("invoice", "tryton", "crm")}


def test_the_profile_refuses_to_start_without_the_tryton_password() -> None:
    with pytest.raises(ConfigError) as err:
        load(EXAMPLES / "tryton_psa_erp.toml", env={k: v for k, v in ENV.items() if k != "TRYTON_PASSWORD"})
    assert err.value.errors == ["$.systems.tryton.password: environment variable `TRYTON_PASSWORD` is not set; "
                                "export it or write `${TRYTON_PASSWORD:-default}`"]


def test_accord_check_accepts_the_profile(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "accord", "check", "--config", str(EXAMPLES / "tryton_psa_erp.toml")],
                         capture_output=True, text=True, env={**ENV, "PATH": ""}, timeout=60)
    assert out.returncode == 0, out.stderr


def test_the_demo_runs_the_same_profile() -> None:
    demo = load(EXAMPLES / "demo_tryton.toml", env={})
    prod = load(EXAMPLES / "tryton_psa_erp.toml", env=ENV)
    assert isinstance(demo.systems["tryton"], TrytonSettings) and demo.redis.url is None  # the embedded Redis
    assert {n: (e.owner, e.systems, e.when, e.exclude) for n, e in demo.entities.items()} == {
        n: (e.owner, e.systems, e.when, e.exclude) for n, e in prod.entities.items()}
    assert demo.provisioning is not None and prod.provisioning is not None
    assert (demo.provisioning.psa, demo.provisioning.erp) == (prod.provisioning.psa, prod.provisioning.erp)
    assert {(j.entity, j.source, j.target) for j in demo.reconcile.values()} == {
        (j.entity, j.source, j.target) for j in prod.reconcile.values()}
