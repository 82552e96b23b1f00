"""Settings of one QuickBooks Online company (realm) connection."""

from __future__ import annotations

from typing import Annotated

import msgspec

from accord.config.systems import SystemSettings
from accord.config.types import AccountLimits, Duration, PositiveInt, RateLimit

BatchSize = Annotated[int, msgspec.Meta(ge=1, le=30)]  # QBO takes at most 30 items per /batch
PageSize = Annotated[int, msgspec.Meta(ge=1, le=1000)]  # QBO MAXRESULTS is at most 1000


class QuickBooksSettings(SystemSettings, frozen=True, tag="quickbooks"):
    """How to reach one QuickBooks Online company.

    ``base_url`` is the API root (the API lives under ``/v3/company/{realm_id}/``); ``refresh_token`` is
    only the initial one: QBO rotates it on every refresh and the newest lives in the token cache.
    ``overlap`` is subtracted from each change-data-capture watermark to catch late commits.
    ``rate_limit`` (500 per minute), ``second_limit`` (10 per second), ``batch_limit`` (40 ``/batch`` per
    minute) and ``max_concurrent`` (10 in flight) are the realm's documented quotas, which every caller on
    every node shares through one request budget. The ``*_account_id``
    settings are chart-of-accounts Ids of this company that new Items and Purchases must name (the
    defaults match the sandbox's seeded chart).
    """

    base_url: str
    token_url: str
    realm_id: str
    client_id: str
    client_secret: str
    refresh_token: str
    minor_version: PositiveInt = 75
    batch_size: BatchSize = 30
    page_size: PageSize = 1000
    overlap: Duration = Duration(2.0)
    timeout: Duration = Duration(30.0)
    rate_limit: RateLimit = RateLimit(requests=500, period=Duration(60.0))
    second_limit: RateLimit = RateLimit(requests=10, period=Duration(1.0))
    batch_limit: RateLimit = RateLimit(requests=40, period=Duration(60.0))
    max_concurrent: PositiveInt = 10
    webhook_verifier: str | None = None
    income_account_id: str = "1"  # chart-of-accounts Id new service Items (tasks) book income to
    expense_account_id: str = "3"  # the expense account of a new expense (Purchase line)
    payment_account_id: str = "2"  # the bank/cash account new expenses are paid from

    def limits(self) -> AccountLimits:
        batches = msgspec.structs.replace(self.batch_limit, kind="batch")  # whatever the file said
        return AccountLimits(windows=(self.rate_limit, self.second_limit, batches), concurrency=self.max_concurrent)
