"""deploy/kubernetes/raycluster.yaml: the daemon is the Ray driver inside the KubeRay head Pod (no Ray Client),
every node runs the accord image, and the settings agree with the image and production.toml.

KubeRay's behaviour relied on (its pod builder): with the annotation ``ray.io/overwrite-container-cmd`` the
containers' own command and args run as written, ``KUBERAY_GEN_RAY_START_CMD`` holds the generated ``ray
start`` (with ``--block``), and liveness/readiness probes are injected (``wget`` against the dashboard)
only into a Ray container that has none. tests/integration/test_kuberay_commands.py runs the commands.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML comes with Ray

from accord.config.load import load

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "kubernetes" / "raycluster.yaml"
PRODUCTION_TOML = ROOT / "config" / "examples" / "production.toml"


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d}


@pytest.fixture(scope="module")
def head(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = docs["RayCluster"]["spec"]["headGroupSpec"]["template"]["spec"]
    return pod


@pytest.fixture(scope="module")
def workers(docs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = docs["RayCluster"]["spec"]["workerGroupSpecs"]
    assert groups
    return groups


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _production() -> Any:
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", PRODUCTION_TOML.read_text(encoding="utf-8")))
    env = {n: "https://example.invalid" for n in names}
    env.update(REDIS_URL="redis://redis:6379/0", HARVEST_ACCOUNT_ID="1", CLOSED_THROUGH="2026-10-31")
    return load(PRODUCTION_TOML, env=env)


def test_the_containers_run_their_own_commands(docs: dict[str, dict[str, Any]]) -> None:
    cluster = docs["RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"


def test_the_head_starts_ray_then_execs_the_daemon_as_its_driver(
        docs: dict[str, dict[str, Any]], head: dict[str, Any]) -> None:
    container = head["containers"][0]
    assert container["command"] == ["/bin/bash", "-c", "--"]
    script = " ".join(container["args"])
    start, _, daemon = script.partition("&& exec ")
    assert shlex.split(daemon) == ["accord", "run", "--config", "/etc/accord/accord.toml"]
    words = shlex.split(start.split(";")[-1])
    assert words[:3] == ["ray", "start", "--head"] and "--block" not in words, "ray start must return"
    flags = dict(w[2:].split("=", 1) for w in words[3:] if "=" in w)
    assert flags["num-cpus"] == "0", "no actors on the head: its CPU is the driver's"
    port = flags["port"]
    assert docs["RayCluster"]["spec"]["headGroupSpec"]["rayStartParams"]["port"] == port
    assert _env(container)["RAY_ADDRESS"] == f"127.0.0.1:{port}", "the driver joins the local head's GCS"
    assert {"name": "gcs-server", "containerPort": int(port)} in container["ports"]
    assert int(flags["object-store-memory"]) == _production().ray.object_store_mb * 2 ** 20


def test_every_node_runs_the_same_image_with_the_same_token(head: dict[str, Any],
                                                             workers: list[dict[str, Any]]) -> None:
    containers = [head["containers"][0]] + [g["template"]["spec"]["containers"][0] for g in workers]
    assert len({c["image"] for c in containers}) == 1 and containers[0]["image"].split("/")[-1].startswith("accord:")
    tokens = [_env(c)["RAY_AUTH_TOKEN"]["secretKeyRef"] for c in containers]
    assert all(t == {"name": "accord-ray-auth", "key": "auth_token"} for t in tokens)
    assert head["containers"][0]["envFrom"] == [{"secretRef": {"name": "accord-env"}}]


def test_workers_run_kuberays_generated_ray_start(workers: list[dict[str, Any]]) -> None:
    for group in workers:
        container = group["template"]["spec"]["containers"][0]
        assert container["command"] == ["/bin/bash", "-c", "--"]
        assert re.search(r"exec \$KUBERAY_GEN_RAY_START_CMD\b", " ".join(container["args"]))
        assert int(group["rayStartParams"]["num-cpus"]) >= 1
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_probes_are_our_own_and_need_no_wget(head: dict[str, Any], workers: list[dict[str, Any]]) -> None:
    container = head["containers"][0]
    ports = {p["name"] for p in container["ports"]}
    for probe, path in (("startupProbe", "/healthz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"} and "http" in ports
    for group in workers:
        worker = group["template"]["spec"]["containers"][0]
        for probe in ("livenessProbe", "readinessProbe"):
            command = " ".join(worker[probe]["exec"]["command"])
            assert "ray health-check" in command and "wget" not in command


def test_pods_drain_run_as_accord_and_have_shared_memory(head: dict[str, Any],
                                                        workers: list[dict[str, Any]]) -> None:
    production = _production()
    for pod in [head] + [g["template"]["spec"] for g in workers]:
        assert pod["terminationGracePeriodSeconds"] >= 40 > production.supervisor.drain_timeout
        assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
        assert pod["shareProcessNamespace"] is True, "something must reap the processes Ray starts"
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]
        assert shm["medium"] == "Memory" and shm["sizeLimit"] == "512Mi"
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in mounts


def test_the_service_reaches_the_daemon_in_the_head_pod(docs: dict[str, dict[str, Any]], head: dict[str, Any]) -> None:
    service = docs["Service"]
    assert service["spec"]["selector"] == {"ray.io/cluster": docs["RayCluster"]["metadata"]["name"],
                                           "ray.io/node-type": "head"}
    port = _production().http.port
    assert service["spec"]["ports"][0]["port"] == port and service["spec"]["ports"][0]["targetPort"] == "http"
    http = next(p for p in head["containers"][0]["ports"] if p["name"] == "http")
    assert http["containerPort"] == port


def test_ray_version_is_pyprojects_pin(docs: dict[str, dict[str, Any]]) -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert f"ray=={docs['RayCluster']['spec']['rayVersion']}" in [d.split(";")[0].split("#")[0].strip() for d in deps]
