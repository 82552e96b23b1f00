"""Shared fixtures: fake Redis for unit tests, real Redis servers (embedded 6.2 and Debian's 7) for the
integration tier, and one Ray instance per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fakeredis
import pytest
from redis.asyncio import Redis

from accord.redis_server import EmbeddedRedis, bundled_binary


@pytest.fixture
async def fake_redis() -> AsyncIterator[Redis]:
    client = fakeredis.aioredis.FakeRedis()
    yield client
    await client.aclose()


def _redis7_binary() -> str | None:
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server")
                                             else None)
    if not path:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return path if " v=7." in out or " v=8." in out else None


@pytest.fixture(scope="session")
def redis_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EmbeddedRedis]]:
    servers = {"6.2": EmbeddedRedis(tmp_path_factory.mktemp("redis62"), binary=bundled_binary()).start()}
    binary7 = _redis7_binary()
    if binary7:
        servers["7"] = EmbeddedRedis(tmp_path_factory.mktemp("redis7"), binary=binary7).start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(params=["6.2", "7"])
def redis_server(request: pytest.FixtureRequest, redis_servers: dict[str, EmbeddedRedis]) -> EmbeddedRedis:
    """A real Redis of each supported major version (7 comes from Debian's redis-server package)."""
    if request.param not in redis_servers:
        if os.environ.get("ACCORD_REQUIRE_REDIS7"):
            pytest.fail("Redis 7 is required (ACCORD_REQUIRE_REDIS7) but no redis-server 7 is installed")
        pytest.skip("no Redis 7 binary here; .ci/run installs Debian's redis-server")
    return redis_servers[request.param]


@pytest.fixture
async def real_redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="accord-tests",
             object_store_memory=128 * 1024 * 1024)
    yield
    ray.shutdown()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(params=["fake", "6.2", "7"])
async def any_redis(request: pytest.FixtureRequest, redis_servers: dict[str, EmbeddedRedis]) -> AsyncIterator[Redis]:
    """The same test on fakeredis, the embedded Redis 6.2 and Debian's Redis 7."""
    if request.param == "fake":
        client: Redis = fakeredis.aioredis.FakeRedis()
    else:
        if request.param not in redis_servers:
            if os.environ.get("ACCORD_REQUIRE_REDIS7"):
                pytest.fail("Redis 7 is required (ACCORD_REQUIRE_REDIS7) but no redis-server 7 is installed")
            pytest.skip("no Redis 7 binary here; .ci/run installs Debian's redis-server")
        client = Redis.from_url(redis_servers[request.param].url)
        await client.flushall()
    yield client
    await client.aclose()
