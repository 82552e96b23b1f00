"""The company-level objects clients read to verify a connection: ``CompanyInfo`` (``GET
/companyinfo/{realmId}``) and ``Preferences`` (``GET /preferences``), both also queryable
(``SELECT * FROM CompanyInfo``). Shapes follow Intuit's API reference examples (reference §4.2 lists the
endpoints): one object per company, ``Id`` "1". ``CurrencyPrefs`` says what the sandbox does: USD home
currency, multicurrency on (``tables.CURRENCIES``). Left out: updating them (``POST /companyinfo``,
``POST /preferences``), the email-message and custom-field preferences.
"""

from __future__ import annotations

from typing import Any

from accord.sandboxes.quickbooks.tables import HOME_CURRENCY

SINGLETONS = ("CompanyInfo", "Preferences")


def singleton(entity: str) -> str | None:
    """The account object a query names (case-insensitively), if it names one."""
    return next((name for name in SINGLETONS if name.lower() == entity.lower()), None)


def _address(line1: str) -> dict[str, Any]:
    return {"Id": "1", "Line1": line1, "City": "Mountain View", "CountrySubDivisionCode": "CA",
            "PostalCode": "94043", "Country": "US"}


def company_info(company_name: str, realm_id: str) -> dict[str, Any]:
    """The stored CompanyInfo (without MetaData, which ``Realm.render`` adds)."""
    return {
        "Id": "1", "SyncToken": "0", "domain": "QBO", "sparse": False, "CompanyName": company_name,
        "LegalName": company_name, "CompanyAddr": _address("2500 Garcia Ave"),
        "CustomerCommunicationAddr": _address("2500 Garcia Ave"), "LegalAddr": _address("2500 Garcia Ave"),
        "CustomerCommunicationEmailAddr": {"Address": "billing@accord.example"},
        "PrimaryPhone": {"FreeFormNumber": "(650) 944-4444"}, "CompanyStartDate": "2020-01-01",
        "FiscalYearStartMonth": "January", "Country": "US", "Email": {"Address": "billing@accord.example"},
        "WebAddr": {}, "SupportedLanguages": "en",
        "NameValue": [{"Name": "NeoEnabled", "Value": "true"}, {"Name": "IndustryType", "Value": "Consulting"},
                      {"Name": "SubscriptionStatus", "Value": "PAID"},
                      {"Name": "OfferingSku", "Value": "QuickBooks Online Advanced"},
                      {"Name": "CompanyType", "Value": "LLC"}, {"Name": "QBOIndustryType",
                                                                 "Value": "Professional Services"},
                      {"Name": "AccountantFeature", "Value": "false"}, {"Name": "RealmId", "Value": realm_id}],
    }


def preferences() -> dict[str, Any]:
    """The stored Preferences (without MetaData)."""
    return {
        "Id": "1", "SyncToken": "0", "domain": "QBO", "sparse": False,
        "AccountingInfoPrefs": {"FirstMonthOfFiscalYear": "January", "UseAccountNumbers": False,
                                "TaxYearMonth": "January", "ClassTrackingPerTxn": False,
                                "TrackDepartments": False, "CustomerTerminology": "Customers",
                                "ClassTrackingPerTxnLine": False},
        "ProductAndServicesPrefs": {"ForSales": True, "ForPurchase": True, "QuantityWithPriceAndRate": True,
                                    "QuantityOnHand": False},
        "SalesFormsPrefs": {"CustomTxnNumbers": True, "AllowDeposit": False, "AllowDiscount": False,
                            "AllowEstimates": True, "AllowServiceDate": True, "AllowShipping": False,
                            "AutoApplyCredit": True, "AutoApplyPayments": True, "DefaultTerms": {"value": "3"},
                            "ETransactionEnabledStatus": "NotApplicable", "IPNSupportEnabled": False},
        "VendorAndPurchasesPrefs": {"BillableExpenseTracking": True, "TrackingByCustomer": True},
        "TimeTrackingPrefs": {"UseServices": True, "BillCustomers": True, "ShowBillRateToAll": False,
                              "WorkWeekStartDate": "Monday", "MarkTimeEntriesBillable": True},
        "TaxPrefs": {"UsingSalesTax": False},
        "CurrencyPrefs": {"MultiCurrencyEnabled": True, "HomeCurrency": {"value": HOME_CURRENCY["value"]}},
        "ReportPrefs": {"ReportBasis": "Accrual", "CalcAgingReportFromTxnDate": False},
        "OtherPrefs": {"NameValue": [{"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": ""}]},
    }
