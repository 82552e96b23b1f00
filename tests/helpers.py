"""Test helpers: wait on a condition with a deadline (never sleep a fixed time for a loop), and the
system tables unit tests configure (their connectors are replaced by in-memory systems)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,  # noqa: ASYNC109
                   message: str = "condition") -> Any:
    """Poll an (async or sync) predicate until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last value: {last!r})")


CRM_AND_ERP = """
[systems.crm]
kind = "salesforce"
base_url = "http://127.0.0.1:1"
client_id = "x"
client_secret = "y"
[systems.erp]
kind = "quickbooks"
base_url = "http://127.0.0.1:2"
token_url = "http://127.0.0.1:2/t"
realm_id = "1"
client_id = "x"
client_secret = "y"
refresh_token = "r"
"""

PSA = """
[systems.psa]
kind = "harvest"
base_url = "http://127.0.0.1:3"
account_id = "1"
access_token = "t"
"""
