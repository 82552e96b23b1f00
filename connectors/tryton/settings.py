"""Settings of one Tryton server connection (a ``[systems.<name>]`` table with ``kind = "tryton"``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from accord.config.systems import SystemSettings
from accord.config.types import Duration

PageSize = Annotated[int, msgspec.Meta(ge=1, le=5000)]


class TrytonSettings(SystemSettings, frozen=True, tag="tryton"):
    """How to reach one Tryton database over JSON-RPC.

    ``base_url`` is the server (``http://host:8000``), ``database`` the database name (the path's first
    segment). ``login``/``password`` open a session (``common.db.login``); the session token is sent in
    the ``Authorization: Session ...`` header and renewed on a 401. ``company`` is sent in every call's
    context (Tryton does not add it); unset, the user's current company from its preferences.
    ``overlap`` re-reads that far behind the watermark (Tryton stamps are transaction start times and
    commit out of order); ``full_scan_interval`` is how often deletes are looked for by an id scan.
    """

    base_url: str
    database: str
    login: str
    password: str
    company: int | None = None
    language: str = "en"
    page_size: PageSize = 500
    overlap: Duration = Duration(5.0)
    timeout: Duration = Duration(60.0)
    full_scan_interval: Duration = Duration(3600.0)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be the Tryton server such as \"http://localhost:8000\", "
                             f"got {self.base_url!r}")
        if self.base_url.rstrip("/").endswith("/rpc"):
            raise ValueError(f"base_url must not end in /rpc (Accord adds /<database>/rpc/), got {self.base_url!r}")
        if not self.database or "/" in self.database:
            raise ValueError(f"database must be a Tryton database name (no slash), got {self.database!r}")
