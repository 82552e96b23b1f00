"""``accord exceptions`` and ``accord trace`` against a real Redis server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from accord.actors.desk import ExceptionDesk
from accord.cli import main
from accord.config.load import load
from accord.redis_server import EmbeddedRedis
from accord.streams.keys import Keys
from accord.streams.scope import Scope
from accord.streams.state import Cursors, Position
from tests.unit.test_desk import _failed_create
from tests.unit.test_sync import CONFIG, Rig


@pytest.fixture
def failed(tmp_path: Path, redis_servers: dict[str, EmbeddedRedis]) -> tuple[Path, str, str]:
    """A config file on a fresh namespace and one open exception: (config, exception id, correlation id)."""
    url = redis_servers["6.2"].url
    namespace = tmp_path.name.replace("-", "_")
    config = tmp_path / "accord.toml"
    config.write_text(CONFIG.replace('namespace = "t"', f'namespace = "{namespace}"') + f'[redis]\nurl = "{url}"\n')

    async def make() -> tuple[str, str]:
        redis = Redis.from_url(url)
        try:
            rig = await Rig(redis, config.read_text()).setup()
            _, eid = await _failed_create(rig)
            return eid, (await ExceptionDesk(redis, Scope.of(rig.settings)).get(eid)).record.correlation_id
        finally:
            await redis.aclose()

    eid, cid = asyncio.run(make())
    return config, eid, cid


def test_list_show_skip_and_trace(failed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, eid, cid = failed
    assert main(["exceptions", "--config", str(config), "list", "--json", "--system", "erp"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["exception_id"] == eid and row["status"]["state"] == "open" and row["reason"] == "permanent"

    assert main(["exceptions", "--config", str(config), "show", eid]) == 0
    assert json.loads(capsys.readouterr().out)["payload"]["fields"]["name"] == "Bad Name"

    assert main(["exceptions", "--config", str(config), "skip", "--all", "--reason", "permanent",
                 "--by", "finance", "--note", "duplicate of an ERP customer"]) == 0
    assert f"{eid}: skipped" in capsys.readouterr().out
    assert main(["exceptions", "--config", str(config), "retry", eid]) == 1
    assert "already skipped" in capsys.readouterr().err

    assert main(["trace", "--config", str(config), cid]) == 0
    out = capsys.readouterr().out
    assert out.index("published upsert") < out.index("exception") < out.index("desk skipped")
    assert main(["trace", "--config", str(config), cid, "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {e["correlation_id"] for e in events} == {cid} and events[0]["kind"] == "published upsert"


def test_list_pages_with_limit_and_after(failed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, eid, _ = failed
    assert main(["exceptions", "--config", str(config), "list", "--limit", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(eid) and "1 exception(s); next page: --after " in err
    cursor = err.rsplit("--after ", 1)[1].strip()
    assert main(["exceptions", "--config", str(config), "list", "--limit", "1", "--after", cursor]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == "0 exception(s)"
    assert main(["exceptions", "--config", str(config), "list", "--after", "not-a-cursor"]) == 2
    assert "--after" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse's own usage error: exit 2, one line
        main(["exceptions", "--config", str(config), "list", "--limit", "0"])
    assert refused.value.code == 2 and "whole number of 1 or more" in capsys.readouterr().err


def test_usage_errors_exit_2(failed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, eid, _ = failed
    assert main(["exceptions", "--config", str(config), "retry", eid, "--set", "no-equals-sign"]) == 2
    assert "expected FIELD=VALUE" in capsys.readouterr().err
    assert main(["exceptions", "--config", str(config), "resolve"]) == 2
    assert "give exception ids, or --all" in capsys.readouterr().err
    assert main(["exceptions", "--config", str(config), "list", "--older-than", "soon"]) == 2
    assert main(["trace", "--config", str(config), "no-such-flow"]) == 1


def test_replay_command(failed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, _, _ = failed
    assert main(["replay", "--config", str(config), "--entity", "account", "--target", "erp", "--dry-run"]) == 0
    assert "would replay 1 of 1 retained account change(s) to erp (1 from crm)" in capsys.readouterr().out
    assert main(["replay", "--config", str(config), "--entity", "account", "--target", "psa"]) == 2
    assert "--target: `psa` does not hold account" in capsys.readouterr().err
    assert main(["replay", "--config", str(config), "--entity", "account", "--since", "last week"]) == 2


def test_resync_command_asks_the_poller(failed: tuple[Path, str, str], capsys: pytest.CaptureFixture[str],
                                        redis_servers: dict[str, EmbeddedRedis]) -> None:
    config, _, _ = failed
    assert main(["resync", "--config", str(config), "--system", "crm", "--entity", "account", "--since", "1h"]) == 0
    assert "crm account from" in capsys.readouterr().out
    settings = load(str(config))

    async def position() -> Position:
        redis = Redis.from_url(redis_servers["6.2"].url)
        try:
            return await Cursors(redis, Keys(settings.namespace)).position("crm", "account")
        finally:
            await redis.aclose()

    pending = asyncio.run(position())
    assert pending.resync_pending and pending.resync_since_ms is not None
    assert main(["resync", "--config", str(config), "--system", "psa", "--entity", "account", "--since", "1h"]) == 2
