"""`accord demo --duration 20` as a user runs it, on a busy machine (a CPU-burning process alongside): it settles
on facts, not on a clock, and exits 0 only when it settled, the three systems agree at the end and every
reconciliation agrees; the final report covers settling, every entity, reconciliation and the exception desk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@contextmanager
def cpu_hog() -> Iterator[None]:
    """A process burning one core for as long as the block runs."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


@pytest.mark.timeout(330)
def test_demo_runs_and_ends_in_agreement_under_a_cpu_hog(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    with cpu_hog():
        out = subprocess.run(
            [sys.executable, "-m", "accord", "demo", "--duration", "20", "--accounts", "15", "--rate", "3",
             "--settle-timeout", "120", "--no-console", "--data-dir", str(tmp_path / "demo")],
            capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = " ".join(out.stdout.split())
    assert re.search(r"settled in \d+\.\d+s", text), "the demo reports how long settling took"
    assert "STUCK" not in text
    assert "AGREE:" in text and "DISAGREE" not in text
    assert "0 field mismatches, 0 missing in the ERP, 0 extra in the ERP, 0 not deactivated" in text
    for entity in ("accounts", "contact", "opportunity", "resource", "project", "task", "time entries", "expense",
                   "invoice", "payment", "billed time"):
        assert f" {entity}," in text or f" {entity} checked" in text, f"the final report misses {entity}"
    assert "reconcile billable_hours: time_entry psa -> erp" in text and "reconcile invoices_in_crm" in text
    assert "exception desk" in text and "verdict: AGREE" in text
    assert (tmp_path / "demo" / "redis" / "appendonlydir").exists() or any(
        (tmp_path / "demo" / "redis").glob("*.aof")), "the embedded Redis should run with AOF on"
