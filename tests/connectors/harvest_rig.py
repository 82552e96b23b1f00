"""What the Harvest connector and sandbox tests share (their fixtures are in ``conftest``)."""

from __future__ import annotations

START = 1_780_000_000.0  # 2026-05-28
HEADERS = {"Authorization": "Bearer sandbox-pat", "Harvest-Account-Id": "1234567", "User-Agent": "Test (t@x.io)"}
