"""The sandbox org's schema: the standard objects it serves (Account, Contact, Opportunity) and the
billing custom objects (Invoice__c, Payment__c) with their field types, required fields, External ID
fields, lookups, master-detail relationships, roll-up summary fields, restricted picklists, and the
Opportunity stage table that derives ``IsClosed`` / ``IsWon`` / ``Probability``.

Custom fields the Accord sync uses: ``Accord_Id__c`` (unique External ID, every object),
``Tax_Id__c``, ``Payment_Terms__c``, ``Legal_Entity__c`` (Account), ``Service_Line__c``,
``Billing_Model__c``, ``Delivery_Region__c``, ``Accord_Project_Id__c``, ``PSA_Project_Id__c``,
``ERP_Customer_Id__c`` (Opportunity).

Billing, as a firm models it (the ERP owns the data; sales read it on the account):

* ``Invoice__c`` (key prefix ``a0B``): detail of Account through the master-detail ``Account__c``
  (required; reparenting allowed); Name is the invoice number (text, required). No OwnerId: a detail
  record is owned through its master.
* ``Payment__c`` (``a0C``): detail of Invoice__c through ``Invoice__c``; Name is an auto number
  (``PMT-000001``, read-only).
* Roll-up summary fields (read-only, recomputed by the store on every change of a detail record):
  ``Invoice__c.Amount_Paid__c`` = SUM(Payment__c.Amount__c), ``Invoice__c.Last_Payment_Date__c`` =
  MAX(Payment__c.Paid_Date__c), ``Account.Invoiced_Total__c`` = SUM(Invoice__c.Total__c) where
  Status__c is not Void, ``Account.Open_Balance__c`` = SUM(Invoice__c.Balance__c),
  ``Account.Last_Payment_Date__c`` = MAX(Invoice__c.Last_Payment_Date__c).
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
INVOICE_STATUSES = ("Draft", "Open", "Paid", "Void")


@dataclass(frozen=True)
class RollUp:
    """A roll-up summary field on a master object: ``function`` (SUM or MAX) of ``source`` over the live
    ``detail`` records whose master-detail field ``relation`` points at the master, leaving out details
    whose field holds one of the ``exclude`` values (the roll-up's filter criteria). ``ftype`` is the
    field's type (currency amounts are converted into the master record's currency)."""

    field: str
    function: str
    detail: str
    relation: str
    source: str
    ftype: str
    exclude: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class SObjectType:
    """One object type: id prefix, writable fields with their types, required and external id fields,
    lookups (field → referenced object), restricted picklists (field → values; ``StageName`` is checked
    against the org's stage table instead) and read-only derived fields.

    ``masters``: the lookups that are master-detail relationships (the detail is deleted with its
    master, and its changes recompute the master's ``rollups``); ``cascades``: other lookups whose
    record's delete deletes this one too (Contact and Opportunity go with their Account).
    ``auto_name``: the format of an auto-number Name (read-only, numbered per object).
    """

    name: str
    prefix: str
    fields: dict[str, str]
    required: tuple[str, ...] = ()
    external_ids: dict[str, bool] = field(default_factory=dict)  # field → unique
    read_only: dict[str, str] = field(default_factory=dict)
    has_currency: bool = False
    lookups: dict[str, str] = field(default_factory=dict)
    picklists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    masters: tuple[str, ...] = ()
    cascades: tuple[str, ...] = ()
    rollups: tuple[RollUp, ...] = ()
    auto_name: str | None = None
    label: str = ""

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    def computed(self) -> dict[str, str]:
        """Fields Salesforce sets and a write may not touch: derived, roll-up and auto-number fields."""
        return {**self.read_only, **{r.field: r.ftype for r in self.rollups}}

    def deletes_with(self, lookup: str) -> bool:
        """Whether deleting the record that ``lookup`` references deletes this record too."""
        return lookup in self.masters or lookup in self.cascades


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
        lookups={"ParentId": "Account"},
        rollups=(RollUp("Invoiced_Total__c", "SUM", "Invoice__c", "Account__c", "Total__c", "currency",
                        exclude=(("Status__c", ("Void",)),)),
                 RollUp("Open_Balance__c", "SUM", "Invoice__c", "Account__c", "Balance__c", "currency"),
                 RollUp("Last_Payment_Date__c", "MAX", "Invoice__c", "Account__c", "Last_Payment_Date__c",
                        "date"))),
    SObjectType("Contact", "003", _common(
        FirstName="string", LastName="string", Email="email", Phone="phone", Title="string",
        AccountId="reference", MailingStreet="textarea", MailingCity="string", MailingPostalCode="string"),
        required=("LastName",), external_ids={"Accord_Id__c": True}, lookups={"AccountId": "Account"},
        cascades=("AccountId",)),
    SObjectType("Opportunity", "006", _common(
        Name="string", StageName="picklist", CloseDate="date", AccountId="reference", Amount="currency",
        Probability="percent", Type="picklist", LeadSource="picklist", Description="textarea",
        Service_Line__c="picklist", Billing_Model__c="picklist", Delivery_Region__c="picklist",
        Accord_Project_Id__c="string", PSA_Project_Id__c="string", ERP_Customer_Id__c="string"),
        required=("Name", "StageName", "CloseDate"), external_ids={"Accord_Id__c": True},
        read_only={"IsClosed": "boolean", "IsWon": "boolean"}, has_currency=True,
        lookups={"AccountId": "Account"}, cascades=("AccountId",),
        picklists={"Service_Line__c": SERVICE_LINES, "Billing_Model__c": BILLING_MODELS,
                   "Delivery_Region__c": DELIVERY_REGIONS}),
)

CUSTOM_TYPES = (
    SObjectType("Invoice__c", "a0B", {
        "Name": "string", "Account__c": "reference", "Project_Ref__c": "string", "Issue_Date__c": "date",
        "Due_Date__c": "date", "Total__c": "currency", "Balance__c": "currency", "Tax__c": "currency",
        "Status__c": "picklist", "Accord_Id__c": "string"},
        required=("Name", "Account__c"), external_ids={"Accord_Id__c": True}, has_currency=True,
        lookups={"Account__c": "Account"}, masters=("Account__c",),
        picklists={"Status__c": INVOICE_STATUSES}, label="Invoice",
        rollups=(RollUp("Amount_Paid__c", "SUM", "Payment__c", "Invoice__c", "Amount__c", "currency"),
                 RollUp("Last_Payment_Date__c", "MAX", "Payment__c", "Invoice__c", "Paid_Date__c", "date"))),
    SObjectType("Payment__c", "a0C", {
        "Invoice__c": "reference", "Amount__c": "currency", "Paid_Date__c": "date", "Reference__c": "string",
        "Accord_Id__c": "string"},
        required=("Invoice__c",), external_ids={"Accord_Id__c": True}, has_currency=True,
        read_only={"Name": "string"}, auto_name="PMT-{:06d}", lookups={"Invoice__c": "Invoice__c"},
        masters=("Invoice__c",), label="Payment"),
)
SCHEMA_TYPES = (*STANDARD_TYPES, *CUSTOM_TYPES)
