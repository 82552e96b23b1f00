"""The Salesforce set-up checklist (``accord.salesforce_setup``) is derived from the connector's field tables,
matches the simulated org, and is what the README shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from accord.connectors.salesforce.objects import ENTITIES
from accord.salesforce_setup import features, markdown, requirements
from accord.sandboxes.salesforce.schema import SCHEMA_TYPES

ROOT = Path(__file__).resolve().parents[1]
README_BLOCK = re.compile(r"<!-- salesforce-checklist: (.+?) -->\n(.*?)\n<!-- /salesforce-checklist -->", re.S)


def test_every_custom_object_and_field_of_the_tables_is_listed() -> None:
    listed = {r.name for r in requirements()}
    for emap in ENTITIES.values():
        assert f"{emap.sobject}.Accord_Id__c" in listed
        if emap.sobject.endswith("__c"):
            assert emap.sobject in listed
        for fmap in emap.fields:
            for wire in fmap.wire:
                assert (f"{emap.sobject}.{wire}" in listed) == wire.endswith("__c"), wire
    assert len(listed) == len(requirements()), "listed twice"


def test_the_simulated_org_has_every_requirement_with_a_matching_type() -> None:
    org = {t.name: t for t in SCHEMA_TYPES}
    kinds = {"Text": {"string", "picklist", "textarea"}, "Date": {"date"}, "Currency": {"currency"}}
    for req in requirements():
        sobject = org[req.sobject]
        if req.field is None:
            assert sobject.custom
            assert ("Text" in req.type) == ("Name" in sobject.fields and sobject.auto_name is None), req
            continue
        ftype = sobject.fields[req.field]
        if req.type.startswith("Text, External ID"):
            assert sobject.external_ids.get(req.field) is True, req
        elif req.type.startswith("Picklist: "):
            assert ftype == "picklist", req
            values = re.findall(r"“(.+?)”", req.type)
            assert values == list(sobject.picklists.get(req.field, values)), req
        elif req.type.startswith("Lookup or Master-Detail("):
            assert ftype == "reference" and req.type == f"Lookup or Master-Detail({sobject.lookups[req.field]})"
        else:
            assert ftype in kinds[req.type], req


def test_single_currency_and_another_external_id_field() -> None:
    assert "CurrencyIsoCode" in features() and "CurrencyIsoCode" not in features(multi_currency=False)
    names = {r.name for r in requirements(external_id_field="Ext__c")}
    assert "Account.Ext__c" in names and "Account.Accord_Id__c" not in names


def test_the_readme_checklist_is_the_commands_output() -> None:
    match = README_BLOCK.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert match, "README.md has no <!-- salesforce-checklist: ... --> block"
    assert match[1] == "python -m accord.salesforce_setup"
    assert match[2].strip() == markdown().strip(), "regenerate the README block: python -m accord.salesforce_setup"


def test_the_command_prints_markdown_and_json() -> None:
    out = subprocess.run([sys.executable, "-m", "accord.salesforce_setup"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == markdown().strip()
    lines = subprocess.run([sys.executable, "-m", "accord.salesforce_setup", "--json", "--single-currency"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert [json.loads(line)["name"] for line in lines] == [r.name for r in requirements(multi_currency=False)]
