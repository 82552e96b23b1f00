"""``accord check --connect`` against the sandboxes served over HTTP, as an operator runs it: every system
answers and has what the sync needs (exit 0, also after QuickBooks rotated its refresh token), a custom
field or object the org lacks is named with its fix (exit 1), refused credentials (exit 1), nothing
listening (exit 3, one line), QuickBooks accounts and terms the settings name, Harvest modules, a plug-in
without a check, and no secret printed."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.plugins.tinyledger  # noqa: F401  (its one registration)
from accord.cli import main
from accord.connectcheck import SystemResult, exit_code
from accord.connectors.check import Finding, Report
from accord.sandboxes.local import RunningSandbox, start_local
from accord.sandboxes.salesforce.sandbox import SalesforceState
from accord.sandboxes.server import free_port

KINDS = {"crm": "salesforce", "psa": "harvest", "erp": "quickbooks"}

ENTITIES = """
[entities.account]
owner = "crm"
systems = ["crm", "psa", "erp"]
fields = { tax_id = "erp", payment_terms = "erp", legal_name = "erp" }
exclude = { psa = ["billing_address"] }

[entities.contact]
owner = "crm"
systems = ["crm", "psa"]

[entities.opportunity]
owner = "crm"
systems = ["crm", "erp"]
exclude = { erp = ["project", "project_ref", "customer_ref"] }

[entities.task]
owner = "psa"
systems = ["psa", "erp"]

[entities.time_entry]
owner = "psa"
systems = ["psa", "erp"]
exclude = { erp = ["locked", "invoice"] }
when = { erp = { approval = "approved", billable = true } }

[entities.expense]
owner = "psa"
systems = ["psa", "erp"]
exclude = { erp = ["locked", "invoice"] }
when = { erp = { approval = "approved", billable = true } }

[entities.invoice]
owner = "erp"
systems = ["erp", "psa", "crm"]
exclude = { psa = ["subtotal"], crm = ["lines", "subtotal", "period_start", "period_end"] }

[entities.payment]
owner = "erp"
systems = ["erp", "psa", "crm"]
exclude = { crm = ["account", "currency", "notes"] }
"""


@pytest.fixture
def sandboxes() -> Iterator[dict[str, RunningSandbox]]:
    """A fresh org, account and company per test (QuickBooks rotates its refresh token)."""
    running = {name: start_local(f"accord.sandboxes.{kind}.local:local") for name, kind in KINDS.items()}
    yield running
    for sandbox in running.values():
        sandbox.stop()


def system_table(name: str, settings: Any, **overrides: str) -> str:
    """The ``[systems.<name>]`` table of a running sandbox's settings, with ``overrides``."""
    keys = {"salesforce": ("base_url", "client_id", "client_secret"),
            "harvest": ("base_url", "account_id", "access_token"),
            "quickbooks": ("base_url", "token_url", "realm_id", "client_id", "client_secret", "refresh_token")}
    kind = KINDS.get(name, "tinyledger")
    values = {key: getattr(settings, key) for key in keys[kind]} if settings is not None else {}
    lines = [f'{key} = "{value}"' for key, value in {**values, **overrides}.items()]
    return "\n".join([f"[systems.{name}]", f'kind = "{kind}"', *lines, ""])


def write_config(tmp_path: Path, tables: list[str], entities: str = ENTITIES, extra: str = "") -> Path:
    path = tmp_path / "accord.toml"
    path.write_text(f'namespace = "cc"\ndata_dir = "{tmp_path / "state"}"\n{extra}\n' + "\n".join(tables)
                    + entities)
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, dict[str, str]]:
    """The exit code and each system's line (by system name)."""
    code = main(["check", "--connect", "--config", str(path), *flags])
    out = capsys.readouterr().out
    lines = {line.split(" ", 1)[0]: line for line in out.splitlines()}
    assert len(lines) == len(out.splitlines())
    return code, lines


def drop_field(state: SalesforceState, sobject: str, field: str) -> None:
    """An admin deletes a custom field from the org."""
    with state.lock:
        declared = state.store.sobject(sobject)
        state.store.types[declared.name.casefold()] = dataclasses.replace(
            declared, fields={k: v for k, v in declared.fields.items() if k != field})


def all_tables(sandboxes: dict[str, RunningSandbox]) -> list[str]:
    return [system_table(name, sandbox.settings) for name, sandbox in sandboxes.items()]


def test_every_system_answers_and_has_what_the_sync_needs(sandboxes: dict[str, RunningSandbox], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, all_tables(sandboxes))
    code, lines = check(path, capsys)
    assert code == 0, lines
    assert lines["crm"].startswith("crm (salesforce): OK - API v66.0, ")
    assert lines["psa"] == "psa (harvest): OK - Accord Demo Consulting (accord-demo-1234567.harvestapp.com), " \
                           "account 1234567"
    assert lines["erp"] == "erp (quickbooks): OK - Accord Demo Professional Services (realm 9130350000000000)"
    # QuickBooks replaced the refresh token in the config; the newest one was kept in the daemon's Redis
    assert sandboxes["erp"].sandbox.state.refresh_token != sandboxes["erp"].settings.refresh_token
    code = main(["check", "--connect", "--json", "--config", str(path)])
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [(d["system"], d["kind"], d["status"], d["findings"]) for d in documents] == [
        ("crm", "salesforce", "ok", []), ("psa", "harvest", "ok", []), ("erp", "quickbooks", "ok", [])]


def test_a_custom_field_or_object_the_org_lacks_is_named_with_its_fix(
        sandboxes: dict[str, RunningSandbox], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    org = sandboxes["crm"].sandbox.state
    drop_field(org, "Opportunity", "Billing_Model__c")
    path = write_config(tmp_path, all_tables(sandboxes))
    code, lines = check(path, capsys)
    assert code == 1 and lines["psa"].startswith("psa (harvest): OK") and lines["erp"].startswith("erp (quickbooks): OK")
    assert lines["crm"].startswith("crm (salesforce): MISSING - Opportunity.Billing_Model__c: missing or hidden from "
                                   "the integration user (used by opportunity.billing_model); create the custom "
                                   "field on Opportunity and grant the integration user read/edit access")
    assert 'or leave it out: add "billing_model" to entities.opportunity.exclude.crm' in lines["crm"]
    with org.lock:
        del org.store.types["invoice__c"]
    code = main(["check", "--connect", "--json", "--config", str(path)])
    [document] = [d for d in map(json.loads, capsys.readouterr().out.splitlines()) if d["system"] == "crm"]
    assert code == 1 and document["status"] == "missing"
    assert [(f["what"], f["kind"]) for f in document["findings"]] == [
        ("Opportunity.Billing_Model__c", "missing"), ("Invoice__c", "missing")]
    assert "remove `crm` from entities.invoice.systems" in document["findings"][1]["fix"]


def test_a_field_left_out_of_the_sync_is_not_needed(sandboxes: dict[str, RunningSandbox], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    drop_field(sandboxes["crm"].sandbox.state, "Opportunity", "Billing_Model__c")
    entities = ENTITIES.replace('exclude = { erp = ["project", "project_ref", "customer_ref"] }',
                                'exclude = { erp = ["project", "project_ref", "customer_ref"], crm = ["billing_model"] }')
    code, lines = check(write_config(tmp_path, all_tables(sandboxes), entities), capsys)
    assert code == 0, lines


def test_a_field_a_configured_mapping_reads_must_exist(sandboxes: dict[str, RunningSandbox], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    mapping = ('\n[mappings.crm.account]\nexpect = ["Legal_Entity__c", "Owner.Name"]\n'
               '[mappings.crm.account.fields]\nlegal_entity = { path = "Region__c" }\n')
    code, lines = check(write_config(tmp_path, all_tables(sandboxes), ENTITIES + mapping), capsys)
    assert code == 1
    assert lines["crm"].startswith("crm (salesforce): MISSING - Account.Region__c: missing or hidden from the "
                                   "integration user (used by mappings.crm.account); create the custom field")
    assert "Legal_Entity__c" not in lines["crm"] and "Owner" not in lines["crm"]  # present; a relationship path


@pytest.mark.parametrize(("system", "setting"), [("crm", "client_secret"), ("psa", "access_token"),
                                                 ("erp", "client_secret")])
def test_wrong_credentials_are_refused_and_never_printed(sandboxes: dict[str, RunningSandbox], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str], system: str,
                                                         setting: str) -> None:
    wrong = "not-the-secret-4711"
    tables = [system_table(name, sandbox.settings, **({setting: wrong} if name == system else {}))
              for name, sandbox in sandboxes.items()]
    code, lines = check(write_config(tmp_path, tables), capsys)
    assert code == 1
    assert lines[system].startswith(f"{system} ({KINDS[system]}): CREDENTIALS REFUSED - credentials: refused (")
    assert all(line.split(": ")[1].startswith("OK") for name, line in lines.items() if name != system)
    assert wrong not in "".join(lines.values())


def test_a_system_where_nothing_listens_is_unreachable_in_one_line(sandboxes: dict[str, RunningSandbox],
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    tables = [system_table(name, sandbox.settings, **({"base_url": f"http://127.0.0.1:{port}"} if name == "crm" else {}))
              for name, sandbox in sandboxes.items()]
    code, lines = check(write_config(tmp_path, tables), capsys)
    line = lines["crm"]
    assert code == 3 and lines["erp"].startswith("erp (quickbooks): OK")
    assert line.startswith(f"crm (salesforce): UNREACHABLE - http://127.0.0.1:{port}/services/oauth2/token: no "
                           "usable answer (ConnectError")
    assert "check the URL" in line and "sandbox-secret" not in line


def test_unreachable_gives_way_to_a_definite_finding() -> None:
    down = SystemResult.of("a", "x", Report(findings=[Finding(kind="unreachable", what="a", value="v", fix="f")]))
    lacking = SystemResult.of("b", "x", Report(findings=[Finding(kind="missing", what="b", value="v", fix="f")]))
    assert exit_code([down]) == 3 and exit_code([down, lacking]) == 1 and exit_code([]) == 0


def test_quickbooks_accounts_and_terms_the_settings_name_must_fit(sandboxes: dict[str, RunningSandbox],
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    company = sandboxes["erp"].sandbox.state
    company.user_update("Term", "3", {"DueDays": 45})
    tables = [system_table(name, sandbox.settings, **({"expense_account_id": "99", "payment_account_id": "1"}
                                                      if name == "erp" else {})) for name, sandbox in sandboxes.items()]
    code, lines = check(write_config(tmp_path, tables), capsys)
    assert code == 1
    line = lines["erp"]
    assert "expense_account_id = '99': no such account in the chart of accounts; set expense_account_id to the " \
           "Id of an active Expense or Other Expense or Cost of Goods Sold account" in line
    assert "payment_account_id = '1': account 'Services' is of type 'Income'" in line
    assert "Term 3: 'Net 30', due in 45 days; Accord reads it as net_30; make term 3 an active term due in " \
           "30 days" in line
    assert "income_account_id" not in line


def test_quickbooks_without_the_daemons_redis_refreshes_nothing(sandboxes: dict[str, RunningSandbox],
                                                                tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    initial = sandboxes["erp"].sandbox.state.refresh_token
    path = write_config(tmp_path, all_tables(sandboxes),
                        extra=f'[redis]\nurl = "redis://:hunter2@127.0.0.1:{free_port()}/0"\n')
    code, lines = check(path, capsys)
    assert code == 3 and lines["crm"].startswith("crm (salesforce): OK")
    assert lines["erp"].startswith("erp (quickbooks): UNREACHABLE - token store: the daemon's Redis cannot be reached")
    assert "hunter2" not in lines["erp"]
    assert sandboxes["erp"].sandbox.state.refresh_token == initial


def test_harvest_modules_the_entities_need(sandboxes: dict[str, RunningSandbox], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    account = sandboxes["psa"].sandbox.state
    account.expense_feature = account.approval_feature = False
    code, lines = check(write_config(tmp_path, all_tables(sandboxes)), capsys)
    assert code == 1
    assert "company.expense_feature: false, but expense sync with psa; turn on Expenses" in lines["psa"]
    assert "company.approval_feature: false, but entities time_entry, expense flow only when approved" in lines["psa"]
    assert "invoice_feature" not in lines["psa"]


def test_a_plugin_without_a_check_is_not_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = system_table("books", None, base_url="http://127.0.0.1:1", token="ledger-token")
    code, lines = check(write_config(tmp_path, [table], entities=""), capsys)
    assert code == 0
    assert lines["books"] == "books (tinyledger): NOT CHECKED - the tinyledger plug-in has no connection check"


def test_connect_and_live_do_not_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, [system_table("books", None, base_url="http://127.0.0.1:1", token="t")], "")
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--connect", "--live", "--config", str(path)])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
