"""The command line as an operator meets it: ``--config`` anywhere or ``ACCORD_CONFIG``, one line and exit
code 3 from every command when the daemon's Redis is not there, bad input exits 2, help on every flag."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from accord.cli import _parser, main
from tests.unit.test_monthend import CONFIG

RECONCILE = '\n[reconcile.accounts]\nentity = "account"\nsource = "crm"\ntarget = "erp"\nfields = ["name"]\n'

COMMANDS = [
    ["exceptions", "list"], ["exceptions", "list", "--json"], ["exceptions", "show", "e1"],
    ["exceptions", "retry", "e1"], ["exceptions", "resolve", "e1"], ["exceptions", "skip", "--all"],
    ["trace", "c1"], ["replay", "--entity", "account"], ["replay", "--entity", "account", "--dry-run", "--json"],
    ["resync", "--system", "crm", "--entity", "account", "--since", "2h"],
    ["scale", "--show"], ["scale", "--entity", "account", "--replicas", "2"], ["scale", "--entity", "account", "--reset"],
]


@pytest.fixture(params=["embedded socket missing", "redis.url refused"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A config whose daemon is not running: the embedded server's socket under a relative data_dir does not
    exist, or redis.url points at a port nothing listens on (with a password that must not be printed)."""
    path = tmp_path / "accord.toml"
    where = ('data_dir = "relative/state"\n' if request.param.startswith("embedded")
             else '[redis]\nurl = "redis://:hunter2@127.0.0.1:1/0"\n')
    text = CONFIG + RECONCILE
    path.write_text(where + text if where.startswith("data_dir") else text + where)
    return path


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_without_a_daemon_says_so_in_one_line(config: Path, command: list[str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--config", str(config)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"accord {command[0]}: cannot reach the daemon's Redis (")
    assert "hunter2" not in line
    if "relative" in config.read_text():  # the relative data_dir became a path, not a unix:// host name
        assert str(tmp_path / "relative" / "state" / "redis" / "redis.sock") in line


def test_the_health_probe_answers_unhealthy_in_one_line(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--live", "--config", str(config)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("accord check --live: cannot reach the daemon's Redis (")


def test_config_may_stand_anywhere_or_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(CONFIG)
    assert main(["--config", str(path), "check", "--json"]) == 0
    assert main(["check", "--config", str(path)]) == 0
    monkeypatch.setenv("ACCORD_CONFIG", str(path))
    assert main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f'{{"config": "{path}", "ok": true, "systems": 2, "entities": 1}}'
    assert out[1:] == [f"{path}: OK (2 systems, 1 entities)"] * 2
    monkeypatch.delenv("ACCORD_CONFIG")
    assert main(["exceptions", "list"]) == 2
    assert capsys.readouterr().err.strip() == "accord exceptions: no config; pass --config FILE or set ACCORD_CONFIG"


def test_a_misspelt_entity_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(CONFIG)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO('{"Name": "Acme"}'))
    assert main(["map", "--config", str(path), "--system", "crm", "--entity", "acount"]) == 2
    assert "--entity: `acount` is not an entity of crm (did you mean `account`?)" in capsys.readouterr().err


def _flags(parser: argparse.ArgumentParser, path: str = "accord") -> list[tuple[str, argparse.Action]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _flags(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            out.append((f"{path} {'/'.join(action.option_strings) or action.dest}", action))
    return out


def test_every_flag_has_help_text() -> None:
    flags = _flags(_parser())
    assert len(flags) > 60
    assert [name for name, action in flags if not action.help] == []
