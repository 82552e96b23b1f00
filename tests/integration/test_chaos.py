"""The fault suite in its CI size, as a user runs it: ``python -m bench.chaos --records 300 --kills 4``.

Actor processes killed with SIGKILL, Redis killed and restarted on its AOF, sandbox storms (5xx, 429
bursts, timeouts, responses lost after the server acted); then every record of every sandbox is checked.
Nothing may be lost, doubled or different, and no transient failure may end on the exception desk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_ci_fault_suite_loses_duplicates_and_garbles_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    out = subprocess.run([sys.executable, "-m", "bench.chaos", "--records", "300", "--kills", "4", "--seed", "1"],
                         capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr[-3000:]
    figures = json.loads(lines[-1])
    report = "\n".join(lines[-40:])
    assert figures["records"] == 300
    assert figures["kills"] == 4 and figures["redis_restarts"] == 1, report
    assert figures["faults_injected"] > 4, report
    assert figures["lost"] == 0, report
    assert figures["duplicated"] == 0, report
    assert figures["mismatched"] == 0, report
    assert figures["exceptions_transient"] == 0, report
    assert figures["converged"] and figures["stranded_pending"] == 0, report
    assert out.returncode == 0, report
