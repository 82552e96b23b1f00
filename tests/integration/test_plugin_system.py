"""A fourth system plugged in from outside Accord's tree (``tests.plugins.tinyledger``: settings, connector,
mapper, sandbox and one registration) works with ``accord check``, ``accord map`` and a two-system sync
through Ray and Redis, faults included."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import tests.plugins.tinyledger  # noqa: F401  (its one registration)
from accord.app import Daemon
from accord.cli import main
from accord.config.load import loads
from accord.config.settings import Settings
from accord.connectors.registry import spec_for_kind
from accord.redis_server import EmbeddedRedis
from accord.sandboxes.local import RunningSandbox, start_local
from accord.sandboxes.salesforce.seed import seed_accounts
from tests.helpers import wait_for

CONFIG = """
namespace = "{namespace}"

[http]
port = 0
admin_port = 0

[streams]
partitions = 4
idle_wait = "50ms"
lease_ttl = "2s"
retry_backoff_cap = "1s"

[redis]
url = "{redis_url}"

[ray]
actor_cpus = 0.05

[systems.crm]
kind = "salesforce"
base_url = "{crm_url}"
client_id = "accord-sandbox"
client_secret = "sandbox-secret"

[systems.books]
kind = "tinyledger"
base_url = "{books_url}"
token = "ledger-token"

[entities.account]
owner = "crm"
systems = ["crm", "books"]
fields = {{ tax_id = "books" }}
poll_interval = "300ms"
"""


def config_text(crm: str, books: str, redis_url: str = "redis://127.0.0.1:1", namespace: str = "plug") -> str:
    return CONFIG.format(crm_url=crm, books_url=books, redis_url=redis_url, namespace=namespace)


def test_accord_check_accepts_the_plugged_in_system(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(config_text("http://127.0.0.1:1", "http://127.0.0.1:2"))
    assert main(["check", "--config", str(path)]) == 0
    path.write_text(config_text("http://127.0.0.1:1", "http://127.0.0.1:2").replace('token = "ledger-token"\n', ""))
    assert main(["check", "--config", str(path)]) == 2
    assert "$.systems.books" in capsys.readouterr().err


def test_accord_map_uses_the_plugged_in_mapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(config_text("http://127.0.0.1:1", "http://127.0.0.1:2"))
    wire = {"id": 7, "version": 3, "name": "Kestrel Ltd", "currency": "GBP", "tax_id": "GB123", "extra": 1}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(wire)))
    assert main(["map", "--config", str(path), "--system", "books", "--entity", "account"]) == 0
    canonical = json.loads(capsys.readouterr().out)
    assert canonical == {"name": "Kestrel Ltd", "currency": "GBP", "tax_id": "GB123"}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(canonical | {"website": "https://k.example"})))
    assert main(["map", "--config", str(path), "--system", "books", "--entity", "account", "--to"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "Kestrel Ltd", "currency": "GBP", "tax_id": "GB123"}


def sandbox(kind: str) -> RunningSandbox:
    spec = spec_for_kind(kind)
    assert spec is not None and spec.sandbox is not None
    return start_local(spec.sandbox)


def ledger_by_gid(books: RunningSandbox) -> Counter[str]:
    return Counter(r["accord_id"] for r in books.sandbox.state.records() if not r["deleted"])


@pytest.mark.ray
@pytest.mark.redis
@pytest.mark.slow
async def test_a_plugged_in_system_syncs_with_the_crm_through_ray_and_redis(
        ray_session: None, redis_server: EmbeddedRedis) -> None:
    crm, books = sandbox("salesforce"), sandbox("tinyledger")
    try:
        ids = seed_accounts(crm.sandbox.state, 12, random.Random(3))
        books.sandbox.state.faults.add("customers", "503", 3, after=1)
        books.sandbox.state.faults.add("customers", "drop", 2, after=2)  # created, response lost: replayed by key
        settings = loads(config_text(crm.server.url, books.server.url, redis_server.url,
                                     f"plug{random.randrange(10**6)}"))
        async with running(settings):
            await wait_for(lambda: len(ledger_by_gid(books)) == 12, timeout=90, interval=0.2,
                           message="every CRM account in TinyLedger")
            assert max(ledger_by_gid(books).values()) == 1  # nothing duplicated
            crm_state = crm.sandbox.state
            first = books.sandbox.state.records()[0]
            books.sandbox.state.edit(first["id"], tax_id="GB-999")  # TinyLedger owns tax_id
            crm_id = next(i for i in ids if crm_state.get("Account", i)["Name"] == first["name"])
            crm_state.user_update("Account", crm_id, {"Name": "Renamed Holdings Ltd"})
            await wait_for(lambda: crm_state.get("Account", crm_id)["Tax_Id__c"] == "GB-999", timeout=60,
                           interval=0.2, message="TinyLedger's tax id in the CRM")
            await wait_for(lambda: books.sandbox.state.customers[first["id"]]["name"] == "Renamed Holdings Ltd",
                           timeout=60, interval=0.2, message="the CRM's new name in TinyLedger")
        assert max(ledger_by_gid(books).values()) == 1
        assert books.sandbox.state.faults.injected()
    finally:
        crm.stop()
        books.stop()


class running:
    def __init__(self, settings: Settings) -> None:
        self.daemon = Daemon(settings)
        self.task: asyncio.Task[int] | None = None

    async def __aenter__(self) -> Daemon:
        ready = asyncio.Event()

        async def on_ready(_: Any) -> None:
            ready.set()

        self.task = asyncio.create_task(self.daemon.run(on_ready=on_ready, signals=False, own_ray=False))
        await wait_for(lambda: ready.is_set() or self.task is None or self.task.done(), timeout=60,
                       message="daemon ready")
        if self.task.done():
            self.task.result()
        return self.daemon

    async def __aexit__(self, *_: object) -> None:
        self.daemon.stop_event.set()
        assert self.task is not None
        assert await asyncio.wait_for(self.task, timeout=60) == 0


