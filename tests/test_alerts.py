"""The alert rules as Prometheus runs them: ``promtool check rules`` and the unit tests of every rule in
``deploy/alerts_test.yml`` (``promtool test rules``), a runbook section behind every ``runbook_url``, and
only metric names the daemon exposes. promtool comes from Debian's ``prometheus`` package (``.ci/run``
installs it and sets ``ACCORD_REQUIRE_PROMTOOL``; elsewhere the two promtool tests skip without it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ALERTS, ALERT_TESTS, RUNBOOK = DEPLOY / "alerts.yml", DEPLOY / "alerts_test.yml", DEPLOY / "runbook.md"
METRIC_SOURCES = [ROOT / "daemon" / f"{name}_metrics.py" for name in ("pipeline", "monthend", "ops", "business")]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("ACCORD_REQUIRE_PROMTOOL"):
            pytest.fail("promtool is required (ACCORD_REQUIRE_PROMTOOL) but not installed: apt-get install prometheus")
        pytest.skip("no promtool here; .ci/run installs Debian's prometheus package")
    return found


def alert_names() -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", ALERTS.read_text(encoding="utf-8"), re.M)


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in done.stdout


def test_every_rule_passes_its_promtool_unit_tests() -> None:
    done = subprocess.run([promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True,
                          timeout=120, cwd=DEPLOY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_case_that_fires_it() -> None:
    text = ALERT_TESTS.read_text(encoding="utf-8")
    fired = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels:", text))
    assert len(alert_names()) >= 19
    assert [name for name in alert_names() if name not in fired] == []
    for name in ("AccordPollerFailing", "AccordExceptionsFiled"):  # and a time at which it must not fire yet
        assert re.search(rf"alertname: {name}\n\s+exp_alerts: \[\]", text)


def _anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_a_runbook_section() -> None:
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.M)}
    blocks = re.split(r"^\s*- alert: ", ALERTS.read_text(encoding="utf-8"), flags=re.M)[1:]
    assert len(blocks) == len(alert_names())
    for block in blocks:
        name = block.split("\n", 1)[0]
        url = re.search(r'runbook_url: "deploy/runbook\.md#([a-z0-9-]+)"', block)
        assert url, f"{name} has no runbook_url"
        assert url.group(1) in anchors, f"{name}: runbook.md has no section #{url.group(1)}"


def exposed_metrics() -> set[str]:
    """Every metric name the daemon's /metrics can carry, with the suffixes Prometheus adds."""
    names = set()
    for path in METRIC_SOURCES:
        names |= set(re.findall(r"[\"'](accord_[a-z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    counters = {f"{n}_total" for n in names}
    histograms = {f"{n}_{s}" for n in names for s in ("bucket", "count", "sum")}
    return names | counters | histograms | {"up"}


def test_the_rules_read_only_metrics_the_daemon_exposes() -> None:
    exprs = re.findall(r"^\s*expr:\s*(.+)$", ALERTS.read_text(encoding="utf-8"), re.M)
    used = {name for expr in exprs for name in re.findall(r"\baccord_[a-z0-9_]+", expr)}
    assert not used - exposed_metrics(), f"alerts.yml uses metrics nothing exposes: {sorted(used - exposed_metrics())}"
    for expr in exprs:
        for name in re.findall(r"\b(?:rate|increase|irate)\(\s*(accord_[a-z0-9_]+)", expr):
            assert name.endswith("_total"), f"{name}: counters are exposed with a _total suffix"
