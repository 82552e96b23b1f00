"""``accord scale`` against a real Redis server: --show (text and JSON), --replicas, --reset, and its errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from accord import scalecli
from accord.actors.budget import RedisBudgetStore
from accord.cli import main
from accord.config.load import load
from accord.connectors.budget import Priority
from accord.redis_server import EmbeddedRedis
from accord.streams.keys import Keys
from tests.unit.test_monthend import CONFIG


@pytest.fixture
def config(tmp_path: Path, redis_servers: dict[str, EmbeddedRedis], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config on a fresh namespace of the embedded Redis: 1 account writer configured, 4 partitions."""
    monkeypatch.setattr(scalecli, "SAMPLE_GAP", 0.05)
    path = tmp_path / "accord.toml"
    text = CONFIG.replace('namespace = "m"', f'namespace = "s{uuid.uuid4().hex[:8]}"').replace("replicas = 2\n", "")
    path.write_text(text + f'[redis]\nurl = "{redis_servers["6.2"].url}"\n')
    return path


def in_redis(config: Path, *steps: str) -> dict[str, str]:
    """Run ``steps`` against the config's Redis ("lag": 6 account changes the ERP has not acked; "saturate":
    spend the ERP's 4/1h window); the control hash afterwards."""
    settings = load(config)
    keys = Keys(settings.namespace)

    async def go() -> dict[str, str]:
        redis = Redis.from_url(settings.redis.url or "")
        try:
            if "lag" in steps:
                await redis.hset(keys.produced("account"), mapping={"0": 10})
                await redis.hset(keys.acked("account", "crm"), mapping={"0": 10})
                await redis.hset(keys.acked("account", "erp"), mapping={"0": 4})
            if "saturate" in steps:
                store = RedisBudgetStore(redis, keys, "erp", settings.systems["erp"].limits())
                limits = tuple(w for w in store.limits.windows if w.kind == "*")
                for _ in range(4):
                    assert await store.take(limits, Priority.BACKLOG, uuid.uuid4().hex) == 0.0
            return {k.decode(): v.decode() for k, v in (await redis.hgetall(keys.control())).items()}
        finally:
            await redis.aclose()

    return asyncio.run(go())


def scale(config: Path, *args: str) -> int:
    return main(["scale", "--config", str(config), *args])


def test_show_names_the_quota_as_the_bottleneck(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    in_redis(config, "lag", "saturate")
    assert scale(config, "--replicas", "3", "--entity", "account") == 0
    assert capsys.readouterr().out == ("account: asked for 3 writer replica(s), an override of the config's 1 "
                                       "(undo with --reset)\n")
    assert scale(config, "--show") == 0
    assert capsys.readouterr().out.splitlines() == [
        "account: 3 writer replica(s) (override of the config's 1; at most 4, streams.partitions)",
        "  -> crm: lag 0; budget 25/1s 0%; refusals 0.0/s",
        "     no lag: nothing to scale",
        "  -> erp: lag 6; budget 4/3600s 100%, 10/3600s 40%, 2/3600s batch 0%; refusals 0.0/s",
        "     the erp API quota is the bottleneck: more writers will not help",
    ]
    assert scale(config, "--show", "--entity", "account", "--json") == 0
    [entity] = json.loads(capsys.readouterr().out)["entities"]
    assert (entity["entity"], entity["replicas"], entity["source"], entity["config"], entity["max"]) == (
        "account", 3, "override", 1, 4)
    erp = {t["target"]: t for t in entity["targets"]}["erp"]
    assert erp["lag"] == 6 and erp["saturated"] and erp["used"]["4/3600s"] == 1.0
    assert erp["verdict"] == "the erp API quota is the bottleneck: more writers will not help"


def test_show_says_more_writers_may_help_when_the_budget_has_room(config: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    in_redis(config, "lag")
    assert scale(config, "--show") == 0
    out = capsys.readouterr().out
    assert "account: 1 writer replica(s) (config; at most 4, streams.partitions)" in out
    assert "  -> erp: lag 6; budget 4/3600s 0%, 10/3600s 0%, 2/3600s batch 0%; refusals 0.0/s\n" \
           "     the erp API quota has room: more writers may help (at most 4, streams.partitions)" in out


def test_reset_gives_the_config_value_back(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert scale(config, "--entity", "account", "--replicas", "4") == 0
    assert in_redis(config) == {"replicas:account": "4"}
    capsys.readouterr()
    assert scale(config, "--entity", "account", "--reset") == 0
    assert capsys.readouterr().out == "account: override removed; the config's 1 writer replica(s) apply again\n"
    assert in_redis(config) == {}
    assert scale(config, "--entity", "account", "--reset") == 0
    assert capsys.readouterr().out == "account: no override was set; the config's 1 writer replica(s) apply\n"
    assert scale(config, "--show") == 0
    assert "account: 1 writer replica(s) (config;" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--entity", "account", "--replicas", "9"],
     "--replicas: 9 must be between 1 and streams.partitions (4); more replicas than partitions would have nothing "
     "to write"),
    (["--entity", "account", "--replicas", "0"], "--replicas: 0 must be between 1"),
    (["--reset"], "--reset: says nothing about which entity; add --entity E (one of account)"),
    (["--replicas", "2"], "--replicas 2: says nothing about which entity; add --entity E (one of account)"),
    (["--show", "--entity", "invoice"], "--entity: `invoice` is not configured; expected one of account"),
])
def test_usage_errors_name_the_flag_and_exit_2(config: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                               message: str) -> None:
    assert scale(config, *args) == 2
    assert message in capsys.readouterr().err
    assert in_redis(config) == {}


def test_argument_and_config_errors_exit_2(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        scale(config, "--entity", "account")
    assert exited.value.code == 2
    assert "one of the arguments --replicas --reset --show is required" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text(config.read_text().replace("partitions = 4", "partitions = 0"))
    assert scale(broken, "--show") == 2
    assert "partitions" in capsys.readouterr().err
