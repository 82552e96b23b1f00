"""What every ``accord`` command shares: the ``--config`` flag (anywhere on the line, or ``ACCORD_CONFIG``),
``--json``, the exit codes, and the one-line answer when the daemon's Redis cannot be reached.

Exit codes: 0 success; 1 the command ran and failed (or found what it reports as a failure: findings,
disagreement, an unhealthy daemon); 2 bad configuration or usage; 3 the daemon's Redis is unreachable
(the daemon is not running, or ``redis.url``/``data_dir`` point elsewhere). ``check --live`` is a health
probe and answers 1 for an unreachable Redis too (Docker's "unhealthy"). ``check --connect`` answers 1
when a system refused the credentials or lacks what the sync needs, and 3 when a system (or the Redis
that keeps a rotated refresh token) could not be reached.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3
CONFIG_ENV = "ACCORD_CONFIG"


def config_flag() -> argparse.ArgumentParser:
    """A parent parser with ``--config``: given to the top-level parser and to every (sub-)command, so the
    flag may stand anywhere; ``SUPPRESS`` keeps a later parser from resetting a value given earlier."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                        help=f"the TOML config file (default: ${CONFIG_ENV})")
    return parent


def json_flag(parser: argparse.ArgumentParser, what: str = "the report") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON (one document per line)")


def config_path(args: argparse.Namespace, env: dict[str, str] | None = None) -> str | None:
    """``--config`` wherever it was given, else ``$ACCORD_CONFIG``."""
    given: str | None = getattr(args, "config", None)
    return given or (os.environ if env is None else env).get(CONFIG_ENV) or None


def unreachable(command: str, exc: BaseException) -> str:
    """The one line printed when a command cannot reach the daemon's Redis (redis-py's message names the
    host and port or the socket, never the password)."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"accord {command}: cannot reach the daemon's Redis ({reason}); start the daemon (`accord run`), "
            "or point redis.url / data_dir in the config at the running one")


def redis_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "Redis is not there" (imported late: the CLI starts fast without redis)."""
    from redis import exceptions

    return (exceptions.ConnectionError, exceptions.TimeoutError, exceptions.BusyLoadingError)


def add_config(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """``sub.add_parser(name, ...)`` with the shared ``--config`` flag."""
    parser: argparse.ArgumentParser = sub.add_parser(name, parents=[config_flag()], **kwargs)
    return parser
