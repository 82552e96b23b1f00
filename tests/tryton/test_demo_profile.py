"""`accord demo --profile tryton` as a user runs it: the CRM sandbox and a real local Tryton server (the
template database shared with this folder's fixtures), the initial load, activity in both, settling, and
a final reconciliation that agrees record by record (exit 0). Without the `tryton` extra it says so in
one line and exits 2 before starting anything."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HIDE_TRYTOND = """
import sys
class HideTrytond:  # the `tryton` extra not installed: trytond cannot be found
    def find_spec(self, name, path=None, target=None):
        if name == "trytond" or name.startswith("trytond."):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, HideTrytond())
import importlib.util
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "trytond" else real(name, *a)
from accord.cli import main
sys.exit(main(["demo", "--profile", "tryton", "--no-console", "--data-dir", sys.argv[1]]))
"""


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.redis
@pytest.mark.timeout(300)
def test_the_tryton_demo_ends_with_the_crm_and_tryton_in_agreement(
        tryton_template: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path) -> None:
    cache = tmp_path_factory.getbasetemp().parent / "accord-tryton-template"  # the fixture's: built already
    data = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    out = subprocess.run(
        [sys.executable, "-m", "accord", "demo", "--profile", "tryton", "--duration", "10", "--rate", "3",
         "--accounts", "12", "--settle-timeout", "120", "--no-console", "--data-dir", str(data),
         "--cache-dir", str(cache)], capture_output=True, text=True, timeout=280, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = " ".join(out.stdout.split())
    assert f"template cached in {cache}" in text
    jobs = {name: (entity, int(paired)) for name, entity, paired in re.findall(
        r"reconcile (\w+): (\w+) \w+ -> \w+: AGREE \((\d+) paired, 0 missing, 0 extra, 0 mismatched\)", text)}
    assert set(jobs) == {"accounts_in_tryton", "won_deals_in_tryton", "invoices_in_crm"}, text[-2000:]
    assert jobs["accounts_in_tryton"][1] >= 12 and jobs["won_deals_in_tryton"][1] > 0
    assert "verdict: AGREE" in text and "DISAGREE" not in text and "STUCK" not in text
    assert "refused by Tryton" not in out.stderr  # every action of the firm's Tryton users went through

    with sqlite3.connect(data / "tryton" / "db" / "accord.sqlite") as db:  # the run's Tryton, stopped
        provisioned = db.execute("SELECT count(*) FROM project_work WHERE type = 'project' "
                                 "AND comment LIKE 'accord:prov%'").fetchone()[0]
        tasks = db.execute("SELECT count(*) FROM project_work WHERE type = 'task' AND parent IS NOT NULL").fetchone()[0]
        opportunities = db.execute("SELECT count(*) FROM sale_opportunity").fetchone()[0]
    assert opportunities == jobs["won_deals_in_tryton"][1]
    done = re.search(r"activity stopped \((.*?)\); settling", text)
    assert done, text[-2000:]
    won = int(m.group(1)) if (m := re.search(r"crm: deal won (\d+)", done.group(1))) else 0
    assert won >= 1, done.group(1)  # (time is logged only once a won deal's project is set up: not always in 10 s)
    # every deal won during the activity got its project and work breakdown in Tryton (two or three tasks)
    assert provisioned == won and tasks >= 2 * provisioned, (provisioned, tasks, done.group(1))


@pytest.mark.timeout(60)
def test_without_the_tryton_extra_the_profile_exits_2_with_one_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", HIDE_TRYTOND, str(tmp_path / "demo")], capture_output=True,
                         text=True, timeout=50)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "accord demo --profile tryton: trytond is not installed; install the tryton extra: "
        "pip install -e '.[tryton]' in a checkout"]
    assert not (tmp_path / "demo").exists()  # nothing was started
