"""A real Tryton server for the Tryton plug-in's tests: the template database is built once per machine
and trytond version set (cached beside pytest's temporary folders), cloned and served per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from accord.connectors.tryton.client import TrytonConnector
from accord.connectors.tryton.settings import TrytonSettings
from accord.sandboxes.tryton.bootstrap import Rpc
from accord.sandboxes.tryton.runner import TrytonServer, clone, template


@pytest.fixture(scope="session")
def tryton_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    # pytest keeps its last three base folders under this parent: the cache outlives one run
    return template(tmp_path_factory.getbasetemp().parent / "accord-tryton-template")


@pytest.fixture(scope="module")
def tryton_server(tryton_template: tuple[Path, dict[str, Any]],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonServer]:
    server = clone(tryton_template[0], tmp_path_factory.mktemp("tryton-run"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def settings(tryton_server: TrytonServer, tryton_template: tuple[Path, dict[str, Any]]) -> TrytonSettings:
    ids = tryton_template[1]
    return TrytonSettings(base_url=tryton_server.url, database=tryton_server.dbname, login=ids["admin_login"],
                          password=ids["admin_password"], page_size=3, timeout=10.0)


@pytest.fixture
async def connector(settings: TrytonSettings) -> AsyncIterator[TrytonConnector]:
    conn = TrytonConnector(settings, name="erp")
    yield conn
    await conn.aclose()


@pytest.fixture(scope="module")
def rpc(settings: TrytonSettings) -> Iterator[Rpc]:
    """A user working in Tryton itself (admin, over JSON-RPC; one login per module: argon2 is slow)."""
    client = Rpc(settings.base_url, settings.database)
    client.login(settings.login, settings.password)
    yield client
    client.http.close()
