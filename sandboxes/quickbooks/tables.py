"""The sandbox's entity types: which fields each QBO object accepts, its defaults, computed (read-only)
fields, unique name, top-level references (``refs``: a reference to a missing record is refused
with 2500 Invalid Reference Id) and the fields set on create only (``fixed``: a Customer's
``CurrencyRef`` in a multicurrency company; an update keeps it, and one naming another value is refused
with 6000). Business rules beyond these (nested line references, totals, payment
application, billing, estimate status) live in ``rules`` and ``sales``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from accord.connectors.quickbooks.faults import QboFault

CURRENCIES = {"USD": "United States Dollar", "GBP": "British Pound Sterling", "EUR": "Euro",
              "CAD": "Canadian Dollar", "AUD": "Australian Dollar", "CHF": "Swiss Franc",
              "JPY": "Japanese Yen", "SGD": "Singapore Dollar", "NZD": "New Zealand Dollar",
              "SEK": "Swedish Krona", "DKK": "Danish Krone", "INR": "Indian Rupee"}
HOME_CURRENCY = {"value": "USD", "name": CURRENCIES["USD"]}


@dataclass(frozen=True)
class EntityType:
    name: str  # "Customer"
    path: str  # "customer"
    name_list: bool
    writable: frozenset[str]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    computed: Mapping[str, Any] = field(default_factory=dict)  # read-only fields set on create
    unique: str | None = None  # a name field that must be unique (6240)
    unique_scope: str | None = None  # entities sharing one name space (Customer/Employee DisplayName)
    refs: Mapping[str, str] = field(default_factory=dict)  # ref field → referenced entity name
    fixed: frozenset[str] = frozenset()  # set on create only: an update keeps it (a change is refused: 6000)
    read_only: frozenset[str] = frozenset()  # documented, accepted on write and ignored (besides ``computed``)

    @property
    def known(self) -> frozenset[str]:
        """Every property the entity documents: a write naming anything else is refused (2010)."""
        return self.writable | self.read_only | frozenset(self.computed) | META

    @property
    def scope(self) -> str:
        return self.unique_scope or self.name


META = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse"})  # every entity's; read-only
_TXN = frozenset({"TxnDate", "PrivateNote", "CurrencyRef", "ExchangeRate", "DepartmentRef", "ClassRef",
                  "TxnSource", "DocNumber", "TransactionLocationType"})
_SALES = frozenset({"ShipFromAddr", "ShipDate", "TrackingNum", "ShipMethodRef", "BillEmailCc", "BillEmailBcc",
                    "ApplyTaxAfterDiscount", "GlobalTaxCalculation", "TxnTaxDetail", "FreeFormAddress"})
_SALES_RO = frozenset({"HomeTotalAmt", "RecurDataRef", "TaxExemptionRef"})

ENTITY_TYPES: dict[str, EntityType] = {
    "Customer": EntityType(
        name="Customer", path="customer", name_list=True, unique="DisplayName", unique_scope="party",
        writable=frozenset({
            "DisplayName", "Title", "GivenName", "MiddleName", "FamilyName", "Suffix", "CompanyName",
            "PrintOnCheckName", "PrimaryEmailAddr", "PrimaryPhone", "Mobile", "Fax", "AlternatePhone",
            "WebAddr", "BillAddr", "ShipAddr", "Notes", "Active", "Job", "BillWithParent", "ParentRef",
            "Taxable", "CurrencyRef", "SalesTermRef", "PaymentMethodRef", "PreferredDeliveryMethod",
            "PrimaryTaxIdentifier", "ResaleNum", "DefaultTaxCodeRef", "IsProject", "SecondaryTaxIdentifier",
            "ARAccountRef", "CustomerTypeRef", "BusinessNumber", "GSTIN", "GSTRegistrationType",
            "TaxExemptionReasonId", "Source"}),
        # Balance/OpenBalanceDate open a balance on create in QBO; the sandbox keeps none and ignores them
        read_only=frozenset({"FullyQualifiedName", "Level", "OpenBalanceDate", "V4IDPseudonym"}),
        defaults={"Active": True, "Job": False, "BillWithParent": False, "Taxable": False,
                  "IsProject": False, "PreferredDeliveryMethod": "Print", "CurrencyRef": HOME_CURRENCY},
        computed={"Balance": 0, "BalanceWithJobs": 0},
        refs={"SalesTermRef": "Term", "ParentRef": "Customer"},
        # "Once set, it cannot be changed ... Read-only after object is created" (Customer.CurrencyRef)
        fixed=frozenset({"CurrencyRef"})),
    "Term": EntityType(
        name="Term", path="term", name_list=True, unique="Name",
        writable=frozenset({"Name", "Active", "Type", "DueDays", "DiscountPercent", "DiscountDays",
                            "DayOfMonthDue", "DueNextMonthDays", "DiscountDayOfMonth"}),
        read_only=frozenset({"AttachableRef"}),
        defaults={"Active": True, "Type": "STANDARD"}),
    "Account": EntityType(
        name="Account", path="account", name_list=True, unique="Name",
        writable=frozenset({"Name", "Active", "AccountType", "AccountSubType", "Description", "AcctNum",
                            "CurrencyRef", "SubAccount", "ParentRef", "AccountAlias", "TxnLocationType",
                            "TaxCodeRef"}),
        read_only=frozenset({"FullyQualifiedName", "Classification", "CurrentBalanceWithSubAccounts"}),
        defaults={"Active": True, "CurrencyRef": HOME_CURRENCY}, computed={"CurrentBalance": 0}),
    "Employee": EntityType(
        name="Employee", path="employee", name_list=True, unique="DisplayName", unique_scope="party",
        writable=frozenset({"DisplayName", "Title", "GivenName", "MiddleName", "FamilyName", "Suffix",
                            "PrintOnCheckName", "Active", "PrimaryPhone", "Mobile", "PrimaryEmailAddr",
                            "EmployeeNumber", "PrimaryAddr", "BillableTime", "BillRate", "CostRate",
                            "HiredDate", "ReleasedDate", "Gender", "BirthDate", "SSN", "Organization"}),
        read_only=frozenset({"FullyQualifiedName", "V4IDPseudonym"}),
        defaults={"Active": True, "BillableTime": False}),
    "Item": EntityType(
        name="Item", path="item", name_list=True, unique="Name",
        writable=frozenset({"Name", "Sku", "Description", "PurchaseDesc", "Active", "Type", "UnitPrice",
                            "PurchaseCost", "Taxable", "IncomeAccountRef", "ExpenseAccountRef", "SubItem",
                            "ParentRef", "TrackQtyOnHand", "QtyOnHand", "InvStartDate", "AssetAccountRef",
                            "SalesTaxIncluded", "PurchaseTaxIncluded", "SalesTaxCodeRef", "PurchaseTaxCodeRef",
                            "PrefVendorRef", "ClassRef", "ReorderPoint", "ItemCategoryType", "AbatementRate",
                            "ReverseChargeRate", "ServiceType", "TaxClassificationRef", "UQCDisplayText", "UQCId"}),
        read_only=frozenset({"FullyQualifiedName", "Level"}),
        defaults={"Active": True, "Taxable": False, "UnitPrice": 0, "Type": "Service", "TrackQtyOnHand": False},
        refs={"IncomeAccountRef": "Account", "ExpenseAccountRef": "Account", "ParentRef": "Item"}),
    "TimeActivity": EntityType(
        name="TimeActivity", path="timeactivity", name_list=False,
        writable=frozenset({"TxnDate", "NameOf", "EmployeeRef", "VendorRef", "CustomerRef", "ProjectRef",
                            "ItemRef", "ClassRef", "DepartmentRef", "PayrollItemRef", "BillableStatus",
                            "Taxable", "HourlyRate", "CostRate", "Hours", "Minutes", "BreakHours",
                            "BreakMinutes", "StartTime", "EndTime", "Description", "TransactionLocationType",
                            "OtherNameRef"}),
        read_only=frozenset({"TimeZone"}),
        defaults={"BillableStatus": "NotBillable", "Taxable": False},
        refs={"EmployeeRef": "Employee", "CustomerRef": "Customer", "ProjectRef": "Customer", "ItemRef": "Item"}),
    "Purchase": EntityType(
        name="Purchase", path="purchase", name_list=False,
        writable=_TXN | {"PaymentType", "AccountRef", "EntityRef", "Line", "Credit", "PaymentMethodRef",
                         "GlobalTaxCalculation", "TxnTaxDetail", "RemitToAddr", "PrintStatus",
                         "IncludeInAnnualTPAR"},
        read_only=frozenset({"LinkedTxn", "RecurDataRef", "PurchaseEx"}),
        computed={"TotalAmt": 0}, refs={"AccountRef": "Account"}),
    "Invoice": EntityType(
        name="Invoice", path="invoice", name_list=False,
        writable=_TXN | {"CustomerRef", "ProjectRef", "Line", "DueDate", "SalesTermRef", "BillEmail",
                         "BillAddr", "ShipAddr", "CustomerMemo", "EmailStatus", "PrintStatus",
                         "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment", "TxnTaxDetail", "Deposit",
                         "DepositToAccountRef", "AllowIPNPayment", "AllowOnlinePayment"} | _SALES,
        # LinkedTxn and CustomField are writable in QBO; the sandbox derives the one and keeps no custom fields
        read_only=_SALES_RO | {"HomeBalance", "DeliveryInfo", "InvoiceLink"},
        defaults={"PrintStatus": "NotSet", "EmailStatus": "NotSet"},
        computed={"TotalAmt": 0, "Balance": 0, "LinkedTxn": [], "CustomField": []},
        refs={"CustomerRef": "Customer", "ProjectRef": "Customer", "SalesTermRef": "Term"}),
    "Payment": EntityType(
        name="Payment", path="payment", name_list=False,
        writable=_TXN | {"CustomerRef", "ProjectRef", "TotalAmt", "Line", "PaymentRefNum", "PaymentMethodRef",
                         "DepositToAccountRef", "ProcessPayment", "ARAccountRef", "CreditCardPayment"},
        read_only=frozenset({"TaxExemptionRef", "LinkedTxn"}),
        defaults={"DepositToAccountRef": {"value": "4"}}, computed={"UnappliedAmt": 0},
        refs={"CustomerRef": "Customer", "ProjectRef": "Customer", "DepositToAccountRef": "Account"}),
    "Estimate": EntityType(
        name="Estimate", path="estimate", name_list=False,
        writable=_TXN | {"CustomerRef", "ProjectRef", "Line", "ExpirationDate", "TxnStatus", "AcceptedBy",
                         "AcceptedDate", "CustomerMemo", "SalesTermRef", "BillEmail", "BillAddr", "ShipAddr",
                         "EmailStatus", "PrintStatus", "DueDate", "CustomField"} | _SALES,
        read_only=_SALES_RO | {"LinkedTxn"},
        defaults={"TxnStatus": "Pending", "PrintStatus": "NotSet", "EmailStatus": "NotSet"},
        computed={"TotalAmt": 0},
        refs={"CustomerRef": "Customer", "ProjectRef": "Customer", "SalesTermRef": "Term"}),
}
BY_PATH = {t.path: t for t in ENTITY_TYPES.values()}


def entity_type(name: str) -> EntityType:
    """Look a type up by its entity name or REST path, case-insensitively."""
    for etype in ENTITY_TYPES.values():
        if name.lower() in (etype.name.lower(), etype.path):
            return etype
    raise QboFault(400, "4001", "Invalid query",
                   f"QueryValidationError: unknown entity {name}; known: {sorted(ENTITY_TYPES)}")
