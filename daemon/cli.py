"""The ``accord`` command line.

Exit codes: 0 success; 1 runtime failure (or, for ``demo``, systems that do not agree at the end);
2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from accord import __version__

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accord", description="Governed streaming sync between CRM, PSA and ERP.")
    parser.add_argument("--version", action="version", version=f"accord {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon (production)")
    run.add_argument("--config", required=True, help="TOML config file")

    check = sub.add_parser("check", help="validate a config; with --live, also check the running daemon")
    check.add_argument("--config", required=True)
    check.add_argument("--live", action="store_true", help="exit 1 unless a daemon reported healthy recently")

    demo = sub.add_parser("demo", help="run the demo: sandbox CRM and ERP, embedded Redis, local Ray")
    demo.add_argument("--duration", type=float, default=60.0, help="seconds of live activity (default 60)")
    demo.add_argument("--accounts", type=int, default=40, help="accounts seeded in the CRM (default 40)")
    demo.add_argument("--rate", type=float, default=2.0, help="user edits per second (default 2)")
    demo.add_argument("--data-dir", default=None, help="where Redis keeps its AOF (default: a temp folder)")
    demo.add_argument("--port", type=int, default=0, help="/metrics port (default: any free port)")
    demo.add_argument("--no-console", action="store_true", help="plain log lines instead of the live console")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--settle-timeout", type=float, default=180.0,
                      help="after the activity, how long to wait at most for the pipeline to settle (default 180)")

    mapping = sub.add_parser("map", help="map one record read from stdin: wire -> canonical (or --to: back)")
    mapping.add_argument("--config", required=True)
    mapping.add_argument("--system", required=True)
    mapping.add_argument("--entity", required=True)
    mapping.add_argument("--to", action="store_true", help="canonical JSON in, the system's wire JSON out")

    from accord import deskcli, opscli, scalecli

    scalecli.add_parser(sub)
    deskcli.add_parsers(sub)
    opscli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from accord.config.load import ConfigError

    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG


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
    from accord.sandboxes.firm.demo import DemoOptions, run_demo  # the CLI's one door to the simulators

    return run_demo(DemoOptions(duration=args.duration, accounts=args.accounts, rate=args.rate,
                                data_dir=args.data_dir, port=args.port, console=not args.no_console,
                                seed=args.seed, settle_timeout=args.settle_timeout))


def _check(path: str, live: bool) -> int:
    from accord.config.load import load

    settings = load(path)
    print(f"{path}: OK ({len(settings.systems)} systems, {len(settings.entities)} entities)")
    if not live:
        return EXIT_OK
    return asyncio.run(_check_live(settings))


async def _check_live(settings: object) -> int:
    from accord.actors.context import connect
    from accord.config.settings import Settings
    from accord.streams.keys import Keys

    assert isinstance(settings, Settings)
    if not settings.redis.url:
        print("--live needs redis.url (the embedded Redis belongs to the running process)", file=sys.stderr)
        return EXIT_FAILED
    redis = connect(settings.redis.url)
    try:
        keys = [k async for k in redis.scan_iter(match=Keys(settings.namespace).pattern("health"))]
        healthy = bool(keys)
    except Exception as exc:
        print(f"redis unreachable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await redis.aclose()
    print("daemon healthy" if healthy else "no healthy daemon reported")
    return EXIT_OK if healthy else EXIT_FAILED


def _run(path: str) -> int:
    from accord.app import Daemon
    from accord.config.load import load
    from accord.logs import setup

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
    "check": lambda args: _check(args.config, args.live),
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
