"""The Salesforce set-up checklist: every custom object and custom field the Salesforce connector reads or
writes, and the org features its standard fields need, derived from the connector's field tables
(``accord.connectors.salesforce.objects``), so that the list an administrator works from cannot drift from
the code. The README's checklist is this module's output (``tests/test_salesforce_setup.py``).

    python -m accord.salesforce_setup                       # the checklist, as Markdown
    python -m accord.salesforce_setup --json                # one JSON object per requirement
    python -m accord.salesforce_setup --external-id-field My_Id__c --single-currency

``accord check --connect`` asks the org itself (describe calls) which of these it lacks.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from accord.connectors.salesforce.fieldmap import EntityMap, FieldMap
from accord.connectors.salesforce.objects import ENTITIES
from accord.model.entities import REFERENCES

# Standard fields that exist only when an org feature is on: field -> the feature, and the way out.
FEATURES: dict[str, str] = {
    "CurrencyIsoCode": "Multi-currency (Setup → Company Information → Currency Setup), or set "
                       "multi_currency = false in the system's settings",
    "BillingCountryCode": "State and Country/Territory Picklists (Setup → State and Country/Territory "
                          "Picklists): Accord reads and writes ISO country codes",
}


@dataclass(frozen=True)
class Requirement:
    """One thing to create in the org: a custom object (``field`` is None) or a custom field."""

    sobject: str
    field: str | None
    type: str
    use: str  # what Accord keeps in it: canonical fields, "the Accord id", or the entity

    @property
    def name(self) -> str:
        return self.sobject if self.field is None else f"{self.sobject}.{self.field}"


def _kind(emap: EntityMap, fmap: FieldMap) -> str:
    """The Salesforce field type of a custom field, from the builder that made its table entry."""
    builder = fmap.read.__qualname__.split(".", 1)[0]
    if builder == "plain":
        return "Text"
    if builder == "date":
        return "Date"
    if builder == "money":
        return "Currency"
    if builder == "picklist":
        labels = inspect.getclosurevars(fmap.read).nonlocals["labels"]
        assert isinstance(labels, Mapping)
        return "Picklist: " + ", ".join(f"“{label}”" for label in labels)
    if builder == "reference":
        target = ENTITIES[REFERENCES[emap.entity][fmap.canonical]].sobject
        return f"Lookup or Master-Detail({target})"
    raise ValueError(f"{emap.sobject}.{fmap.wire}: no Salesforce type known for a {builder!r} field; "
                     "teach accord.salesforce_setup._kind")


def requirements(*, external_id_field: str = "Accord_Id__c", multi_currency: bool = True) -> list[Requirement]:
    """Every custom object and custom field the field tables use, in table order (parents first)."""
    out: list[Requirement] = []
    for emap in ENTITIES.values():
        active = emap.active(multi_currency)
        if emap.sobject.endswith("__c"):
            named = [f"{emap.entity}.{f.canonical}" for f in active if "Name" in f.wire and not f.read_only]
            # A Text record name is required on create: one Accord does not write must be an Auto Number.
            name = (f"record name: Text, written ({', '.join(named)})" if named
                    else "record name: Auto Number (Accord does not write it)")
            out.append(Requirement(emap.sobject, None, f"Custom object; {name}", emap.entity))
        out.append(Requirement(emap.sobject, external_id_field, "Text, External ID, Unique", "the Accord id"))
        for fmap in active:
            for wire in fmap.wire:
                if wire.endswith("__c") and wire != external_id_field:
                    out.append(Requirement(emap.sobject, wire, _kind(emap, fmap), f"{emap.entity}.{fmap.canonical}"))
    return out


def features(*, multi_currency: bool = True) -> dict[str, str]:
    """Org features the tables' standard fields need: field -> feature (only those a table uses)."""
    used = {wire for emap in ENTITIES.values() for f in emap.active(multi_currency) for wire in f.wire}
    return {name: text for name, text in FEATURES.items() if name in used}


def markdown(*, external_id_field: str = "Accord_Id__c", multi_currency: bool = True) -> str:
    found = requirements(external_id_field=external_id_field, multi_currency=multi_currency)
    objects = sum(1 for r in found if r.field is None)
    lines = [f"{objects} custom objects and {len(found) - objects} custom fields (external_id_field = "
             f"\"{external_id_field}\", multi_currency = {str(multi_currency).lower()}):", "",
             "| object | field | type | Accord keeps |", "|---|---|---|---|"]
    lines += [f"| `{r.sobject}` | {f'`{r.field}`' if r.field else '(the object)'} | {r.type} | {r.use} |"
              for r in found]
    lines += ["", "A Text field that holds a business value, not an id, may be a Picklist instead: Accord passes its "
              "value verbatim. Every field needs read and edit access for the integration user (field-level "
              "security).", "", "Org features:", ""]
    lines += [f"- `{field}`: {text}" for field, text in features(multi_currency=multi_currency).items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m accord.salesforce_setup",
                                     description="The custom objects and fields Accord needs in a Salesforce org.")
    parser.add_argument("--external-id-field", default="Accord_Id__c",
                        help="the system's external_id_field setting (default Accord_Id__c)")
    parser.add_argument("--single-currency", action="store_true",
                        help="the org has no multi-currency (multi_currency = false)")
    parser.add_argument("--json", action="store_true", help="one JSON object per requirement")
    args = parser.parse_args(argv)
    options = {"external_id_field": args.external_id_field, "multi_currency": not args.single_currency}
    if args.json:
        for req in requirements(**options):
            print(json.dumps({**asdict(req), "name": req.name}))
    else:
        print(markdown(**options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
