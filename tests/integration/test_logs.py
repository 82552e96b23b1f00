"""Logs an operator can read and may keep: every actor logs flat JSON lines named after itself, through the
driver's set-up, and no secret (configured, or a token obtained at run time) reaches any log line or trace."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
import ray
from loguru import logger

from accord.actors.logs import secret_values, setup
from accord.actors.remote import _logging
from accord.config.load import loads
from accord.redis_server import EmbeddedRedis
from accord.sandboxes.firm.activity import Activity
from tests.helpers import CRM_AND_ERP
from tests.integration.test_daemon_e2e import running_daemon

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow]

SECRET = "s3cr3t-crm-client"


class Talker:
    """A stand-in actor: logs a secret in a message, a bound value and a traceback."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def speak(self) -> str:
        logger.bind(system="crm", entity="account", correlation_id="c1", detail=f"x{SECRET}").warning(
            "the secret is {}", SECRET)
        try:
            raise RuntimeError(f"refused {SECRET}")
        except RuntimeError:
            logger.exception("call failed")
        return os.readlink("/proc/self/fd/2")  # Ray points an actor's stderr at its worker file


def test_an_actor_logs_flat_json_lines_named_after_it_with_secrets_masked(ray_session: None) -> None:
    settings = loads(CRM_AND_ERP.replace('client_secret = "y"\n', f'client_secret = "{SECRET}"\n', 1), env={})
    actor = ray.remote(num_cpus=0.01)(_logging(Talker)).options(name="talker:logs").remote(settings)
    try:
        path = ray.get(actor.speak.remote(), timeout=60)
    finally:
        ray.kill(actor)
    text = Path(path).read_text()
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{") and "talker:logs" in line]
    warning, error = lines[-2:]
    assert list(warning)[:7] == ["time", "level", "message", "system", "entity", "correlation_id", "actor"]
    assert (warning["level"], warning["message"], warning["actor"], warning["detail"]) == (
        "WARNING", "the secret is ***", "talker:logs", "x***")
    assert error["level"] == "ERROR" and error["exception"].endswith("RuntimeError: refused ***\n")
    assert "self =" not in error["exception"]  # diagnose off: no variable values in tracebacks


def _appended(files: dict[Path, int], logs_dir: Path) -> str:
    """What Ray's worker stdio files got since ``files`` (path -> size) was taken."""
    out = []
    for path in sorted(logs_dir.glob("worker-*.[eo][ru][rt]")):
        with path.open("rb") as fh:
            fh.seek(files.get(path, 0))
            out.append(fh.read().decode(errors="replace"))
    return "".join(out)


def _sizes(logs_dir: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in logs_dir.glob("worker-*.[eo][ru][rt]")}


async def test_a_full_sync_at_debug_leaves_no_secret_in_any_log_line_or_trace(
        ray_session: None, redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    logs_dir = Path(ray._private.worker._global_node.get_logs_dir_path())
    before = _sizes(logs_dir)
    driver_log = tmp_path / "driver.log"

    def debug(settings: Any) -> Any:
        setup("DEBUG", sink=str(driver_log), secrets=secret_values(settings))
        return msgspec.structs.replace(settings, log_level="DEBUG")

    async with running_daemon(redis_server, tmp_path, adjust=debug) as run:
        import random

        rng = random.Random(3)
        run.world.seed(10, rng)
        run.world.crm.faults.add("query", "503", 2)  # the CRM poller logs its failed polls
        run.world.erp.faults.add("batch,customer", "503", 1)
        await run.agreement()
        activity = Activity(run.world, rng)
        for _ in range(20):
            activity.step()
        await run.agreement()
        known = {*secret_values(run.settings), *run.world.erp.access_tokens, run.world.erp.refresh_token,
                 *run.world.crm._tokens}  # what the sandboxes issued at run time
        traces = [e for key in [k async for k in run.redis.scan_iter(match=f"{run.keys.prefix}trace:*")]
                  for e in await run.redis.lrange(key, 0, -1)]
        exceptions = list((await run.redis.hgetall(run.keys.exception_index())).values())
    setup("WARNING", json=False)
    actors = _appended(before, logs_dir)
    driver = driver_log.read_text()
    assert len(known) >= 5 and traces
    lines = [json.loads(line) for line in actors.splitlines() if line.startswith('{"time"')]
    assert {line.get("actor", "").split(":")[0] for line in lines} >= {"poller", "writer"}
    assert any("poll" in line["message"] and line.get("system") == "crm" for line in lines if line["level"] != "DEBUG")
    for secret in known:
        assert len(secret) >= 4
        assert secret not in driver, f"{secret!r} in the driver's log"
        assert secret not in actors, f"{secret!r} in an actor's log"
        assert not any(secret.encode() in e for e in [*traces, *exceptions]), f"{secret!r} in a trace"
