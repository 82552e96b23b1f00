"""The Salesforce field tables: Account, Contact, Opportunity, Invoice__c and Payment__c ↔ canonical
``account``, ``contact``, ``opportunity``, ``invoice`` and ``payment``. Adding an entity means adding a
table here (built from ``fieldmap``), not changing the conversion functions in ``mapping``.

References: ``account.parent``, ``contact.account``, ``opportunity.account``, ``invoice.account`` and
``payment.invoice`` are *native*: they hold the 18-character id of a record in this org (the daemon
translates to and from global ids). ``opportunity.project`` and ``invoice.project`` are not: Salesforce
holds no projects, so the global id is stored verbatim (``Accord_Project_Id__c``, ``Project_Ref__c``).

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
project_ref        PSA_Project_Id__c               the project's id in the PSA (closed-won write-back)
customer_ref       ERP_Customer_Id__c              the account's id in the ERP (closed-won write-back)
=================  ==============================  =========================================================

"Won" is ``IsWon``, never a match on the stage name (orgs rename stages).

Invoice (custom object ``Invoice__c``, a master-detail child of Account; the ERP owns it):

=================  ==============================  =========================================================
canonical          Salesforce                      note
=================  ==============================  =========================================================
account            Account__c                      native Account id; master-detail: required
project            Project_Ref__c                  the project's global id, verbatim (not a native id)
number             Name                            the invoice number (text); required
issue_date         Issue_Date__c                   "YYYY-MM-DD"
due_date           Due_Date__c                     "YYYY-MM-DD"
total              Total__c                        currency
balance            Balance__c                      currency
tax                Tax__c                          currency
status             Status__c                       "Draft" ↔ "draft", "Open" ↔ "open", "Paid" ↔ "paid",
                                                   "Void" ↔ "void"; unknown: error
currency           CurrencyIsoCode                 multi-currency orgs only
=================  ==============================  =========================================================

Not held: ``lines``, ``subtotal``, ``period_start``, ``period_end`` (never written, never read).

Payment (``Payment__c``, a master-detail child of Invoice__c): invoice ↔ ``Invoice__c`` (native
Invoice__c id; required), amount ↔ ``Amount__c``, paid_date ↔ ``Paid_Date__c``, reference ↔
``Reference__c``. Not held: ``account`` and ``currency`` (they follow from the invoice), ``method``, ``notes``.

The custom objects' key prefixes differ from org to org, so their tables carry none.

Roll-up summary fields (``Account.Invoiced_Total__c``, ``Open_Balance__c``, ``Last_Payment_Date__c``;
``Invoice__c.Amount_Paid__c``, ``Last_Payment_Date__c``) are not canonical fields: no table reads them,
so no query selects them. A roll-up change bumps the master's SystemModstamp, so the master comes back
in the next poll with an unchanged projection, which the daemon's echo check drops.
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

INVOICE_STATUS_LABELS: dict[str, str] = {
    "Draft": "draft",
    "Open": "open",
    "Paid": "paid",
    "Void": "void",
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
        plain("project_ref", "PSA_Project_Id__c"),
        plain("customer_ref", "ERP_Customer_Id__c"),
    ),
)

INVOICE = EntityMap(
    entity="invoice",
    sobject="Invoice__c",
    id_prefix="",  # a custom object's key prefix is the org's own
    fields=(
        reference("account", "Account__c"),
        plain("project", "Project_Ref__c"),
        plain("number", "Name"),
        date("invoice", "issue_date", "Issue_Date__c"),
        date("invoice", "due_date", "Due_Date__c"),
        money("invoice", "total", "Total__c"),
        money("invoice", "balance", "Balance__c"),
        money("invoice", "tax", "Tax__c"),
        picklist("invoice", "status", "Status__c", INVOICE_STATUS_LABELS),
        plain("currency", "CurrencyIsoCode", multi_currency_only=True),
    ),
)

PAYMENT = EntityMap(
    entity="payment",
    sobject="Payment__c",
    id_prefix="",
    fields=(
        reference("invoice", "Invoice__c"),
        money("payment", "amount", "Amount__c"),
        date("payment", "paid_date", "Paid_Date__c"),
        plain("reference", "Reference__c"),
    ),
)

# Parents before children: the order in which a full load is best polled.
ENTITIES: dict[str, EntityMap] = {emap.entity: emap for emap in (ACCOUNT, CONTACT, OPPORTUNITY, INVOICE, PAYMENT)}
