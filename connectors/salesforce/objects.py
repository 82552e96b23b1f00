"""The Salesforce field tables: Account, Contact and Opportunity ↔ canonical ``account``, ``contact`` and
``opportunity``. Adding an entity means adding a table here (built from ``fieldmap``), not changing the
conversion functions in ``mapping``.

References: ``account.parent``, ``contact.account`` and ``opportunity.account`` are *native*: they hold
the 18-character id of an Account in this org (the daemon translates to and from global ids).
``opportunity.project`` is not: Salesforce holds no projects, so the global id is stored verbatim in
``Accord_Project_Id__c``.

Account:

=================  ===============================================================  ====================
canonical          Salesforce                                                       note
=================  ===============================================================  ====================
name               Name                                                             required
website            Website
billing_address    BillingStreet / BillingCity / BillingState / BillingPostalCode   None when all empty
country            BillingCountryCode                                               state/country picklists
currency           CurrencyIsoCode                                                  multi-currency orgs only
tax_id             Tax_Id__c
payment_terms      Payment_Terms__c ("Net 30" ↔ "net_30")                           unknown label: error
legal_entity       Legal_Entity__c                                                  the contracting entity
parent             ParentId                                                         native Account id
status             (none: a live record is "active"; a deleted one is a tombstone)  not written
=================  ===============================================================  ====================

``legal_name`` is not kept in Salesforce.

Contact: account ↔ ``AccountId`` (native), first_name ↔ ``FirstName``, last_name ↔ ``LastName``
(required), email ↔ ``Email``, phone ↔ ``Phone``, title ↔ ``Title``.

Opportunity:

=================  ==============================  =========================================================
canonical          Salesforce                      note
=================  ==============================  =========================================================
account            AccountId                       native Account id
name               Name                            required
stage              StageName                       the org's stage label, verbatim; required
is_won             IsWon                           read-only: derived from the stage; never written
amount             Amount                          number on the wire, "125000.00" in Accord
currency           CurrencyIsoCode                 multi-currency orgs only
close_date         CloseDate                       "YYYY-MM-DD"; required
service_line       Service_Line__c                 picklist value, verbatim
billing_model      Billing_Model__c                "Time & Materials" ↔ "time_and_materials", "Fixed Fee" ↔
                                                   "fixed_fee", "Retainer" ↔ "retainer"; unknown: error
delivery_region    Delivery_Region__c              picklist value, verbatim ("NA", "EMEA", "APAC")
project            Accord_Project_Id__c            the project's global id, verbatim (not a native id)
=================  ==============================  =========================================================

"Won" is ``IsWon``, never a match on the stage name (orgs rename stages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accord.connectors.salesforce.fieldmap import (
    EntityMap,
    FieldMap,
    MappingError,
    date,
    derived,
    money,
    picklist,
    plain,
    reference,
    text,
)

_ADDRESS_PARTS = (("street", "BillingStreet"), ("city", "BillingCity"), ("state", "BillingState"),
                  ("postal_code", "BillingPostalCode"))


def _read_address(wire: Mapping[str, Any]) -> dict[str, Any] | None:
    address = {part: text(wire.get(name)) for part, name in _ADDRESS_PARTS}
    address = {part: value for part, value in address.items() if value is not None}
    return address or None


def _write_address(value: Any) -> dict[str, Any]:
    if value is None:
        return {name: None for _, name in _ADDRESS_PARTS}
    if not isinstance(value, Mapping):
        raise MappingError("account", "billing_address", value,
                           "expected a map with street, city, state, postal_code")
    return {name: text(value.get(part)) for part, name in _ADDRESS_PARTS}


PAYMENT_TERMS_LABELS: dict[str, str] = {
    "Due on receipt": "due_on_receipt",
    "Net 15": "net_15",
    "Net 30": "net_30",
    "Net 60": "net_60",
}

BILLING_MODEL_LABELS: dict[str, str] = {
    "Time & Materials": "time_and_materials",
    "Fixed Fee": "fixed_fee",
    "Retainer": "retainer",
}

ACCOUNT = EntityMap(
    entity="account",
    sobject="Account",
    id_prefix="001",
    fields=(
        plain("name", "Name"),
        plain("website", "Website"),
        FieldMap("billing_address", tuple(name for _, name in _ADDRESS_PARTS), _read_address, _write_address),
        plain("country", "BillingCountryCode"),
        plain("currency", "CurrencyIsoCode", multi_currency_only=True),
        plain("tax_id", "Tax_Id__c"),
        picklist("account", "payment_terms", "Payment_Terms__c", PAYMENT_TERMS_LABELS),
        plain("legal_entity", "Legal_Entity__c"),
        reference("parent", "ParentId"),
        # No status field in Salesforce: a live record is active; status is never written.
        FieldMap("status", (), lambda _: "active", lambda _: {}),
    ),
)

CONTACT = EntityMap(
    entity="contact",
    sobject="Contact",
    id_prefix="003",
    fields=(
        reference("account", "AccountId"),
        plain("first_name", "FirstName"),
        plain("last_name", "LastName"),
        plain("email", "Email"),
        plain("phone", "Phone"),
        plain("title", "Title"),
    ),
)

OPPORTUNITY = EntityMap(
    entity="opportunity",
    sobject="Opportunity",
    id_prefix="006",
    fields=(
        reference("account", "AccountId"),
        plain("name", "Name"),
        plain("stage", "StageName"),
        derived("is_won", "IsWon"),
        money("opportunity", "amount", "Amount"),
        plain("currency", "CurrencyIsoCode", multi_currency_only=True),
        date("opportunity", "close_date", "CloseDate"),
        plain("service_line", "Service_Line__c"),
        picklist("opportunity", "billing_model", "Billing_Model__c", BILLING_MODEL_LABELS),
        plain("delivery_region", "Delivery_Region__c"),
        plain("project", "Accord_Project_Id__c"),
    ),
)

ENTITIES: dict[str, EntityMap] = {emap.entity: emap for emap in (ACCOUNT, CONTACT, OPPORTUNITY)}
