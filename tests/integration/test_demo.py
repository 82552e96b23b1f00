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
    assert "DISAGREE" not in text
    # the verdict comes from the reconciliation engine: a job for every synced entity, each one agreeing
    jobs = re.findall(r"reconcile \w+: (\w+) (\w+) -> (\w+): AGREE \((\d+) paired, 0 missing, 0 extra, 0 mismatched\)", text)
    assert {entity for entity, *_ in jobs} == {"account", "contact", "resource", "project", "task", "time_entry",
                                               "expense", "opportunity", "invoice", "payment"}, jobs
    assert len(jobs) == 13 and all(int(paired) > 0 for *_, paired in jobs if _[0] in ("account", "contact", "task"))
    assert "exception desk" in text and "verdict: AGREE" in text
    assert (tmp_path / "demo" / "redis" / "appendonlydir").exists() or any(
        (tmp_path / "demo" / "redis").glob("*.aof")), "the embedded Redis should run with AOF on"
