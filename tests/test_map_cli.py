"""`accord map`: a mapping tried from the command line, both directions, with a configured lookup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CONFIG = """
[systems.crm]
kind = "salesforce"
base_url = "https://acme.my.salesforce.com"
client_id = "a"
client_secret = "b"
[systems.erp]
kind = "quickbooks"
base_url = "http://x"
token_url = "http://x/t"
realm_id = "1"
client_id = "a"
client_secret = "b"
refresh_token = "r"
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
[mappings.crm.account]
expect = ["Id", "Name", "Legal_Entity__c"]
fields = { legal_entity = { path = "Legal_Entity__c", lookup = "entities" } }
[lookups.entities]
"Acme Inc." = "US01"
"""


def _map(tmp: Path, record: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp / "accord.toml"
    config.write_text(CONFIG)
    return subprocess.run([sys.executable, "-m", "accord", "map", "--config", str(config), *args],
                          input=json.dumps(record), capture_output=True, text=True, timeout=60)


def test_wire_to_canonical_with_configured_lookup_and_drift(tmp_path: Path) -> None:
    out = _map(tmp_path, {"Id": "001", "Name": "Acme", "Legal_Entity__c": "Acme Inc.", "Payment_Terms__c": "Net 30"},
               "--system", "crm", "--entity", "account")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["legal_entity"] == "US01" and record["payment_terms"] == "net_30" and record["name"] == "Acme"
    assert "schema drift: new source field `Payment_Terms__c`" in out.stderr


def test_canonical_to_wire_reverses_the_lookup(tmp_path: Path) -> None:
    out = _map(tmp_path, {"name": "Acme", "legal_entity": "US01", "payment_terms": "net_30"},
               "--system", "crm", "--entity", "account", "--to")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"Name": "Acme", "Legal_Entity__c": "Acme Inc.", "Payment_Terms__c": "Net 30"}


def test_a_value_outside_the_lookup_is_named(tmp_path: Path) -> None:
    out = _map(tmp_path, {"Id": "001", "Name": "Acme", "Legal_Entity__c": "Unknown GmbH"},
               "--system", "crm", "--entity", "account")
    assert out.returncode == 1
    assert "legal_entity: 'Unknown GmbH' (from Legal_Entity__c) is not in the lookup `entities`" in out.stderr


def test_bad_mapping_config_is_refused_with_its_path(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.replace('lookup = "entities"', 'lookup = "nope"'))
    out = subprocess.run([sys.executable, "-m", "accord", "check", "--config", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "$.mappings.crm.account.fields.legal_entity.lookup: no lookup table `nope`" in out.stderr
