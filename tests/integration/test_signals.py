"""`accord run` drains on SIGTERM and exits 0 well inside 30 s; `accord demo` ends cleanly on Ctrl-C
with its final report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from accord.sandboxes.firm.world import World
from accord.sandboxes.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


def _wait_http(url: str, deadline_s: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling an external process's HTTP endpoint, with a deadline
    raise AssertionError(f"{url} not ready within {deadline_s}s")


def test_run_drains_on_sigterm_and_exits_zero(tmp_path: Path) -> None:
    world = World().start()
    try:
        port = free_port()
        config = tmp_path / "accord.toml"
        config.write_text(f"""
namespace = "sigterm"
data_dir = "{tmp_path / 'data'}"
[ray]
num_cpus = 2
[http]
port = {port}
admin_port = 0
[systems.crm]
kind = "salesforce"
base_url = "{world.crm_server.url}"
client_id = "accord-demo"
client_secret = "${{SF_SECRET}}"
[systems.erp]
kind = "quickbooks"
base_url = "{world.erp_server.url}"
token_url = "{world.erp_server.url}/oauth2/v1/tokens/bearer"
realm_id = "{world.erp.realm_id}"
client_id = "accord-demo"
client_secret = "demo-secret"
refresh_token = "demo-refresh-0"
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
fields = {{ tax_id = "erp" }}
poll_interval = "300ms"
""")
        proc = subprocess.Popen([sys.executable, "-m", "accord", "run", "--config", str(config)],
                                env={**_env(), "SF_SECRET": "demo-secret"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _wait_http(f"http://127.0.0.1:{port}/readyz", 90, proc)
            world.crm.user_create("Account", {"Name": "Signal Test Ltd", "BillingCountryCode": "GB"})
            deadline = time.monotonic() + 60
            while not world.erp.records("Customer") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [c["DisplayName"] for c in world.erp.records("Customer")] == ["Signal Test Ltd"]
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err[-3000:]
        assert took < 30
        assert "SIGTERM received: draining" in err
    finally:
        world.stop()


def test_demo_ends_cleanly_on_ctrl_c_with_report(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "accord", "demo", "--duration", "600", "--accounts", "8", "--no-console",
         "--port", str(port), "--data-dir", str(tmp_path / "demo")],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz", 90, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = " ".join(out.split())
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    assert "final report" in text and "verdict: AGREE" in text
