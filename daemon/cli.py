"""The ``accord`` command line.

Exit codes (``accord.cliargs``): 0 success; 1 runtime failure (or, for ``demo``, systems that do not agree
at the end; for ``reconcile``, findings; for ``check --connect``, refused credentials or something missing);
2 bad configuration or usage; 3 the daemon's Redis is unreachable (for ``check --connect``: a system).
``--config`` may stand anywhere on the line; without it, ``$ACCORD_CONFIG`` names the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import Callable, Sequence

from accord import __version__
from accord.cliargs import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    add_config,
    config_flag,
    config_path,
    json_flag,
    redis_errors,
    unreachable,
)

NEEDS_NO_CONFIG = {"demo"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accord", description="Governed streaming sync between CRM, PSA and ERP.",
                                     parents=[config_flag()])
    parser.add_argument("--version", action="version", version=f"accord {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    add_config(sub, "run", help="run the daemon (production)")

    check = add_config(sub, "check", help="validate a config; with --live, also check the running daemon; "
                                          "with --connect, call every configured system")
    mode = check.add_mutually_exclusive_group()
    mode.add_argument("--live", action="store_true",
                      help="exit 1 unless this host's daemon reported healthy within supervisor.health_ttl")
    mode.add_argument("--connect", action="store_true",
                      help="authenticate with every system, read from it once and report what the sync needs "
                           "that it lacks (exit 1), or that it cannot be reached (exit 3)")
    check.add_argument("--node", default=None, help="with --live: the daemon's host name (default: this host's)")
    check.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                       help="with --connect: how long one request may take (default 10)")
    json_flag(check)

    demo = sub.add_parser("demo", help="run the demo: sandbox CRM and ERP, embedded Redis, local Ray")
    demo.add_argument("--duration", type=float, default=60.0, help="seconds of live activity (default 60)")
    demo.add_argument("--accounts", type=int, default=40, help="accounts seeded in the CRM (default 40)")
    demo.add_argument("--rate", type=float, default=2.0, help="user edits per second (default 2)")
    demo.add_argument("--data-dir", default=None, help="where Redis keeps its AOF (default: a temp folder)")
    demo.add_argument("--port", type=int, default=0, help="/metrics port (default: any free port)")
    demo.add_argument("--no-console", action="store_true", help="plain log lines instead of the live console")
    demo.add_argument("--seed", type=int, default=7, help="seed of the simulated users' activity (default 7)")
    demo.add_argument("--settle-timeout", type=float, default=180.0,
                      help="after the activity, how long to wait at most for the pipeline to settle (default 180)")
    demo.add_argument("--profile", choices=("sandboxes", "tryton"), default="sandboxes",
                      help="the firm's systems: sandboxes (CRM, PSA and ERP simulators; default) or tryton (the CRM "
                           "simulator and a real local Tryton server as PSA and ERP; needs the tryton extra)")
    demo.add_argument("--cache-dir", default=None,
                      help="with --profile tryton: where its template database is built once and kept "
                           "(default ~/.cache/accord/tryton)")

    mapping = add_config(sub, "map", help="map one record read from stdin: wire -> canonical (or --to: back)")
    mapping.add_argument("--system", required=True, help="the configured system whose wire format is mapped")
    mapping.add_argument("--entity", required=True, help="the entity, e.g. account, time_entry")
    mapping.add_argument("--to", action="store_true", help="canonical JSON in, the system's wire JSON out")

    from accord import deskcli, opscli, scalecli

    scalecli.add_parser(sub)
    deskcli.add_parsers(sub)
    opscli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from accord.config.load import ConfigError

    args.config = config_path(args)
    if args.config is None and args.command not in NEEDS_NO_CONFIG:
        print(f"accord {args.command}: no config; pass --config FILE or set ACCORD_CONFIG", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except redis_errors() as exc:
        print(unreachable(args.command, exc), file=sys.stderr)
        return EXIT_UNREACHABLE


def _desk(args: argparse.Namespace) -> int:
    from accord.deskcli import run

    return run(args)


def _replay(args: argparse.Namespace) -> int:
    from accord.opscli import run_replay

    return run_replay(args)


def _resync(args: argparse.Namespace) -> int:
    from accord.opscli import run_resync

    return run_resync(args)


def _reconcile(args: argparse.Namespace) -> int:
    from accord.opscli import run_reconcile

    return run_reconcile(args)


def _map(args: argparse.Namespace) -> int:
    from accord.mapcli import run_map

    return run_map(args.config, args.system, args.entity, to_wire=args.to)


def _demo(args: argparse.Namespace) -> int:
    try:
        from accord.sandboxes.firm.demo import DemoOptions, run_demo  # the CLI's one door to the simulators
    except ModuleNotFoundError as exc:  # the production image ships without the simulators
        print(f"accord demo: the simulators are not installed here ({exc.name} is missing); the demo runs from a checkout: "
              "pip install -e '.[demo]'", file=sys.stderr)
        return 2

    return run_demo(DemoOptions(duration=args.duration, accounts=args.accounts, rate=args.rate,
                                data_dir=args.data_dir, port=args.port, console=not args.no_console,
                                seed=args.seed, settle_timeout=args.settle_timeout, profile=args.profile,
                                cache_dir=args.cache_dir))


def _check(args: argparse.Namespace) -> int:
    from accord.config.load import load

    settings = load(args.config)
    if args.connect:
        from accord.connectcheck import run

        return run(settings, as_json=args.json, timeout=args.timeout)
    if not args.live:
        print(json.dumps({"config": args.config, "ok": True, "systems": len(settings.systems),
                          "entities": len(settings.entities)}) if args.json else
              f"{args.config}: OK ({len(settings.systems)} systems, {len(settings.entities)} entities)")
        return EXIT_OK
    node = args.node or socket.gethostname()
    try:
        healthy = asyncio.run(_check_live(settings, node))
    except redis_errors() as exc:  # a health probe: unreachable is unhealthy (1), not 3
        print(unreachable("check --live", exc), file=sys.stderr)
        return EXIT_FAILED
    verdict = f"daemon on {node} healthy" if healthy else f"no healthy daemon reported from {node}"
    print(json.dumps({"config": args.config, "node": node, "healthy": healthy}) if args.json else verdict)
    return EXIT_OK if healthy else EXIT_FAILED


async def _check_live(settings: object, node: str) -> bool:
    """Whether ``node``'s supervisor wrote its health key within ``supervisor.health_ttl`` (one GET)."""
    from accord.actors.context import connect
    from accord.config.settings import Settings
    from accord.deskcli import redis_url
    from accord.streams.keys import Keys

    assert isinstance(settings, Settings)
    redis = connect(redis_url(settings))
    try:
        return bool(await redis.exists(Keys(settings.namespace).health(node)))
    finally:
        await redis.aclose()


def _run(path: str) -> int:
    from accord.actors.logs import setup
    from accord.app import Daemon
    from accord.config.load import load

    settings = load(path)
    setup(settings.log_level)

    async def main() -> int:
        return await Daemon(settings).run()

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        return EXIT_FAILED


def _scale(args: argparse.Namespace) -> int:
    from accord.scalecli import run

    return run(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": _check,
    "run": lambda args: _run(args.config),
    "scale": _scale,
    "exceptions": _desk,
    "trace": _desk,
    "replay": _replay,
    "resync": _resync,
    "reconcile": _reconcile,
    "map": _map,
    "demo": _demo,
}
