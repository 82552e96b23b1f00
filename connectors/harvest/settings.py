"""Settings of one Harvest v2 account connection (a ``[systems.<name>]`` table with ``kind = "harvest"``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from accord.config.systems import SystemSettings
from accord.config.types import AccountLimits, Duration, RateLimit

PageSize = Annotated[int, msgspec.Meta(ge=1, le=2000)]  # Harvest refuses per_page > 2000 with 422


class HarvestSettings(SystemSettings, frozen=True, tag="harvest"):
    """How to reach one Harvest account and how hard to use it.

    ``access_token`` is a Personal Access Token or an OAuth2 access token (a 401 is ``AuthExpired``;
    Accord cannot refresh a PAT). ``account_id`` goes in the ``Harvest-Account-Id`` header and
    ``user_agent`` in ``User-Agent`` (Harvest answers 400 without one). ``page_size`` is ``per_page``.
    ``full_scan_interval`` is how often the scheduler runs ``scan_ids`` to detect deletes (Harvest has no
    delete feed). ``lookup_window`` is how far back a create looks for a record an earlier, lost attempt
    already created (look-up-before-create; Harvest has no idempotency key).
    """

    base_url: str
    account_id: str
    access_token: str
    user_agent: str = "Accord (ops@example.com)"
    page_size: PageSize = 2000
    overlap: Duration = Duration(2.0)
    timeout: Duration = Duration(30.0)
    rate_limit: RateLimit = RateLimit(requests=100, period=Duration(15.0))
    full_scan_interval: Duration = Duration(3600.0)
    lookup_window: Duration = Duration(86400.0)

    def limits(self) -> AccountLimits:
        return AccountLimits(windows=(self.rate_limit,))

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be the API host such as \"https://api.harvestapp.com\" "
                             f"(without /v2), got {self.base_url!r}")
        if self.base_url.rstrip("/").endswith("/v2"):
            raise ValueError(f"base_url must not end in /v2 (Accord adds it), got {self.base_url!r}; "
                             "use \"https://api.harvestapp.com\"")
        if not self.account_id.strip().isdigit():
            raise ValueError(f"account_id must be the numeric Harvest account id (Harvest-Account-Id), "
                             f"got {self.account_id!r}")
        if not self.user_agent.strip():
            raise ValueError("user_agent must name the app and a contact, e.g. \"Accord (ops@example.com)\"; "
                             "Harvest refuses requests without one")
