"""The Grafana dashboard the compose file provisions: every query is valid PromQL (``promtool check rules``
on the queries as recording rules) and names only metrics the daemon exposes; the provisioning finds it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.test_alerts import DEPLOY, exposed_metrics, promtool

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "accord.json"
BUSINESS = DEPLOY / "grafana" / "dashboards" / "business.json"  # for finance and delivery leads


def queries(dashboard: Path = DASHBOARD) -> list[tuple[str, str]]:
    panels = json.loads(dashboard.read_text(encoding="utf-8"))["panels"]
    return [(p["title"], t["expr"]) for p in panels if p["type"] != "row" for t in p["targets"]]


def test_every_query_names_metrics_the_daemon_exposes() -> None:
    found = queries()
    assert len(found) >= 18
    exposed = exposed_metrics()
    for title, expr in found:
        names = set(re.findall(r"\baccord_[a-z0-9_]+", expr))
        assert names, f"{title}: queries no Accord metric"
        assert names <= exposed, f"{title}: {sorted(names - exposed)} is not exposed by the daemon"
    for needed in ("accord_poll_failing_seconds", "accord_sync_latency_seconds_bucket", "accord_backlog_drain_eta_seconds",
                   "accord_exceptions_open_oldest_seconds", "accord_api_errors_by_class_total"):
        assert any(needed in expr for _, expr in found), f"no panel shows {needed}"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    rules = tmp_path / "queries.yml"
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (_, expr) in enumerate(queries() + queries(BUSINESS)):
        lines += [f"      - record: dashboard:query_{i}", f"        expr: {json.dumps(expr)}"]
    rules.write_text("\n".join(lines) + "\n")
    done = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_file_provisions_the_dashboard_on_its_prometheus() -> None:
    compose = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in compose
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in compose
    provider = (DEPLOY / "grafana" / "provisioning" / "dashboards" / "accord.yml").read_text(encoding="utf-8")
    assert "path: /var/lib/grafana/dashboards" in provider
    source = (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    assert "url: http://prometheus:9090" in source and "uid: prometheus" in source
    uids = {t["datasource"]["uid"] for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"
            for t in p["targets"]}
    assert uids == {"prometheus"}


def test_the_business_dashboard_shows_kpis_and_slas_from_exposed_metrics() -> None:
    found = queries(BUSINESS)
    exposed = exposed_metrics()
    for title, expr in found:
        names = set(re.findall(r"\baccord_[a-z0-9_]+", expr))
        assert names and names <= exposed, f"{title}: {sorted(names - exposed)} is not exposed by the daemon"
    for needed in ("accord_sla_breaches_total", "accord_sla_at_risk", "accord_sla_overdue", "accord_unbilled_hours",
                   "accord_unbilled_amount", "accord_backlog_records", "accord_exceptions_open_by_process"):
        assert any(needed in expr for _, expr in found), f"no business panel shows {needed}"
    uids = {json.loads(path.read_text())["uid"] for path in (DASHBOARD, BUSINESS)}
    assert len(uids) == 2, "the provisioning loads both dashboards: their uids must differ"
