"""Seed data for the Salesforce sandbox: the client firms of a professional-services company.

``seed_accounts(state, n, rng)`` creates ``n`` Accounts as a sales team would have entered them (no
Accord id): realistic firm names and websites, billing addresses in US/GB/DE/FR/NL/CA/AU, the currency of
the country (multi-currency orgs), payment terms, and a tax id for about two thirds of them.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

from accord.connectors.salesforce.sandbox import SalesforceState

_STEMS = ("Northwind", "Bluefield", "Harbor", "Kestrel", "Granite", "Meridian", "Silverline", "Oakridge",
          "Lumen", "Corvid", "Aldgate", "Riverstone", "Brightwater", "Ironbridge", "Stellar", "Fairhaven",
          "Copperleaf", "Westmark", "Halcyon", "Summit", "Evergreen", "Pinnacle", "Redwood", "Bramble",
          "Vantage", "Cobalt", "Juniper", "Larkspur", "Marlow", "Thornbury", "Albion", "Quayside")
_KINDS = {"Logistics": "Transportation", "Health": "Healthcare", "Retail": "Retail", "Energy": "Energy",
          "Foods": "Food & Beverage", "Capital": "Banking", "Pharma": "Healthcare", "Manufacturing":
          "Manufacturing", "Media": "Media", "Insurance": "Insurance", "Telecom": "Communications",
          "Engineering": "Engineering", "Hotels": "Hospitality", "Mobility": "Transportation",
          "Analytics": "Technology", "Biotech": "Biotechnology", "Utilities": "Utilities"}
_SUFFIX = {"US": ("Inc.", "LLC", "Corp."), "GB": ("Ltd", "plc", "LLP"), "DE": ("GmbH", "AG", "SE"),
           "FR": ("SAS", "SA", "SARL"), "NL": ("B.V.", "N.V."), "CA": ("Inc.", "Ltd.", "Corp."),
           "AU": ("Pty Ltd", "Ltd")}
_TLD = {"US": "com", "GB": "co.uk", "DE": "de", "FR": "fr", "NL": "nl", "CA": "ca", "AU": "com.au"}
_CURRENCY = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR", "CA": "CAD", "AU": "AUD"}
_WEIGHTS = {"US": 40, "GB": 15, "DE": 12, "FR": 8, "NL": 7, "CA": 10, "AU": 8}
# country → [(city, state or None, postal code pattern, street pattern)]; "9" = digit, "A" = letter
_CITIES: dict[str, list[tuple[str, str | None, str, str]]] = {
    "US": [("New York", "NY", "100 99", "{n} Madison Avenue"), ("Chicago", "IL", "606 99", "{n} W Wacker Drive"),
           ("Austin", "TX", "787 99", "{n} Congress Avenue"), ("Boston", "MA", "021 99", "{n} Boylston Street"),
           ("Denver", "CO", "802 99", "{n} 17th Street"), ("Seattle", "WA", "981 99", "{n} Pine Street")],
    "GB": [("London", None, "EC2A 9AA", "{n} Bishopsgate"), ("Manchester", None, "M1 9AA", "{n} King Street"),
           ("Leeds", None, "LS1 9AA", "{n} Park Row"), ("Bristol", None, "BS1 9AA", "{n} Queen Square"),
           ("Edinburgh", None, "EH2 9AA", "{n} George Street")],
    "DE": [("Berlin", "BE", "101 99", "Friedrichstraße {n}"), ("München", "BY", "803 99", "Leopoldstraße {n}"),
           ("Hamburg", "HH", "203 99", "Mönckebergstraße {n}"),
           ("Frankfurt am Main", "HE", "603 99", "Mainzer Landstraße {n}")],
    "FR": [("Paris", None, "750 99", "{n} boulevard Haussmann"), ("Lyon", None, "690 99", "{n} rue de la République"),
           ("Toulouse", None, "310 99", "{n} allée Jean Jaurès")],
    "NL": [("Amsterdam", "NH", "10 99 AA", "Herengracht {n}"), ("Rotterdam", "ZH", "30 99 AA", "Coolsingel {n}"),
           ("Utrecht", "UT", "35 99 AA", "Oudegracht {n}")],
    "CA": [("Toronto", "ON", "M5V 9A9", "{n} King Street West"), ("Vancouver", "BC", "V6B 9A9", "{n} Granville Street"),
           ("Montréal", "QC", "H3B 9A9", "{n} rue Sainte-Catherine Ouest")],
    "AU": [("Sydney", "NSW", "2000", "{n} George Street"), ("Melbourne", "VIC", "3000", "{n} Collins Street"),
           ("Brisbane", "QLD", "4000", "{n} Queen Street")],
}
_TAX_FORMAT = {"US": "99-9999999", "GB": "GB999999999", "DE": "DE999999999", "FR": "FR99999999999",
               "NL": "NL999999999B01", "CA": "999999999RT0001", "AU": "99 999 999 999"}
_TERMS = (("Net 30", 50), ("Net 15", 15), ("Net 60", 15), ("Due on receipt", 10))


def _fill(pattern: str, rng: random.Random) -> str:
    return re.sub(r"[9A]", lambda m: str(rng.randint(0, 9)) if m.group() == "9"
                  else rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ"), pattern)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def account_fields(rng: random.Random, used: set[str], *, multi_currency: bool = True) -> dict[str, Any]:
    """Fields of one realistic client firm whose Name is not in ``used`` (which is updated)."""
    country = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
    for attempt in itertools.count():
        kind = rng.choice(list(_KINDS))
        base = f"{rng.choice(_STEMS)} {kind}"
        if attempt >= 3:
            base = f"{base} {rng.choice(('Group', 'Partners', 'Holdings', 'International'))}"
        if attempt >= 10:
            base = f"{base} {attempt}"
        name = f"{base} {rng.choice(_SUFFIX[country])}"
        if name not in used:
            used.add(name)
            break
    city, state, postal, street = rng.choice(_CITIES[country])
    fields: dict[str, Any] = {
        "Name": name,
        "Website": f"https://www.{_slug(base)}.{_TLD[country]}",
        "Type": "Customer - Direct",
        "Industry": _KINDS[kind],
        "BillingStreet": street.format(n=rng.randint(1, 480)),
        "BillingCity": city,
        "BillingState": state,
        "BillingPostalCode": _fill(postal, rng).replace(" ", "") if country in ("US", "DE", "FR")
        else _fill(postal, rng),
        "BillingCountryCode": country,
        "Payment_Terms__c": rng.choices([t for t, _ in _TERMS], weights=[w for _, w in _TERMS])[0],
    }
    if rng.random() < 0.65:
        fields["Tax_Id__c"] = _fill(_TAX_FORMAT[country], rng)
    if multi_currency:
        fields["CurrencyIsoCode"] = _CURRENCY[country]
    return fields


def seed_accounts(state: SalesforceState, n: int, rng: random.Random) -> list[str]:
    """Create ``n`` client Accounts (one transaction each, as users enter them); returns their ids."""
    used = {str(r["Name"]) for r in state.records("Account")}
    return [state.user_create("Account", account_fields(rng, used, multi_currency=state.multi_currency))
            for _ in range(n)]
