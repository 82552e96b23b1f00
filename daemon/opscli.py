"""``accord replay`` (and later operations commands): act on the daemon's Redis from the command line."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from typing import Any

from accord.actors.context import connect
from accord.config.load import load
from accord.config.types import Duration
from accord.deskcli import redis_url
from accord.streams.replay import Selection, replay

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any) -> None:
    rep = sub.add_parser("replay", help="re-deliver retained change records (safe to run twice)")
    rep.add_argument("--config", required=True)
    rep.add_argument("--entity", required=True)
    rep.add_argument("--target", help="only to this system (default: every target)")
    rep.add_argument("--since", help="ISO time (2026-11-25T09:00Z) or an age (2h)")
    rep.add_argument("--until", help="ISO time or an age")
    rep.add_argument("--correlation-id")
    rep.add_argument("--dry-run", action="store_true", help="count what would be replayed")


def point_in_time(flag: str, value: str | None, now: float | None = None) -> int | None:
    """Epoch ms of ``value``: an ISO 8601 time (UTC unless it says otherwise) or an age such as ``2h``."""
    if value is None:
        return None
    try:
        return int(((now if now is not None else time.time()) - Duration.parse(value)) * 1000)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: {value!r} is neither an ISO time (2026-11-25T09:00Z) nor an age (2h)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


class UsageError(ValueError):
    pass


def run_replay(args: argparse.Namespace) -> int:
    settings = load(args.config)
    try:
        if args.entity not in settings.entities:
            raise UsageError(f"--entity: `{args.entity}` is not configured; expected one of "
                             f"{', '.join(settings.entities)}")
        if args.target is not None and args.target not in settings.entities[args.entity].systems:
            raise UsageError(f"--target: `{args.target}` does not hold {args.entity}; expected one of "
                             f"{', '.join(settings.entities[args.entity].systems)}")
        selection = Selection(entity=args.entity, target=args.target, since_ms=point_in_time("--since", args.since),
                              until_ms=point_in_time("--until", args.until), correlation_id=args.correlation_id)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE

    async def go() -> int:
        redis = connect(redis_url(settings))
        try:
            report = await replay(redis, settings, selection, f"{int(time.time() * 1000):x}", dry_run=args.dry_run)
        finally:
            await redis.aclose()
        verb = "would replay" if args.dry_run else "replayed"
        sources = ", ".join(f"{n} from {s}" for s, n in sorted(report.by_source.items())) or "none"
        print(f"{verb} {report.replayed} of {report.scanned} retained {args.entity} change(s) "
              f"to {args.target or 'every target'} ({sources}); {report.malformed} malformed skipped")
        return EXIT_OK

    return asyncio.run(go())
