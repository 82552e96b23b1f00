"""The sandbox org's schema: the standard objects it serves (Account, Contact, Opportunity) with their
field types, required fields, External ID fields, lookups, restricted picklists, and the Opportunity
stage table that derives ``IsClosed`` / ``IsWon`` / ``Probability``.

Custom fields the Accord sync uses: ``Accord_Id__c`` (unique External ID, every object),
``Tax_Id__c``, ``Payment_Terms__c``, ``Legal_Entity__c`` (Account), ``Service_Line__c``,
``Billing_Model__c``, ``Delivery_Region__c``, ``Accord_Project_Id__c`` (Opportunity).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SYSTEM_FIELDS = {"Id": "id", "IsDeleted": "boolean", "CreatedDate": "datetime",
                 "LastModifiedDate": "datetime", "SystemModstamp": "datetime"}
STRING_TYPES = {"string", "url", "picklist", "phone", "email", "textarea", "reference", "id"}
COUNTRIES = {"US": "United States", "GB": "United Kingdom", "DE": "Germany", "FR": "France",
             "NL": "Netherlands", "CA": "Canada", "AU": "Australia", "IE": "Ireland", "ES": "Spain",
             "IT": "Italy", "BE": "Belgium", "CH": "Switzerland", "SE": "Sweden", "SG": "Singapore",
             "JP": "Japan", "IN": "India", "NZ": "New Zealand", "AT": "Austria", "DK": "Denmark"}
# Opportunity stage table (the default OpportunityStage records): stage → (IsClosed, IsWon, Probability)
STAGES: dict[str, tuple[bool, bool, float]] = {
    "Prospecting": (False, False, 10.0), "Qualification": (False, False, 10.0),
    "Needs Analysis": (False, False, 20.0), "Value Proposition": (False, False, 50.0),
    "Id. Decision Makers": (False, False, 60.0), "Perception Analysis": (False, False, 70.0),
    "Proposal/Price Quote": (False, False, 75.0), "Negotiation/Review": (False, False, 90.0),
    "Closed Won": (True, True, 100.0), "Closed Lost": (True, False, 0.0)}
SERVICE_LINES = ("Advisory", "Implementation", "Managed Services", "Data & Analytics", "Training")
BILLING_MODELS = ("Time & Materials", "Fixed Fee", "Retainer")
DELIVERY_REGIONS = ("NA", "EMEA", "APAC")


@dataclass(frozen=True)
class SObjectType:
    """One object type: id prefix, writable fields with their types, required and external id fields,
    lookups (field → referenced object), restricted picklists (field → values; ``StageName`` is checked
    against the org's stage table instead) and read-only derived fields."""

    name: str
    prefix: str
    fields: dict[str, str]
    required: tuple[str, ...] = ()
    external_ids: dict[str, bool] = field(default_factory=dict)  # field → unique
    read_only: dict[str, str] = field(default_factory=dict)
    has_currency: bool = False
    lookups: dict[str, str] = field(default_factory=dict)
    picklists: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _common(**extra: str) -> dict[str, str]:
    return {"OwnerId": "reference", "Accord_Id__c": "string", **extra}


STANDARD_TYPES = (
    SObjectType("Account", "001", _common(
        Name="string", Type="picklist", Industry="picklist", Website="url", Phone="phone",
        Description="textarea", AccountNumber="string", BillingStreet="textarea", BillingCity="string",
        BillingState="string", BillingPostalCode="string", BillingCountry="string",
        BillingCountryCode="picklist", ParentId="reference", Tax_Id__c="string", Payment_Terms__c="picklist",
        Legal_Entity__c="string", Legacy_Id__c="string"),
        required=("Name",), external_ids={"Accord_Id__c": True, "Legacy_Id__c": False}, has_currency=True,
        lookups={"ParentId": "Account"}),
    SObjectType("Contact", "003", _common(
        FirstName="string", LastName="string", Email="email", Phone="phone", Title="string",
        AccountId="reference", MailingStreet="textarea", MailingCity="string", MailingPostalCode="string"),
        required=("LastName",), external_ids={"Accord_Id__c": True}, lookups={"AccountId": "Account"}),
    SObjectType("Opportunity", "006", _common(
        Name="string", StageName="picklist", CloseDate="date", AccountId="reference", Amount="currency",
        Probability="percent", Type="picklist", LeadSource="picklist", Description="textarea",
        Service_Line__c="picklist", Billing_Model__c="picklist", Delivery_Region__c="picklist",
        Accord_Project_Id__c="string"),
        required=("Name", "StageName", "CloseDate"), external_ids={"Accord_Id__c": True},
        read_only={"IsClosed": "boolean", "IsWon": "boolean"}, has_currency=True,
        lookups={"AccountId": "Account"},
        picklists={"Service_Line__c": SERVICE_LINES, "Billing_Model__c": BILLING_MODELS,
                   "Delivery_Region__c": DELIVERY_REGIONS}),
)
