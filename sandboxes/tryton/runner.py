"""A real Tryton 8.2 server on SQLite, run locally: the template database built once and cached, cloned
and served on a free port per use, stopped cleanly.

Follows ``reference/tryton.md`` §3 and §6 (the measured recipe): ``trytond-admin`` on a pre-created file
(pitfall 2), then the company bootstrap over JSON-RPC (``bootstrap``) baked into the template; a clone is a
copy of the template file served by its own ``trytond -d <db>`` (pitfall 3) with ``TZ=UTC`` (pitfall 5),
stopped with SIGINT so the WAL is checkpointed into the file (pitfall 11).

The template lives in ``<cache>/<key>/`` where the key hashes the installed trytond distributions'
versions, the modules, the set-up code and the year (its fiscal year): a cache built otherwise is never
reused. It is built in a scratch folder and renamed
into place, under a lock file, so a crash mid-build leaves nothing that looks finished. Nothing is
downloaded: trytond and its modules come from the installed packages (the ``tryton`` extra).

What survives a crash: the finished template (a file and ``ids.json``); a clone's folder is the caller's.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import httpx

from accord.sandboxes.tryton import bootstrap as bootstrap_module
from accord.sandboxes.tryton.bootstrap import ADMIN_LOGIN, ADMIN_PASSWORD, MODULES, bootstrap

TEMPLATE_DB = "template"


def tryton_versions() -> dict[str, str]:
    """The installed trytond distributions and their versions (the template cache key)."""
    found = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in distributions()
             if d.metadata["Name"] and d.metadata["Name"].lower().replace("_", "-").startswith("trytond")}
    if "trytond" not in found:
        raise RuntimeError("trytond is not installed: pip install -e '.[tryton]' (the pinned Tryton 8.2 modules)")
    return dict(sorted(found.items()))


def _script(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} not found: install the `tryton` extra into this interpreter's environment")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(root: Path, port: int) -> Path:
    """``trytond.conf`` for databases under ``root/db`` served on ``port`` (pitfall 10: no login lock-out)."""
    (root / "db").mkdir(parents=True, exist_ok=True)
    conf = root / "trytond.conf"
    conf.write_text(f"[database]\nuri = sqlite://\npath = {root / 'db'}\n[web]\nlisten = 127.0.0.1:{port}\n"
                    "[session]\ntimeout = 3600\nmax_attempt = 1000\n", encoding="utf-8")
    return conf


class TrytonServer:
    """One ``trytond`` process serving database ``dbname`` from ``root/db`` on ``port``."""

    def __init__(self, root: Path, dbname: str, port: int | None = None) -> None:
        self.root = root
        self.dbname = dbname
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = write_config(root, self.port)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db_file(self) -> Path:
        return self.root / "db" / f"{self.dbname}.sqlite"

    def start(self, timeout: float = 60.0) -> TrytonServer:
        """Start the server and wait for ``common.server.version`` to answer."""
        with open(self.root / "server.log", "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([_script("trytond"), "-c", str(self.conf), "-d", self.dbname],
                                         stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TZ": "UTC"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"trytond exited: {(self.root / 'server.log').read_text()[-2000:]}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"trytond did not answer on {self.url} within {timeout} s")

    def _answers(self) -> bool:
        try:
            return httpx.post(f"{self.url}/rpc/", json={"id": 0, "method": "common.server.version", "params": []},
                              timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        """SIGINT (the WAL is checkpointed into the file), SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """A crash: SIGKILL, nothing checkpointed (SQLite's WAL keeps what was committed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _build(scratch: Path) -> dict[str, Any]:
    conf = write_config(scratch, free_port())
    (scratch / "db" / f"{TEMPLATE_DB}.sqlite").touch()  # pitfall 2: SQLite refuses a missing file
    (scratch / "pw").write_text(ADMIN_PASSWORD, encoding="utf-8")
    subprocess.run([_script("trytond-admin"), "-c", str(conf), "-d", TEMPLATE_DB, "-u", *MODULES,
                    "--activate-dependencies", "--email", "admin@example.com"],
                   env={**os.environ, "TRYTONPASSFILE": str(scratch / "pw"), "TZ": "UTC"}, check=True,
                   capture_output=True)
    server = TrytonServer(scratch, TEMPLATE_DB).start()
    try:
        ids = bootstrap(server.url, TEMPLATE_DB, ADMIN_LOGIN, ADMIN_PASSWORD)
    finally:
        server.stop()
    return ids


def template(cache: Path) -> tuple[Path, dict[str, Any]]:
    """The template database file and its bootstrap ids, built into ``cache`` on first use (40–55 s),
    reused afterwards while the installed trytond versions are the same."""
    versions = tryton_versions()
    recipe = Path(bootstrap_module.__file__ or "").read_bytes()  # a changed set-up is a new template
    key = hashlib.sha256(json.dumps([versions, MODULES, dt.date.today().year]).encode() + recipe).hexdigest()[:16]
    final = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse its result
        if not (final / "ids.json").exists():
            scratch = cache / f"{key}.building"
            shutil.rmtree(scratch, ignore_errors=True)
            ids = _build(scratch)
            (scratch / "versions.json").write_text(json.dumps(versions, indent=1), encoding="utf-8")
            (scratch / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            scratch.rename(final)
    return final / "db" / f"{TEMPLATE_DB}.sqlite", json.loads((final / "ids.json").read_text(encoding="utf-8"))


def clone(template_file: Path, root: Path, dbname: str = "accord") -> TrytonServer:
    """A copy of the template in ``root`` and a started server for it."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "db").mkdir(parents=True)
    shutil.copyfile(template_file, root / "db" / f"{dbname}.sqlite")
    return TrytonServer(root, dbname).start()
