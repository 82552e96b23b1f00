"""``accord demo``: the whole product on one machine in a minute.

Embedded Redis (AOF on), a local Ray, the sandbox CRM and ERP on localhost ports seeded with a firm's
clients, people editing them, the daemon syncing, a live console, ``/metrics``, and at the end a
record-by-record comparison of CRM and ERP. Exit status 0 only when they agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import msgspec
from loguru import logger
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from accord.actors.context import connect
from accord.app import Daemon
from accord.config.load import loads
from accord.config.settings import Settings
from accord.logs import setup
from accord.pipeline_metrics import slot_stats
from accord.streams.keys import Keys
from accord.streams.state import Stats
from accord.world import Activity, Report, World, compare


@dataclass
class DemoOptions:
    duration: float = 60.0
    accounts: int = 40
    rate: float = 2.0
    data_dir: str | None = None
    port: int = 0
    console: bool = True
    seed: int = 7
    settle_timeout: float = 60.0


def demo_settings(data_dir: str, port: int) -> Settings:
    text = resources.files("accord.config").joinpath("examples/demo.toml").read_text(encoding="utf-8")
    settings = loads(text, source="demo.toml", env={})
    return msgspec.structs.replace(settings, data_dir=data_dir,
                                   http=msgspec.structs.replace(settings.http, port=port))


def run_demo(options: DemoOptions) -> int:
    data_dir = options.data_dir or tempfile.mkdtemp(prefix="accord-demo-")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    console = Console(soft_wrap=True)
    log_file = Path(data_dir) / "accord.log"
    if options.console:
        setup("INFO", json=False, sink=str(log_file))
    else:
        setup("INFO", json=False)
    world = World().start()
    try:
        rng = random.Random(options.seed)
        world.seed(options.accounts, rng, consultants=6)
        settings = world.configure(demo_settings(data_dir, options.port))
        console.print(f"[bold]Accord demo[/bold]: CRM sandbox {world.crm_server.url}, PSA sandbox "
                      f"{world.psa_server.url}, ERP sandbox {world.erp_server.url}, data in {data_dir} "
                      f"(logs: {log_file})")
        report = asyncio.run(_main(world, settings, options, rng, console))
    finally:
        world.stop()
    if report is None:
        return 1
    _print_report(console, report)
    return 0 if report.agree else 1


async def _main(world: World, settings: Settings, options: DemoOptions, rng: random.Random,
                console: Console) -> Report | None:
    daemon = Daemon(settings)
    finish = asyncio.Event()
    daemon.on_stop_request = finish.set
    result: dict[str, Report] = {}

    async def director(d: Daemon) -> None:
        console.print(f"metrics: http://{settings.http.host}:{d.http_port}/metrics  ·  "
                      f"running for {options.duration:.0f}s (Ctrl-C ends early)")
        asyncio.get_running_loop().create_task(_direct(d, world, settings, options, rng, console, finish, result))

    code = await daemon.run(on_ready=director)
    logger.info("daemon exited with {}", code)
    return result.get("report")


async def _direct(daemon: Daemon, world: World, settings: Settings, options: DemoOptions, rng: random.Random,
                  console: Console, finish: asyncio.Event, result: dict[str, Report]) -> None:
    redis = connect(daemon.redis_url)
    activity = Activity(world, rng)
    started = time.monotonic()
    try:
        live_view = _LiveView(redis, settings, activity, started)
        with Live(await live_view.render(), console=console, refresh_per_second=2,
                  transient=False) if options.console else contextlib.nullcontext() as live:
            while not finish.is_set() and time.monotonic() - started < options.duration:
                await asyncio.to_thread(activity.step)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finish.wait(), timeout=rng.expovariate(options.rate))
                if live is not None:
                    live.update(await live_view.render())
            console.print("activity stopped; waiting for the systems to settle…")
            deadline = time.monotonic() + options.settle_timeout
            report = await compare(world, redis, settings)
            while not report.agree and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                report = await compare(world, redis, settings)
                if live is not None:
                    live.update(await live_view.render())
            result["report"] = report
    except Exception:
        logger.exception("demo director failed")
    finally:
        await redis.aclose()
        daemon.stop_event.set()


class _LiveView:
    def __init__(self, redis: object, settings: Settings, activity: Activity, started: float) -> None:
        self.redis = redis
        self.settings = settings
        self.activity = activity
        self.started = started
        self.stats = Stats(Keys(settings.namespace))

    async def render(self) -> Group:
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


def _print_report(console: Console, report: Report) -> None:
    console.rule("final report: CRM · PSA · ERP, record by record")
    console.print(report.summary())
    for m in report.mismatches[:20]:
        console.print(f"  mismatch {m.gid} {m.field}: CRM={m.crm!r} ERP={m.erp!r}")
    for rid in report.missing_in_erp[:20]:
        console.print(f"  missing in ERP: CRM account {rid}")
    for rid in report.extra_in_erp[:20]:
        console.print(f"  extra in ERP: customer {rid}")
    for rid in report.not_deactivated[:20]:
        console.print(f"  deleted in CRM but active in ERP: {rid}")
    for problem in report.psa_problems[:20]:
        console.print(f"  PSA: {problem}")
