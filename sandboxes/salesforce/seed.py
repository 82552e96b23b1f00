"""Seed data for the Salesforce sandbox: the client firms of a professional-services company.

``seed_accounts(state, n, rng)`` creates ``n`` Accounts as a sales team would have entered them (no
Accord id): realistic firm names and websites, billing addresses in US/GB/DE/FR/NL/CA/AU, the currency of
the country (multi-currency orgs), payment terms, and a tax id for about two thirds of them.
``seed_contacts(state, account_ids, rng)`` adds buyer-side Contacts and ``seed_opportunities(state,
account_ids, rng)`` services deals (service line, billing model, delivery region, stage, amount).
``account_fields``, ``contact_fields``, ``opportunity_fields`` and ``next_stage`` serve the demo's user
activity generator.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
from typing import Any

from accord.sandboxes.salesforce.sandbox import SalesforceState

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


# ------------------------------------------------------------------------------------------------
# Contacts and opportunities
# ------------------------------------------------------------------------------------------------

_FIRST = ("Olivia", "James", "Sophie", "Daniel", "Amelia", "Lukas", "Emma", "Noah", "Charlotte", "Mateo", "Hannah",
          "Ethan", "Chloé", "Thomas", "Isabel", "Oliver", "Mia", "Jonas", "Grace", "Liam", "Priya", "Arjun",
          "Sanne", "Daan", "Léa", "Hugo", "Zoe", "Ryan", "Fiona", "Marcus")
_LAST = ("Smith", "Johnson", "Patel", "Müller", "Schmidt", "Martin", "Bernard", "de Vries", "Jansen", "Brown",
         "Wilson", "Taylor", "Nguyen", "O'Connor", "Walker", "Fischer", "Dubois", "Bakker", "Clarke", "Campbell",
         "Thompson", "Roberts", "Lefèvre", "Weber", "Evans", "Singh", "Murphy", "Meyer", "Hughes", "Kelly")
_TITLES = ("Chief Financial Officer", "Chief Information Officer", "Chief Operating Officer", "VP Operations",
           "Head of IT", "Procurement Manager", "Finance Director", "Head of Transformation", "IT Director",
           "Programme Manager")
_DIAL = {"US": "+1", "CA": "+1", "GB": "+44 20", "DE": "+49 30", "FR": "+33 1", "NL": "+31 20", "AU": "+61 2"}
_REGION = {"US": "NA", "CA": "NA", "GB": "EMEA", "DE": "EMEA", "FR": "EMEA", "NL": "EMEA", "AU": "APAC"}
# service line → (deal names, amount range, billing models with weights)
_DEALS: dict[str, tuple[tuple[str, ...], tuple[int, int], tuple[tuple[str, int], ...]]] = {
    "Advisory": (("Operating Model Review", "Digital Strategy", "Cost Transformation", "Due Diligence"),
                 (40_000, 250_000), (("Time & Materials", 60), ("Fixed Fee", 40))),
    "Implementation": (("ERP Rollout", "CRM Implementation", "Data Platform Build", "Cloud Migration"),
                       (150_000, 1_500_000), (("Fixed Fee", 55), ("Time & Materials", 45))),
    "Managed Services": (("Application Support", "Cloud Operations", "Service Desk"),
                         (60_000, 600_000), (("Retainer", 85), ("Time & Materials", 15))),
    "Data & Analytics": (("BI Modernisation", "Forecasting Models", "Data Governance"),
                         (50_000, 400_000), (("Time & Materials", 50), ("Fixed Fee", 50))),
    "Training": (("Leadership Academy", "Finance Upskilling"), (15_000, 90_000), (("Fixed Fee", 100),)),
}
_LINE_WEIGHTS = {"Advisory": 25, "Implementation": 35, "Managed Services": 20, "Data & Analytics": 15,
                 "Training": 5}
_OPEN_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
                "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review")


def _domain(account: dict[str, Any]) -> str:
    website = str(account.get("Website") or "")
    host = re.sub(r"^https?://(www\.)?", "", website).split("/")[0]
    return host or f"{_slug(str(account.get('Name') or 'client'))}.example"


def _ascii(name: str) -> str:
    plain = name.translate(str.maketrans("üéèçàöäï", "ueecaoai"))
    return re.sub(r"[^a-z]", "", plain.lower())


def contact_fields(rng: random.Random, account: dict[str, Any]) -> dict[str, Any]:
    """One buyer-side contact at ``account`` (an Account in wire form): name, title, work email, phone."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    country = str(account.get("BillingCountryCode") or "US")
    dial = _DIAL.get(country, "+1")
    digits = "".join(str(rng.randint(2 if i == 0 else 0, 9)) for i in range(10 if dial == "+1" else 7))
    local = f"{digits[:3]} {digits[3:6]} {digits[6:]}" if dial == "+1" else f"{digits[:3]} {digits[3:]}"
    return {"AccountId": account["Id"], "FirstName": first, "LastName": last, "Title": rng.choice(_TITLES),
            "Email": f"{_ascii(first)}.{_ascii(last)}@{_domain(account)}", "Phone": f"{dial} {local}"}


def opportunity_fields(rng: random.Random, account: dict[str, Any], today: dt.date, *,
                       multi_currency: bool = True) -> dict[str, Any]:
    """One services deal with ``account``: service line, billing model, region of the client's country,
    stage (about a quarter won, a sixth lost), a close date around ``today`` and an amount in the
    account's currency."""
    line = rng.choices(list(_LINE_WEIGHTS), weights=list(_LINE_WEIGHTS.values()))[0]
    names, (low, high), models = _DEALS[line]
    roll = rng.random()
    stage = "Closed Won" if roll < 0.25 else "Closed Lost" if roll < 0.40 else rng.choice(_OPEN_STAGES)
    days = -rng.randint(0, 180) if stage.startswith("Closed") else rng.randint(15, 180)
    company = str(account.get("Name") or "Client").split(" ")[0]
    fields: dict[str, Any] = {
        "AccountId": account["Id"],
        "Name": f"{company} – {rng.choice(names)}",
        "StageName": stage,
        "CloseDate": (today + dt.timedelta(days=days)).isoformat(),
        "Amount": float(rng.randrange(low, high, 500)),
        "Service_Line__c": line,
        "Billing_Model__c": rng.choices([m for m, _ in models], weights=[w for _, w in models])[0],
        "Delivery_Region__c": _REGION.get(str(account.get("BillingCountryCode")), "NA"),
        "Type": rng.choice(("New Customer", "Existing Customer - Upgrade", "Existing Customer - Renewal")),
    }
    if multi_currency and account.get("CurrencyIsoCode"):
        fields["CurrencyIsoCode"] = account["CurrencyIsoCode"]
    return fields


def next_stage(stage: str, rng: random.Random) -> str:
    """The stage a sales rep moves an open deal to next (sometimes straight to Closed Lost); a closed
    stage stays. For the demo's user activity."""
    if stage not in _OPEN_STAGES:
        return stage
    if rng.random() < 0.12:
        return "Closed Lost"
    at = _OPEN_STAGES.index(stage)
    return "Closed Won" if at == len(_OPEN_STAGES) - 1 else _OPEN_STAGES[min(at + rng.randint(1, 2),
                                                                              len(_OPEN_STAGES) - 1)]


def _accounts(state: SalesforceState, account_ids: list[str]) -> list[dict[str, Any]]:
    rows = [state.get("Account", rid) for rid in account_ids]
    return [row for row in rows if row is not None and not row["IsDeleted"]]


def seed_contacts(state: SalesforceState, account_ids: list[str], rng: random.Random) -> list[str]:
    """One to three Contacts per live Account of ``account_ids`` (one transaction each); their ids."""
    return [state.user_create("Contact", contact_fields(rng, account))
            for account in _accounts(state, account_ids) for _ in range(rng.choice((1, 1, 2, 2, 3)))]


def seed_opportunities(state: SalesforceState, account_ids: list[str], rng: random.Random) -> list[str]:
    """Zero to three services deals per live Account of ``account_ids`` (one transaction each); their ids."""
    today = dt.datetime.fromtimestamp(state.clock.now(), dt.UTC).date()
    return [state.user_create("Opportunity", opportunity_fields(rng, account, today,
                                                                multi_currency=state.multi_currency))
            for account in _accounts(state, account_ids) for _ in range(rng.choice((0, 1, 1, 2, 2, 3)))]
