"""Seed data: the customer list and the delivery practice (employees, service items, projects) of a
professional-services firm's QuickBooks company."""

from __future__ import annotations

import random
from typing import Any

from accord.sandboxes.quickbooks.sandbox import QuickBooksState

_FIRST = ("Northwind", "Blue Harbor", "Cedar Ridge", "Summit", "Ironbridge", "Lakeshore", "Redwood", "Granite",
          "Silverline", "Brightwater", "Oakmont", "Highgate", "Meridian", "Harborview", "Stonefield", "Evergreen",
          "Crescent", "Fairmont", "Westbrook", "Kingsway", "Pinecrest", "Riverside", "Bluestone", "Aldgate")
_SECOND = ("Logistics", "Capital", "Health", "Foods", "Energy", "Retail", "Insurance", "Pharma", "Analytics",
           "Manufacturing", "Media", "Telecom", "Properties", "Hospitality", "Biotech", "Software", "Mobility")
_SUFFIX = {"US": ("Inc.", "LLC", "Corp."), "CA": ("Inc.", "Ltd."), "GB": ("Ltd", "plc", "LLP"),
           "DE": ("GmbH", "AG"), "NL": ("B.V.", "N.V."), "AU": ("Pty Ltd",), "FR": ("SAS", "SA")}
# country → (currency, [(city, state/region, postal code)], tax id maker)
_PLACES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "US": ("USD", [("Boston", "MA", "02110"), ("Chicago", "IL", "60606"), ("Austin", "TX", "78701"),
                   ("San Francisco", "CA", "94105"), ("New York", "NY", "10004"), ("Denver", "CO", "80202")]),
    "CA": ("CAD", [("Toronto", "ON", "M5H 2N2"), ("Vancouver", "BC", "V6C 1T2")]),
    "GB": ("GBP", [("London", "", "EC2V 7HH"), ("Manchester", "", "M2 3AW"), ("Edinburgh", "", "EH2 2AD")]),
    "DE": ("EUR", [("Berlin", "BE", "10117"), ("Munich", "BY", "80331"), ("Hamburg", "HH", "20095")]),
    "NL": ("EUR", [("Amsterdam", "NH", "1012 AB"), ("Rotterdam", "ZH", "3011 AD")]),
    "AU": ("AUD", [("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000")]),
    "FR": ("EUR", [("Paris", "", "75002"), ("Lyon", "", "69002")]),
}
_COUNTRY_WEIGHTS = {"US": 50, "GB": 15, "DE": 10, "CA": 8, "NL": 6, "AU": 6, "FR": 5}
_STREETS = ("Main St", "Market St", "High Street", "King Street", "Harbour Rd", "Park Avenue", "Mill Lane",
            "Station Road", "Bahnhofstrasse", "Keizersgracht", "Collins St", "Rue de la Paix")


def _tax_id(country: str, rng: random.Random) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(9))
    if country == "US":
        return f"{digits[:2]}-{digits[2:]}"
    if country == "AU":
        return "ABN " + "".join(rng.choice("0123456789") for _ in range(11))
    return f"{country}{digits}"


def customer_fields(rng: random.Random, taken: set[str]) -> dict[str, Any]:
    """One realistic client of a consulting firm, as a QuickBooks Customer body."""
    country = rng.choices(list(_COUNTRY_WEIGHTS), weights=list(_COUNTRY_WEIGHTS.values()))[0]
    currency, places = _PLACES[country]
    legal = f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {rng.choice(_SUFFIX[country])}"
    display = legal.rsplit(" ", 1)[0]
    while display.casefold() in taken:
        display = f"{legal.rsplit(' ', 1)[0]} ({rng.choice(places)[0]} {rng.randint(2, 99)})"
    taken.add(display.casefold())
    city, region, postal = rng.choice(places)
    slug = "".join(ch for ch in display.split(" (")[0].lower() if ch.isalnum())
    bill = {"Line1": f"{rng.randint(1, 400)} {rng.choice(_STREETS)}", "City": city, "PostalCode": postal,
            "Country": country}
    if region:
        bill["CountrySubDivisionCode"] = region
    fields: dict[str, Any] = {
        "DisplayName": display, "CompanyName": legal, "BillAddr": bill,
        "WebAddr": {"URI": f"https://www.{slug}.example"},
        "PrimaryEmailAddr": {"Address": f"accounts.payable@{slug}.example"},
        "CurrencyRef": {"value": currency},
    }
    if rng.random() < 0.6:
        fields["PrimaryTaxIdentifier"] = _tax_id(country, rng)
    if rng.random() < 0.8:
        fields["SalesTermRef"] = {"value": rng.choices(["1", "2", "3", "4"], weights=[1, 3, 6, 2])[0]}
    if rng.random() < 0.05:
        fields["Active"] = False
    return fields


def seed_customers(state: QuickBooksState, n: int, rng: random.Random, *, realm: str | None = None) -> list[str]:
    """Create ``n`` customers (some with tax ids and payment terms, a few inactive); returns their ids."""
    taken = {str(r.get("DisplayName", "")).casefold() for r in state.records("Customer", realm=realm)}
    return [state.user_create("Customer", customer_fields(rng, taken), realm=realm) for _ in range(n)]


_PEOPLE = (("Kim", "Allen"), ("Ravi", "Menon"), ("Sofia", "Keller"), ("Tom", "Okafor"), ("Lena", "Novak"),
           ("Marco", "Rossi"), ("Aiko", "Tanaka"), ("Jonas", "Berg"), ("Priya", "Shah"), ("Sam", "Carter"))
_SERVICES = (("Advisory", "ADV", 220), ("Solution design", "DES", 180), ("Implementation", "IMP", 150),
             ("Training", "TRN", 120), ("Project management", "PM", 160))
_PROJECTS = ("ERP rollout", "Data platform", "Cloud migration", "Finance transformation", "CRM upgrade")


def seed_practice(state: QuickBooksState, rng: random.Random, customer_ids: list[str], *,
                  employees: int = 6, projects: int = 4, realm: str | None = None) -> dict[str, list[str]]:
    """The delivery side of the firm: employees with rates, service items, and projects (sub-customers)
    of some of ``customer_ids``. Returns the new ids by QBO entity name."""
    people = [state.user_create("Employee", {"GivenName": given, "FamilyName": family,
                                             "BillRate": rng.choice((140, 160, 180, 220)),
                                             "CostRate": rng.choice((60, 75, 90))}, realm=realm)
              for given, family in _PEOPLE[:employees]]
    items = [state.user_create("Item", {"Name": name, "Sku": sku, "Type": "Service", "UnitPrice": price,
                                        "IncomeAccountRef": {"value": "1"}}, realm=realm)
             for name, sku, price in _SERVICES]
    made = []
    for customer_id in rng.sample(customer_ids, min(projects, len(customer_ids))):
        parent = state.get("Customer", customer_id, realm=realm) or {}
        made.append(state.user_create_project(customer_id, f"{parent.get('DisplayName')} {rng.choice(_PROJECTS)}",
                                              realm=realm))
    return {"Employee": people, "Item": items, "Customer": made}
