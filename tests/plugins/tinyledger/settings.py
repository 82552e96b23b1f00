"""The ``kind = "tinyledger"`` system settings."""

from __future__ import annotations

from accord.config.systems import SystemSettings


class TinyLedgerSettings(SystemSettings, frozen=True, tag="tinyledger"):
    base_url: str
    token: str
    page_size: int = 50
    timeout: float = 10.0
