"""Settings of one Salesforce org connection (a ``[systems.<name>]`` table with ``kind = "salesforce"``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from accord.config.systems import SystemSettings
from accord.config.types import AccountLimits, Duration, RateLimit

BatchSize = Annotated[int, msgspec.Meta(ge=1, le=200)]  # sObject Collections take at most 200 records
PageSize = Annotated[int, msgspec.Meta(ge=1, le=2000)]  # Sforce-Query-Options batchSize is capped at 2000


class SalesforceSettings(SystemSettings, frozen=True, tag="salesforce"):
    """How to reach one Salesforce org and how hard to use it.

    ``base_url`` is the org's My Domain host (the client-credentials flow is refused on
    login.salesforce.com); the API host comes from the token response's ``instance_url``.
    ``external_id_field`` is the unique External ID field that carries the Accord global id.
    ``page_size`` is the ``Sforce-Query-Options`` batchSize (Salesforce documents 200–2000 and may return
    fewer). ``limit_retry_after`` is how long to back off after 403 ``REQUEST_LIMIT_EXCEEDED`` (the daily
    quota gives no Retry-After). Above ``usage_ceiling`` of the daily quota (as every answer's
    ``Sforce-Limit-Info`` reports it) every caller pauses for ``limit_retry_after``.
    """

    base_url: str
    client_id: str
    client_secret: str
    api_version: str = "66.0"
    external_id_field: str = "Accord_Id__c"
    batch_size: BatchSize = 200
    page_size: PageSize = 2000
    overlap: Duration = Duration(2.0)
    timeout: Duration = Duration(30.0)
    rate_limit: RateLimit = RateLimit(requests=25, period=Duration(1.0))
    multi_currency: bool = True
    limit_retry_after: Duration = Duration(60.0)
    usage_ceiling: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.95
    org_id: str | None = None

    def limits(self) -> AccountLimits:
        return AccountLimits(windows=(self.rate_limit,), usage_ceiling=self.usage_ceiling)

    def __post_init__(self) -> None:
        major, dot, minor = self.api_version.partition(".")
        if not (major.isdigit() and dot and minor.isdigit()):
            raise ValueError(f"api_version must look like \"66.0\" (no leading v), got {self.api_version!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be the org's My Domain URL such as "
                             f"\"https://acme.my.salesforce.com\", got {self.base_url!r}")
