"""``accord replay`` and ``accord reconcile``: operations on the daemon's Redis and systems from the
command line."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from typing import Any

import msgspec

from accord.actors.context import connect
from accord.cliargs import add_config, json_flag
from accord.config.load import load
from accord.config.settings import Settings
from accord.config.types import Duration
from accord.deskcli import redis_url
from accord.replay import Selection, replay
from accord.streams.scope import Scope

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any) -> None:
    rep = add_config(sub, "replay", help="re-deliver retained change records (safe to run twice)")
    rep.add_argument("--entity", required=True, help="the entity whose retained changes are re-delivered")
    rep.add_argument("--target", help="only to this system (default: every target)")
    rep.add_argument("--since", help="ISO time (2026-11-25T09:00Z) or an age (2h)")
    rep.add_argument("--until", help="ISO time or an age")
    rep.add_argument("--correlation-id", help="only the changes of this business flow")
    rep.add_argument("--dry-run", action="store_true", help="count what would be replayed")
    json_flag(rep)

    res = add_config(sub, "resync", help="re-read a source from a point in time and re-deliver what it holds")
    res.add_argument("--system", required=True, help="the source system to re-read")
    res.add_argument("--entity", required=True, help="the entity to re-read")
    res.add_argument("--since", required=True, help="ISO time (2026-11-25T09:00Z) or an age (2h)")
    json_flag(res)

    rec = add_config(sub, "reconcile", help="run reconciliation now and print the report (exit 1 on findings)")
    rec.add_argument("--entity", required=True, help="the entity whose [reconcile] jobs run")
    rec.add_argument("--job", help="one job of [reconcile] (default: every job of the entity)")
    rec.add_argument("--period", help="a month, e.g. 2026-11 (default: all)")
    json_flag(rec)


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


def check_holds(settings: Settings, entity: str, flag: str, system: str | None) -> None:
    """``entity`` is configured and ``system`` (when given) holds it; else a ``UsageError`` naming the flag."""
    if entity not in settings.entities:
        raise UsageError(f"--entity: `{entity}` is not configured; expected one of {', '.join(settings.entities)}")
    systems = settings.entities[entity].systems
    if system is not None and system not in systems:
        raise UsageError(f"{flag}: `{system}` does not hold {entity}; expected one of {', '.join(systems)}")


def run_replay(args: argparse.Namespace) -> int:
    settings = load(args.config)
    try:
        check_holds(settings, args.entity, "--target", args.target)
        selection = Selection(entity=args.entity, target=args.target, since_ms=point_in_time("--since", args.since),
                              until_ms=point_in_time("--until", args.until), correlation_id=args.correlation_id)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE

    async def go() -> int:
        redis = connect(redis_url(settings))
        try:
            report = await replay(redis, Scope.of(settings), selection, f"{int(time.time() * 1000):x}", dry_run=args.dry_run)
        finally:
            await redis.aclose()
        if args.json:
            print(json.dumps({"entity": args.entity, "target": args.target, "dry_run": args.dry_run,
                              "replayed": report.replayed, "scanned": report.scanned,
                              "by_source": report.by_source, "malformed": report.malformed}))
            return EXIT_OK
        verb = "would replay" if args.dry_run else "replayed"
        sources = ", ".join(f"{n} from {s}" for s, n in sorted(report.by_source.items())) or "none"
        print(f"{verb} {report.replayed} of {report.scanned} retained {args.entity} change(s) "
              f"to {args.target or 'every target'} ({sources}); {report.malformed} malformed skipped")
        return EXIT_OK

    return asyncio.run(go())


def run_reconcile(args: argparse.Namespace) -> int:
    from accord.actors.reconcile.reconciler import Reconciler

    settings = load(args.config)
    jobs = {n: j for n, j in settings.reconcile.items() if j.entity == args.entity and args.job in (None, n)}
    if not jobs:
        configured = ", ".join(f"{n} ({j.entity})" for n, j in settings.reconcile.items()) or "none"
        print(f"--entity/--job: no [reconcile] job for {args.entity}{' named ' + args.job if args.job else ''}; "
              f"configured jobs: {configured}", file=sys.stderr)
        return EXIT_USAGE
    if args.period is not None and not _is_month(args.period):
        print(f"--period: {args.period!r} is not a month; write it as YYYY-MM, e.g. 2026-11", file=sys.stderr)
        return EXIT_USAGE

    async def go() -> int:
        redis = connect(redis_url(settings))
        reconciler = Reconciler(settings, redis)
        agree = True
        try:
            for name, job in jobs.items():
                report = await reconciler.run(name, job, args.period)
                agree = agree and report.agrees
                print(msgspec.json.encode(report).decode() if args.json else render_report(report))
        finally:
            await reconciler.aclose()
            await redis.aclose()
        return EXIT_OK if agree else EXIT_FAILED

    return asyncio.run(go())


def _is_month(text: str) -> bool:
    try:
        dt.datetime.strptime(text, "%Y-%m")
    except ValueError:
        return False
    return len(text) == 7


def render_report(report: Any) -> str:
    """A reconciliation report as text: the verdict, totals per period, then every listed finding."""
    scope = f" for {report.period}" if report.period else ""
    verdict = "AGREE" if report.agrees else "DISAGREE"
    lines = [f"reconcile {report.job}: {report.entity} {report.source} -> {report.target}{scope}: {verdict} "
             f"({report.compared} paired, {report.missing} missing, {report.extra} extra, "
             f"{report.mismatched} mismatched)"]
    for t in report.totals:
        mark = "ok" if t.agrees else "OFF"
        lines.append(f"  total {t.field:<12} {t.period:<8} {report.source}={t.source:<12} {report.target}={t.target:<12} {mark}")
    for f in report.findings:
        ids = f"{report.source}:{f.source_id or '-'} {report.target}:{f.target_id or '-'}"
        diff = "; ".join(f"{k}: {a!r} != {b!r}" for k, (a, b) in f.differences.items())
        lines.append(f"  {f.kind:<10} {ids:<40} {f.period:<8} {diff}".rstrip())
    return "\n".join(lines)


def run_resync(args: argparse.Namespace) -> int:
    from accord.streams.keys import Keys
    from accord.streams.state import Cursors

    settings = load(args.config)
    try:
        check_holds(settings, args.entity, "--system", args.system)
        since_ms = point_in_time("--since", args.since)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    assert since_ms is not None
    run_id = f"{int(time.time() * 1000):x}"

    async def go() -> None:
        redis = connect(redis_url(settings))
        try:
            await Cursors(redis, Keys(settings.namespace)).request_resync(args.system, args.entity, since_ms, run_id)
        finally:
            await redis.aclose()

    asyncio.run(go())
    when = dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC).isoformat(timespec="seconds")
    if args.json:
        print(json.dumps({"run_id": run_id, "system": args.system, "entity": args.entity, "since": when}))
        return EXIT_OK
    print(f"resync {run_id}: {args.system} {args.entity} from {when} requested; its poller re-reads and "
          "re-delivers at its next poll")
    return EXIT_OK
