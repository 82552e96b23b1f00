"""The KubeRay manifest's commands work as written, short of Kubernetes.

deploy/kubernetes/raycluster.yaml runs the daemon as the Ray driver inside the head Pod: the head container's
command starts a Ray head (no actors on it) and execs ``accord run``, which joins it through RAY_ADDRESS; the
workers run KubeRay's generated ``ray start --block``. Here both commands run as the manifest writes them, under
bash, with this checkout's Python environment standing in for the image: the head's Ray port and config path
are swapped for a free port and a config on the sandboxes, and ``$KUBERAY_GEN_RAY_START_CMD`` is built from the
worker group's rayStartParams the way KubeRay builds it. Then a record syncs through actors that can only be
on the worker node, the worker's probe command passes, and SIGTERM drains the daemon (exit 0).

Not covered (no Kubernetes here): the operator, Services and DNS, probes' timing, image pulls.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # PyYAML comes with Ray

from accord.sandboxes.firm.world import World
from accord.sandboxes.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "raycluster.yaml"
IMAGE_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0", "RAY_DISABLE_WORKER_LOG_PREFIX": "1",
             "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "15", "RAY_AUTH_MODE": "token"}  # the Dockerfile's


def _cluster() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]
    cluster: dict[str, Any] = next(d for d in docs if d["kind"] == "RayCluster")
    return cluster


def kuberay_start_command(params: dict[str, str], address: str) -> str:
    """``KUBERAY_GEN_RAY_START_CMD`` of a worker, as KubeRay's pod builder makes it: the group's
    rayStartParams plus ``address`` and ``block``, sorted, ``--key=value`` (``--key`` for "true")."""
    params = {**params, "address": address, "block": "true"}
    flags = [f"--{k}" if v.lower() == "true" else f"--{k}={v}" for k, v in sorted(params.items())
             if v.lower() != "false"]
    return " ".join(["ray start", *flags])


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `ray`, `accord`
    return {**env, **IMAGE_ENV, **extra}


def _wait(check: Any, what: str, deadline_s: float, *procs: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args!r} exited with {proc.returncode} while waiting for {what}"
        if check():
            return
        time.sleep(0.25)  # polling external processes, with a deadline
    raise AssertionError(f"{what} not within {deadline_s}s")


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def _ray_tmpdir() -> Iterator[str]:
    """A short RAY_TMPDIR of our own (unix socket paths are limited), and on exit an end to every process
    this test's Ray started: ``ray start --head`` leaves its processes running, as in a container."""
    tmp = tempfile.mkdtemp(prefix="kr", dir="/tmp")
    try:
        yield tmp
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                    and tmp.encode() in _cmdline(p)]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if pids and sig == signal.SIGTERM:
                time.sleep(3)
        shutil.rmtree(tmp, ignore_errors=True)


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_head_and_worker_commands_run_the_daemon_as_a_driver(tmp_path: Path) -> None:
    cluster = _cluster()
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    group = cluster["spec"]["workerGroupSpecs"][0]
    worker = group["template"]["spec"]["containers"][0]
    gcs, http = free_port(), free_port()
    head_env = {e["name"]: e["value"].replace("6379", str(gcs)) for e in head["env"] if "value" in e}
    assert head_env["RAY_ADDRESS"] == f"127.0.0.1:{gcs}"
    world = World().start()
    try:
        config = tmp_path / "accord.toml"
        config.write_text(f"""
namespace = "kuberay"
data_dir = "{tmp_path / 'data'}"
[http]
port = {http}
[systems.crm]
kind = "salesforce"
base_url = "{world.crm_server.url}"
client_id = "accord-demo"
client_secret = "demo-secret"
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
        args = head["args"][0].replace("--port=6379", f"--port={gcs}").replace("/etc/accord/accord.toml", str(config))
        assert f"--port={gcs}" in args and str(config) in args, "the manifest's head command changed shape"
        token = secrets.token_hex(32)
        with _ray_tmpdir() as ray_tmp:
            base = {"RAY_TMPDIR": ray_tmp, "RAY_AUTH_TOKEN": token}
            with open(tmp_path / "head.err", "wb") as head_err, open(tmp_path / "worker.err", "wb") as worker_err:
                head_proc = subprocess.Popen([*head["command"], args], env=_env({**base, **head_env}),
                                             stdout=subprocess.DEVNULL, stderr=head_err)
                worker_proc: subprocess.Popen[bytes] | None = None
                try:
                    address = f"127.0.0.1:{gcs}"
                    health = ["ray", "health-check", "--address", address]
                    _wait(lambda: subprocess.run(health, env=_env(base), capture_output=True).returncode == 0,
                          "the head's GCS", 90, head_proc)
                    params = {**group["rayStartParams"], "metrics-export-port": str(free_port()),
                              "dashboard-agent-listen-port": str(free_port())}  # KubeRay's fixed defaults clash on one host
                    worker_env = _env({**base, "RAY_ADDRESS": address,
                                       "KUBERAY_GEN_RAY_START_CMD": kuberay_start_command(params, address)})
                    worker_proc = subprocess.Popen([*worker["command"], *worker["args"]], env=worker_env,
                                                   stdout=subprocess.DEVNULL, stderr=worker_err)
                    _wait(lambda: _ready(f"http://127.0.0.1:{http}/readyz"), "the daemon's /readyz", 150,
                          head_proc, worker_proc)
                    probe = subprocess.run(worker["livenessProbe"]["exec"]["command"], env=worker_env,
                                           capture_output=True)
                    assert probe.returncode == 0, probe.stderr[-2000:]
                    world.crm.user_create("Account", {"Name": "KubeRay Test Ltd", "BillingCountryCode": "GB"})
                    _wait(lambda: bool(world.erp.records("Customer")), "the account in the ERP", 60, head_proc)
                    assert [c["DisplayName"] for c in world.erp.records("Customer")] == ["KubeRay Test Ltd"]
                    head_proc.send_signal(signal.SIGTERM)  # bash exec'd accord: the daemon gets it
                    assert head_proc.wait(timeout=40) == 0, (tmp_path / "head.err").read_text()[-3000:]
                finally:
                    for proc in (head_proc, worker_proc):
                        if proc is not None and proc.poll() is None:
                            proc.send_signal(signal.SIGTERM)
                            with contextlib.suppress(subprocess.TimeoutExpired):
                                proc.wait(timeout=30)
                            if proc.poll() is None:
                                proc.kill()
        err = (tmp_path / "head.err").read_text()
        assert "SIGTERM received: draining" in err
        assert "ray://" not in err and "Ray Client" not in err
    finally:
        world.stop()
