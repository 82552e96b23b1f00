from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from accord.config.load import ConfigError, load, loads
from accord.config.types import Duration

GOOD = """
namespace = "t"
[streams]
partitions = 8
retention = "2d"
[systems.crm]
kind = "salesforce"
base_url = "http://127.0.0.1:1"
client_id = "id"
client_secret = "${SF_SECRET}"
[systems.erp]
kind = "quickbooks"
base_url = "http://127.0.0.1:2"
token_url = "http://127.0.0.1:2/oauth2/v1/tokens/bearer"
realm_id = "1"
client_id = "id"
client_secret = "s"
refresh_token = "${QBO_REFRESH:-r0}"
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
fields = { tax_id = "erp", payment_terms = "erp" }
poll_interval = "500ms"
"""


def test_valid_config_decodes_durations_and_env() -> None:
    settings = loads(GOOD, env={"SF_SECRET": "s3cret"})
    assert settings.streams.partitions == 8
    assert settings.streams.retention == 2 * 86400
    assert settings.entities["account"].poll_interval == pytest.approx(0.5)
    assert settings.systems["crm"].client_secret == "s3cret"  # type: ignore[union-attr]
    assert settings.systems["erp"].refresh_token == "r0"  # type: ignore[union-attr]
    assert settings.targets_of("account") == ["crm", "erp"]


def test_missing_env_names_path_and_variable() -> None:
    with pytest.raises(ConfigError) as err:
        loads(GOOD, env={})
    assert err.value.errors == ["$.systems.crm.client_secret: environment variable `SF_SECRET` is not set; "
                                "export it or write `${SF_SECRET:-default}`"]


@pytest.mark.parametrize(("change", "expected"), [
    (("partitions = 8", "partitions = 0"), "$.streams.partitions: expected `int` >= 1; got `0`"),
    (("partitions = 8", "partitions = \"many\""), "$.streams.partitions: expected `int`, got `str`"),
    (('retention = "2d"', 'retention = "soon"'), "$.streams.retention: expected a duration such as"),
    (("[streams]", "[streams]\nbogus = 1"), "$.streams.bogus: unknown setting `bogus`; allowed here: partitions,"),
    (('kind = "salesforce"', 'kind = "sap"'), "$.systems.crm.kind: unknown system kind 'sap'"),
    (('client_id = "id"', 'client_id = 5'), "$.systems.crm.client_id: expected `str`, got `int`"),
])
def test_type_errors_name_the_path(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads(GOOD.replace(*change), env={"SF_SECRET": "x"})
    assert err.value.errors[0].startswith(expected), err.value.errors


def test_five_mistakes_get_five_errors_in_one_run_with_did_you_mean() -> None:
    text = (GOOD.replace("partitions = 8", "partitions = -3\nidle_wait = \"soon\"")
            .replace("[streams]", "log_levle = \"INFO\"\n[streams]", 1)
            .replace('kind = "salesforce"', 'kind = "salesforc"')
            + '\n[http]\nport = 99999\n')
    with pytest.raises(ConfigError) as err:
        loads(text, env={"SF_SECRET": "x"})
    errors = err.value.errors
    assert len(errors) == 5, errors
    assert any(e.startswith("$.log_levle: unknown setting `log_levle` (did you mean `log_level`?)") for e in errors)
    assert any(e.startswith("$.systems.crm.kind: unknown system kind 'salesforc' (did you mean `salesforce`?)")
               for e in errors)
    assert "$.streams.partitions: expected `int` >= 1; got `-3`" in errors
    assert any(e.startswith("$.streams.idle_wait: expected a duration") and "'soon'" in e for e in errors)
    assert "$.http.port: expected `int` <= 65535; got `99999`" in errors


def test_a_wrong_choice_names_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        loads(GOOD.replace("[entities.account]", "[entities.account]\non_violation = \"revrt\""),
              env={"SF_SECRET": "x"})
    assert err.value.errors == ["$.entities.account.on_violation: `'revrt'` is not allowed (did you mean "
                                "`revert`?); expected one of 'revert', 'review', 'count'"]


def test_an_env_reference_fills_a_number_where_the_field_is_one() -> None:
    text = GOOD + '\n[http]\nport = "${PORT:-9464}"\n'
    assert loads(text, env={"SF_SECRET": "x"}).http.port == 9464
    assert loads(text, env={"SF_SECRET": "x", "PORT": "9500"}).http.port == 9500
    with pytest.raises(ConfigError) as err:
        loads(text, env={"SF_SECRET": "x", "PORT": "ninety"})
    assert err.value.errors == ["$.http.port: expected `int`, got `str`"]
    assert loads(GOOD, env={"SF_SECRET": "12345"}).systems["crm"].client_secret == "12345"  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["", "namespace = \"x\"\n"])
def test_a_config_without_systems_is_an_error(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads(text, env={})
    assert err.value.errors[0].startswith("$.systems: no systems configured")


def test_cross_reference_errors_are_all_reported() -> None:
    text = GOOD.replace('owner = "crm"', 'owner = "psa"').replace(
        'fields = { tax_id = "erp", payment_terms = "erp" }',
        'fields = { tax_number = "erp", payment_terms = "bank" }')
    text += '\n[entities.widget]\nowner = "crm"\nsystems = ["crm", "nope"]\n'
    with pytest.raises(ConfigError) as err:
        loads(text, env={"SF_SECRET": "x"})
    errors = err.value.errors
    assert "$.entities.account.owner: `psa` is not one of this entity's systems ['crm', 'erp']" in errors
    assert any(e.startswith("$.entities.account.fields.tax_number: `tax_number` is not a field of account")
               for e in errors)
    assert any(e.startswith("$.entities.account.fields.payment_terms: owner `bank`") for e in errors)
    assert any(e.startswith("$.entities.widget: unknown entity `widget`") for e in errors)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML"):
        loads("namespace = ")
    with pytest.raises(ConfigError, match=r"cannot read the file"):
        load(tmp_path / "absent.toml")


def test_duration_parse() -> None:
    assert Duration.parse("250ms") == pytest.approx(0.25)
    assert Duration.parse("2m") == 120
    assert Duration.parse(3) == 3
    with pytest.raises(ValueError, match="got -1"):
        Duration.parse(-1)


def test_shipped_examples_are_valid() -> None:
    examples = Path(__file__).resolve().parents[1] / "config" / "examples"
    env = {"SF_CLIENT_ID": "a", "SF_CLIENT_SECRET": "b", "QBO_CLIENT_ID": "c", "QBO_CLIENT_SECRET": "d",
           "QBO_REFRESH_TOKEN": "e", "QBO_REALM_ID": "f", "REDIS_URL": "redis://localhost:6379/0",
           "SF_BASE_URL": "https://acme.my.salesforce.com", "QBO_WEBHOOK_VERIFIER": "v",
           "HARVEST_ACCOUNT_ID": "123456", "HARVEST_TOKEN": "t", "ACCORD_ADMIN_TOKEN": "s",
           "TRYTON_URL": "https://erp.acme.example", "TRYTON_DATABASE": "acme", "TRYTON_LOGIN": "accord",
           "TRYTON_PASSWORD": "p"}
    for path in sorted(examples.glob("*.toml")):
        settings = load(path, env=env)
        assert settings.entities, path


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("partitions = 8", "partitions = -3"))
    out = subprocess.run([sys.executable, "-m", "accord", "check", "--config", str(bad)], capture_output=True,
                         text=True, env={"SF_SECRET": "x", "PATH": ""})
    assert out.returncode == 2
    assert "$.streams.partitions" in out.stderr
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    out = subprocess.run([sys.executable, "-m", "accord", "check", "--config", str(good)], capture_output=True,
                         text=True, env={"SF_SECRET": "x", "PATH": ""})
    assert out.returncode == 0, out.stderr


def test_reconcile_jobs_are_checked_with_their_paths() -> None:
    text = GOOD + """
[reconcile.hours]
entity = "account"
source = "crm"
target = "psa"
fields = ["name", "hours"]
period = "when"
interval = "1h"
cron = "every night"
[reconcile.ghost]
entity = "time_entry"
source = "psa"
target = "erp"
"""
    with pytest.raises(ConfigError) as err:
        loads(text, env={"SF_SECRET": "x"})
    errors = err.value.errors
    assert "$.reconcile.hours.target: `psa` does not hold account; expected one of ['crm', 'erp']" in errors
    assert any(e.startswith("$.reconcile.hours.fields: `hours` is not a field of account") for e in errors)
    assert any(e.startswith("$.reconcile.hours.period: `when` is not a field of account") for e in errors)
    assert "$.reconcile.hours: give `interval` or `cron`, not both" in errors
    assert any(e.startswith("$.reconcile.hours.cron: 'every night' is not a cron expression") for e in errors)
    assert ("$.reconcile.ghost.entity: `time_entry` is not configured under [entities]; add "
            "[entities.time_entry] or remove [reconcile.ghost]") in errors


def test_every_cli_command_has_a_handler() -> None:
    import argparse

    from accord.cli import COMMANDS, _parser

    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(subparsers.choices) == sorted(COMMANDS)


PROVISIONING = """
[provisioning]
crm = "crm"
psa = "crm"
erp = "erp"
[provisioning.templates.default]
phases = [{ name = "Delivery", tasks = [{ name = "Build" }] }]
"""


def test_provisioning_over_entities_not_configured_is_refused_with_its_path() -> None:
    """Only accounts are synced: provisioning reads opportunities and writes projects and tasks, none of
    which is configured (the throughput benchmark ran such a config: its provisioner failed on `NOGROUP`)."""
    with pytest.raises(ConfigError) as err:
        loads(GOOD + PROVISIONING, env={"SF_SECRET": "x"})
    errors = err.value.errors
    assert ("$.provisioning.crm: provisioning needs entity `opportunity`, which is not configured under "
            "[entities]; add [entities.opportunity] synced with `crm`, or remove [provisioning]") in errors
    assert any(e.startswith("$.provisioning.psa: provisioning needs entity `project`") for e in errors)
    assert any(e.startswith("$.provisioning.psa: provisioning needs entity `task`") for e in errors)
    assert not any(e.startswith("$.provisioning.erp") for e in errors)  # accounts are synced with the ERP


def test_cli_check_refuses_provisioning_and_reconciliation_of_unconfigured_entities(tmp_path: Path) -> None:
    config = tmp_path / "bench-like.toml"
    config.write_text(GOOD + PROVISIONING + """
[reconcile.invoices]
entity = "invoice"
source = "erp"
target = "crm"
[reconcile.hours]
entity = "time_entry"
source = "erp"
target = "crm"
""")
    out = subprocess.run([sys.executable, "-m", "accord", "check", "--config", str(config)], capture_output=True,
                         text=True, env={"SF_SECRET": "x", "PATH": ""})
    assert out.returncode == 2, out.stderr
    assert "$.provisioning.crm: provisioning needs entity `opportunity`" in out.stderr
    assert "$.reconcile.invoices.entity: `invoice` is not configured under [entities]" in out.stderr
    assert "$.reconcile.hours.entity: `time_entry` is not configured under [entities]" in out.stderr
