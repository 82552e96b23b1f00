"""Logging set-up, the same in the driver and in every actor: flat JSON lines (or plain text for the demo)
on stderr, no variable values in tracebacks (``diagnose=False``), secrets redacted by construction.

A JSON line holds ``time``, ``level``, ``message``, then ``system``, ``entity``, ``correlation_id`` and
``actor`` when known, then any other bound value, and ``exception`` (the traceback's text) on errors::

    {"time": "2026-12-04T00:00:00.123Z", "level": "WARNING", "message": "poll failed: ...",
     "system": "psa", "entity": "time_entry", "actor": "poller:default:psa"}

Redaction (``accord.config.secrets``): every secret the configuration holds (fields named like a secret
or a token, the password of ``redis.url``) and every token a connector obtains at run time is replaced
by ``***`` in the message, the bound values and the traceback of every record, before any sink sees it. Actors call ``setup_actor`` when Ray constructs them (``accord.actors.remote``); Ray forwards
their stderr to the driver's (``RAY_ENV``: no per-line prefix, no de-duplication), so every line reaches
the container's output as one JSON object.
"""

from __future__ import annotations

import datetime as dt
import json as jsonlib
import sys
import traceback
from collections.abc import Iterable
from typing import Any, TextIO

from loguru import logger

from accord.config.secrets import masked, redact, secret_values

__all__ = ["redact", "secret_values", "setup", "setup_actor", "forward_ray_lines_verbatim"]

FIRST = ("time", "level", "message", "system", "entity", "correlation_id", "actor")
PLAIN = "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}<dim>{extra[_tail]}</dim>\n"
RAY_ENV = {"RAY_DEDUP_LOGS": "0", "RAY_DISABLE_WORKER_LOG_PREFIX": "1"}

_actor: str | None = None


def _patch(record: Any) -> None:
    """Mask secrets in the message, the bound values and the exception; then render the JSON line."""
    record["message"] = masked(record["message"])
    extra = record["extra"]
    for key, value in list(extra.items()):
        if key not in ("_line", "_tail"):
            extra[key] = masked(value) if isinstance(value, str) else value
    extra["_line"] = _json_line(record)
    extra["_tail"] = _plain_tail(record)


def _json_line(record: Any) -> str:
    out: dict[str, Any] = {
        "time": record["time"].astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record["level"].name,
        "message": record["message"],
    }
    extra = {k: v for k, v in record["extra"].items() if k not in ("_line", "_tail")}
    if _actor and "actor" not in extra:
        extra["actor"] = _actor
    for key in FIRST[3:]:
        if key in extra:
            out[key] = extra.pop(key)
    out.update({k: v if isinstance(v, str | int | float | bool) or v is None else masked(str(v))
                for k, v in extra.items()})
    if record["exception"] is not None:
        kind, value, tb = record["exception"]
        out["exception"] = masked("".join(traceback.format_exception(kind, value, tb)))
    return jsonlib.dumps(out, ensure_ascii=False, default=str)


def _plain_tail(record: Any) -> str:
    """What a plain line shows after its message: the actor, the bound values, the traceback."""
    parsed = jsonlib.loads(record["extra"]["_line"])
    exception = parsed.pop("exception", "")
    rest = {k: v for k, v in parsed.items() if k not in FIRST[:3]}
    return (f"  {rest}" if rest else "") + (f"\n{exception.rstrip()}" if exception else "")


def setup(level: str = "INFO", *, json: bool = True, sink: TextIO | str | None = None,
          secrets: Iterable[str] = (), actor: str | None = None) -> None:
    """Replace every handler: one to ``sink`` (a stream or a file path; default stderr). ``secrets`` are
    masked from now on (see ``redact``); ``actor`` is added to every line of this process."""
    global _actor
    _actor = actor
    redact(*secrets)
    logger.remove()
    logger.configure(patcher=_patch)
    target = sink if sink is not None else sys.stderr
    if json:
        logger.add(target, level=level, format=lambda _record: "{extra[_line]}\n", diagnose=False, backtrace=False,
                   colorize=False)
    else:
        logger.add(target, level=level, diagnose=False, backtrace=False, format=lambda _record: PLAIN)


def forward_ray_lines_verbatim() -> None:
    """Make Ray print the actors' lines on the driver's stderr as they are: no ``(Actor pid=...)`` prefix
    and no de-duplication (which would fold JSON lines differing only in their numbers). Ray reads both
    switches from ``RAY_ENV`` when it is imported (the Dockerfile sets them); this also sets the two
    module values Ray 2.60 reads them into, for a driver that imported Ray first (tests, the CLI)."""
    import os

    os.environ.update(RAY_ENV)
    from ray._private import ray_constants, ray_logging

    ray_constants.RAY_DISABLE_WORKER_LOG_PREFIX = True  # read when ray.init registers the printer
    ray_logging.RAY_DEDUP_LOGS = False  # type: ignore[attr-defined]  # read on every batch


def setup_actor(settings: Any, json: bool = True) -> None:
    """In an actor's process, before its constructor runs: the driver's set-up, named after the actor."""
    try:
        import ray

        name = ray.get_runtime_context().get_actor_name()
    except Exception:  # not in a Ray actor (a test constructs it directly)
        name = None
    setup(getattr(settings, "log_level", "INFO"), json=json, secrets=secret_values(settings), actor=name)
