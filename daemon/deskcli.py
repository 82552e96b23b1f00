"""``accord exceptions`` and ``accord trace``: the exception desk and the business-flow trail on the
command line. Both talk to the daemon's Redis (``redis.url``, or the embedded server's socket under
``data_dir`` while the daemon runs)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from accord.actors.context import connect
from accord.actors.desk import STATES, DeskError, Entry, ExceptionDesk, Filters
from accord.cliargs import add_config, json_flag
from accord.config.load import load
from accord.config.settings import Settings
from accord.config.types import Duration
from accord.streams.audit import AuditTrail
from accord.streams.keys import Keys
from accord.streams.scope import Scope

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any) -> None:
    desk = add_config(sub, "exceptions", help="the exception desk: list, show, retry, resolve or skip exceptions")
    actions = desk.add_subparsers(dest="action", required=True)
    listing = add_config(actions, "list", help="exceptions matching the filters (default: open ones)")
    _filters(listing)
    listing.add_argument("--limit", type=_positive, default=None,
                         help="at most this many, oldest first; the next page's cursor goes to stderr")
    listing.add_argument("--after", default="", help="the cursor a previous --limit page printed")
    json_flag(listing, "one exception")
    show = add_config(actions, "show", help="one exception in full, with its payload")
    show.add_argument("ids", nargs="+", help="exception ids (from `accord exceptions list`)")
    json_flag(show, "each exception on one line")
    for name, what in (("retry", "re-publish the failed change to the system it did not reach"),
                       ("resolve", "mark fixed by hand"), ("skip", "mark as needing nothing")):
        act = add_config(actions, name, help=what)
        act.add_argument("ids", nargs="*", help="exception ids (or --all with filters)")
        act.add_argument("--all", action="store_true", help="every exception matching the filters")
        _filters(act)
        act.add_argument("--by", default=None, help="who acts (default: the login name)")
        act.add_argument("--note", default="", help="why (kept in the desk's audit trail)")
        json_flag(act, "each outcome")
        if name == "retry":
            act.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                             help="patch a canonical field before retrying (JSON values; repeatable)")
            act.add_argument("--edit", action="store_true", help="edit the fields in $EDITOR before retrying")

    trace = add_config(sub, "trace", help="every event of one business flow, in order")
    trace.add_argument("correlation_id", help="the flow's correlation id (from an exception, a log line or a header)")
    json_flag(trace, "each event")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", default="open", choices=[*STATES, "all"], help="desk state (default: open)")
    parser.add_argument("--system", help="only exceptions of this system (source or target)")
    parser.add_argument("--entity", help="only exceptions of this entity")
    parser.add_argument("--reason", help="only this reason, e.g. violation, permanent, parked")
    parser.add_argument("--correlation-id", help="only exceptions of this business flow")
    parser.add_argument("--older-than", help="age, e.g. 15m, 2h, 1d")
    parser.add_argument("--newer-than", help="age, e.g. 15m, 2h, 1d")


def redis_url(settings: Settings) -> str:
    """Where the daemon's Redis listens: ``redis.url``, else the embedded server's socket."""
    return settings.redis.url or f"unix://{Path(settings.data_dir) / 'redis' / 'redis.sock'}"


def run(args: argparse.Namespace) -> int:
    settings = load(args.config)
    try:
        return asyncio.run(_dispatch(settings, args))
    except DeskError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE


class UsageError(ValueError):
    pass


async def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    redis = connect(redis_url(settings))
    try:
        if args.command == "trace":
            return await _trace(redis, settings, args)
        desk = ExceptionDesk(redis, Scope.of(settings))
        if args.action == "list":
            return await _list(desk, args)
        if args.action == "show":
            for eid in args.ids:
                shown = (await desk.get(eid)).as_json(full=True)
                print(json.dumps(shown, default=str) if args.json else json.dumps(shown, indent=2, default=str))
            return EXIT_OK
        return await _act(desk, args)
    finally:
        await redis.aclose()


def filters_from(args: argparse.Namespace) -> Filters:
    try:
        older = Duration.parse(args.older_than) if args.older_than else None
        newer = Duration.parse(args.newer_than) if args.newer_than else None
    except ValueError as exc:
        raise UsageError(f"--older-than/--newer-than: {exc}") from exc
    return Filters(state=None if args.state == "all" else args.state, system=args.system, entity=args.entity,
                   reason=args.reason, correlation_id=args.correlation_id, older_than_s=older, newer_than_s=newer)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


async def _list(desk: ExceptionDesk, args: argparse.Namespace) -> int:
    after = ""
    try:
        if args.limit is None and not args.after:
            entries = await desk.list(filters_from(args))
        else:
            entries, after = await desk.page(filters_from(args), args.limit or 1000, args.after)
    except DeskError as exc:
        raise UsageError(f"--after: {exc}") from exc
    if args.json:
        for entry in entries:
            print(json.dumps(entry.as_json(), default=str))
        return EXIT_OK
    for entry in entries:
        print(_line(entry))
    more = f"; next page: --after {after}" if after else ""
    print(f"{len(entries)} exception(s){more}", file=sys.stderr)
    return EXIT_OK


def _line(entry: Entry) -> str:
    r = entry.record
    age = _age((time.time() * 1000 - r.created_ms) / 1000)
    where = f"{r.entity} -> {r.target}" if r.target else f"{r.entity} <- {r.source}"
    return f"{r.exception_id}  {entry.status.state:<8} {r.reason:<15} {where:<24} {age:>6}  {r.message}"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


async def _act(desk: ExceptionDesk, args: argparse.Namespace) -> int:
    if args.all == bool(args.ids):
        raise UsageError(f"exceptions {args.action}: give exception ids, or --all with filters (not both)")
    ids = args.ids or [e.record.exception_id for e in await desk.list(filters_from(args))]
    by = args.by or _login()
    failed = 0
    for eid in ids:
        try:
            outcome = await _act_on(desk, eid, by, args)
            print(json.dumps({"id": eid, "outcome": outcome}) if args.json else f"{eid}: {outcome}")
        except DeskError as exc:
            failed += 1
            print(json.dumps({"id": eid, "error": str(exc)}) if args.json else exc, file=sys.stderr)
    print(f"{len(ids) - failed} of {len(ids)} exception(s) {args.action} done", file=sys.stderr)
    return EXIT_OK if not failed else EXIT_FAILED


async def _act_on(desk: ExceptionDesk, eid: str, by: str, args: argparse.Namespace) -> str:
    if args.action == "retry":
        edit = await _edit_for(desk, eid, args)
        return f"retried as {await desk.retry(eid, by, edit)}"
    if args.action == "resolve":
        await desk.resolve(eid, by, args.note)
        return "resolved"
    await desk.skip(eid, by, args.note)
    return "skipped"


async def _edit_for(desk: ExceptionDesk, eid: str, args: argparse.Namespace) -> dict[str, Any] | None:
    patch = parse_sets(args.set)
    if args.edit:
        payload = (await desk.get(eid)).payload() or {}
        patch = {**_edit_in_editor(eid, {**(payload.get("fields") or {}), **patch})}
    return patch or None


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``field=value`` pairs; values are JSON when they parse as JSON (``null``, ``12.5``), else text."""
    out: dict[str, Any] = {}
    for item in items:
        field, sep, raw = item.partition("=")
        if not sep or not field:
            raise UsageError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set tax_id=GB123")
        try:
            out[field] = json.loads(raw)
        except json.JSONDecodeError:
            out[field] = raw
    return out


def _edit_in_editor(eid: str, fields: dict[str, Any]) -> dict[str, Any]:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w+", suffix=".json", prefix="accord-exception-", delete=False) as tmp:
        json.dump(fields, tmp, indent=2, default=str)
    try:
        subprocess.run([*editor.split(), tmp.name], check=True)
        text = Path(tmp.name).read_text()
    finally:
        os.unlink(tmp.name)
    try:
        edited = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"exception {eid}: the edited fields are not JSON ({exc}); nothing was retried") from exc
    if not isinstance(edited, dict):
        raise UsageError(f"exception {eid}: the edited fields must be a JSON object; nothing was retried")
    return {k: v for k, v in edited.items() if fields.get(k) != v}


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


async def _trace(redis: Redis, settings: Settings, args: argparse.Namespace) -> int:
    events = await AuditTrail(Keys(settings.namespace), settings.streams.audit_retention).read(redis, args.correlation_id)
    if not events:
        print(f"no events for correlation id `{args.correlation_id}` (kept for streams.audit_retention = "
              f"{settings.streams.audit_retention:.0f}s)", file=sys.stderr)
        return EXIT_FAILED
    for event in events:
        if args.json:
            print(json.dumps(msgspec.to_builtins(event)))
        else:
            when = time.strftime("%H:%M:%S", time.gmtime(event.at_ms / 1000)) + f".{event.at_ms % 1000:03d}"
            where = f"{event.system}:{event.record}" if event.record else event.system
            print(f"{when}  {event.kind:<18} {event.entity:<11} {where:<28} {event.detail}")
    return EXIT_OK
