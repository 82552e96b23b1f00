"""Fault suite with figures: N records through the three systems while faults play, then every record checked.

    python -m bench.chaos --records 300 --kills 4          # CI size, about 2-3 minutes on 2 cores
    python -m bench.chaos --records 20000 --kills 20       # the target configuration

Two passes in one invocation, each on a fresh embedded Redis (AOF, ``appendfsync everysec``), fresh
sandboxes and its own namespace, on one local Ray:

1. **fault-free**: the workload alone, for the baseline API calls per record;
2. **faulted**: the same workload while the fault schedule plays (``bench.chaos_faults``): ``--kills``
   ``kill -9`` of actor processes picked at random by pid (pollers, writers, provisioner, scheduler),
   ``--redis-kills`` ``kill -9`` of Redis followed by a restart on its AOF, and ``--storms`` sandbox storms
   spread over the window, a third of it in all (``--storm-rate`` of requests fail with 500/503, a lost
   response after the server acted, or a timeout; plus bursts of 429 with ``Retry-After``). The fault-free
   pass runs the same window, so both poll for as long.

The workload: sales create N accounts in the CRM (in bursts over 70% of the window) and some contacts;
sales edit accounts in the CRM and finance sets tax ids and payment terms in the ERP meanwhile. Accounts
flow CRM -> PSA clients and ERP customers, ERP-owned fields flow back, contacts flow CRM -> PSA.

After the faults, the pass waits until the pipeline is idle in Redis (produced == acked for every
partition and target, no pending entries) and every record checks out (``bench.chaos_audit``), at most
``--deadline`` seconds and no longer than 90 s without progress, then reports. The last line is JSON:
``records``, ``kills``, ``redis_restarts``, ``faults_injected``, ``lost``, ``duplicated``, ``mismatched``,
``exceptions_transient``, ``converge_seconds``, ``api_calls_per_record``, ``api_calls_per_record_fault_free``
and details. The exit code is 0 when lost, duplicated, mismatched and transient exceptions are all 0 in
both passes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import ray
from loguru import logger
from redis.asyncio import Redis

from accord.actors.logs import setup
from accord.app import Daemon
from accord.config.settings import Settings
from accord.config.types import Duration, RateLimit
from accord.redis_server import EmbeddedRedis
from accord.sandboxes.firm.demo import demo_settings
from accord.sandboxes.firm.world import World
from accord.sandboxes.salesforce.seed import account_fields, contact_fields
from accord.stuck import stuck_entries
from bench import chaos_audit, chaos_faults
from bench.kills import ActorKiller
from bench.measure import quotas_raised

ENTITIES = ("account", "contact", "opportunity", "project", "task")  # the provisioner needs the last three
FEED_SHARE = 0.7  # the workload runs over this share of the fault window
CHECK_EVERY_S = 1.0
SETTLE_S = 20.0  # idle pipeline, same findings: nothing left in motion
STALL_S = 90.0  # no progress at all (more than streams.stuck_after, the writers' safety net)


@dataclass(frozen=True)
class Options:
    records: int
    kills: int
    redis_kills: int
    storm_rate: float
    storms: int
    seed: int
    deadline: float
    window: float
    contacts: int
    edits: int
    redis_binary: str | None
    keep: bool = False


# -- settings -------------------------------------------------------------------------------------
def chaos_settings(world: World, redis_url: str, data_dir: Path, namespace: str) -> Settings:
    """The demo configuration on these sandboxes, restricted to the entities the workload drives (and
    the ones the provisioner needs), with quotas raised so they are not the bottleneck."""
    base = world.configure(demo_settings(str(data_dir), 0))
    systems = {name: msgspec.structs.replace(
        quotas_raised(system), rate_limit=RateLimit(requests=10**6, period=Duration(1.0)),  # type: ignore[type-var]
        timeout=Duration(chaos_faults.CLIENT_TIMEOUT_S)) for name, system in base.systems.items()}
    # Salesforce answers a throttle with 403 REQUEST_LIMIT_EXCEEDED and no Retry-After: back off 1 s, not a minute
    systems["crm"] = msgspec.structs.replace(systems["crm"], limit_retry_after=Duration(1.0))  # type: ignore[type-var]
    entities = {name: msgspec.structs.replace(base.entities[name],
                                              poll_interval=Duration(0.5 if name in ("account", "contact") else 2.0))
                for name in ENTITIES}
    return msgspec.structs.replace(
        base, namespace=namespace, log_level="WARNING", redis=msgspec.structs.replace(base.redis, url=redis_url),
        streams=msgspec.structs.replace(base.streams, retry_backoff_cap=Duration(5.0)),
        systems=systems, entities=entities, reconcile={"accounts_in_erp": base.reconcile["accounts_in_erp"]},
        sla={})  # the demo's SLAs name entities this workload does not drive


# -- workload -------------------------------------------------------------------------------------
class Workload:
    """What people do during the run: sales add accounts (and contacts) in the CRM in bursts and edit
    some; finance sets tax ids and payment terms on customers in the ERP."""

    def __init__(self, world: World, rng: random.Random, opts: Options, bursts: int) -> None:
        self.world = world
        self.rng = rng
        self.opts = opts
        self.bursts = max(1, bursts)
        self.accounts: list[dict[str, Any]] = []
        self.used: set[str] = set()
        self.done: Counter[str] = Counter()

    async def run(self, seconds: float) -> None:
        """Play the bursts evenly over ``seconds``."""
        started = time.monotonic()
        for i in range(self.bursts):
            await asyncio.to_thread(self.burst, i)
            await asyncio.sleep(max(0.0, started + (i + 1) * seconds / self.bursts - time.monotonic()))

    def _share(self, total: int, i: int) -> int:
        """Burst ``i``'s part of ``total`` (the parts add up to ``total``)."""
        return total * (i + 1) // self.bursts - total * i // self.bursts

    def burst(self, i: int) -> None:
        earlier = list(self.accounts)
        with self.world.crm.transaction():
            for _ in range(self._share(self.opts.records, i)):
                self._new_account()
        for _ in range(self._share(self.opts.contacts, i)):
            self._new_contact()
        for _ in range(self._share(self.opts.edits, i) if earlier else 0):
            self._edit(earlier)

    def _new_account(self) -> None:
        fields = account_fields(self.rng, self.used, multi_currency=self.world.crm.multi_currency)
        record_id = self.world.crm.user_create("Account", fields)
        self.accounts.append({"Id": record_id, **fields})
        self.done["crm: new account"] += 1

    def _new_contact(self) -> None:
        account = self.rng.choice(self.accounts)
        fields = contact_fields(self.rng, account)
        user, domain = str(fields["Email"]).split("@", 1)
        fields["Email"] = f"{user}.{self.done['crm: new contact']}@{domain}"  # match rules link by email
        self.world.crm.user_create("Contact", fields)
        self.done["crm: new contact"] += 1

    def _edit(self, accounts: list[dict[str, Any]]) -> None:
        if self.rng.random() < 0.6:
            self._crm_edit(self.rng.choice(accounts))
        else:
            self._erp_edit()

    def _crm_edit(self, account: dict[str, Any]) -> None:
        choice = self.rng.randrange(3)
        if choice == 0:
            fields = {"Website": f"https://www.edited-{self.rng.randrange(10**6)}.example"}
        elif choice == 1:
            fields = {"BillingStreet": f"{self.rng.randrange(1, 999)} Commerce Street"}
        else:
            current = (self.world.crm.get("Account", account["Id"]) or account)["Name"]
            fields = {"Name": f"{str(current).removesuffix(' Group')} Group"}
        self.world.crm.user_update("Account", account["Id"], fields)
        self.done["crm: account edited"] += 1

    def _erp_edit(self) -> None:
        with self.world.erp.lock:  # pick by id: rendering every customer per edit is quadratic
            ids = sorted(self.world.erp.realm().tables["Customer"])
        customer = self.world.erp.get("Customer", self.rng.choice(ids)) if ids else None
        if customer is None or customer.get("Job"):
            return
        if self.rng.random() < 0.5:
            country = (customer.get("BillAddr") or {}).get("Country") or "US"
            fields: dict[str, Any] = {"PrimaryTaxIdentifier": f"{country}{self.rng.randrange(10**8, 10**9)}"}
        else:
            fields = {"SalesTermRef": {"value": self.rng.choice(["1", "2", "3", "4"])}}
        self.world.erp.user_update("Customer", customer["Id"], fields)
        self.done["erp: finance edit"] += 1


# -- one pass -------------------------------------------------------------------------------------
def api_calls(world: World, since: float = 0.0) -> dict[str, int]:
    """Requests every sandbox answered (since ``since``, wall time), by ``system:endpoint``."""
    out: Counter[str] = Counter()
    for system, state in chaos_faults.sandboxes(world).items():
        for entry in state.requests.entries():
            if entry.at >= since:
                out[f"{system}:{entry.endpoint}"] += 1
    return dict(sorted(out.items()))


def actor_states(daemon: Daemon) -> dict[str, dict[str, Any]]:
    """Each actor's last health as the supervisor saw it (restarts, loop running, its counters)."""
    assert daemon.supervisor is not None
    keep = ("healthy", "restarts", "running", "pid", "written", "sweeps", "leases", "pending", "pages")
    return {name: {k: v for k, v in health.items() if k in keep}
            for name, health in daemon.supervisor.status()["actors"].items()}


@dataclass
class Convergence:
    at: float | None = None  # monotonic time everything checked out (None: it did not)
    ended: str = "deadline"  # why the wait ended: converged, settled, stalled or deadline
    state: Any = None  # the last pipeline state (or why it could not be read)


@dataclass
class _Progress:
    """The smallest backlog seen and when the pipeline last moved (backlog down, or findings changed)."""

    backlog: int | None = None
    findings: dict[str, int] | None = None
    moved_at: float = field(default_factory=time.monotonic)
    idle_since: float | None = None

    def see(self, state: chaos_audit.PipelineState, findings: dict[str, int] | None) -> None:
        now = time.monotonic()
        backlog = state.lag_entries + state.pending
        if self.backlog is None or backlog < self.backlog or (findings is not None and findings != self.findings):
            self.moved_at = now
        self.backlog = backlog if self.backlog is None else min(backlog, self.backlog)
        if findings is not None and findings != self.findings:
            self.idle_since = now
        self.findings = findings
        if findings is None:
            self.idle_since = None


async def converge(world: World, redis: Redis, settings: Settings, deadline: float) -> Convergence:
    """Wait until the pipeline is idle in Redis and every record checks out; at most until ``deadline``
    (monotonic), and no longer than ``STALL_S`` without progress (the backlog never went lower and the
    findings did not change: longer than the writers' ``stuck_after`` safety net), nor ``SETTLE_S`` with
    the pipeline idle and the same findings (nothing in motion could change them)."""
    result = Convergence()
    progress = _Progress()
    while True:
        try:
            state = result.state = await chaos_audit.pipeline_state(redis, settings)
            findings = (await chaos_audit.audit_world(world, redis, settings)).totals() if state.idle else None
            if findings is not None and not any(findings.values()):
                result.at, result.ended = time.monotonic(), "converged"
                return result
            progress.see(state, findings)
        except Exception as exc:  # Redis restarting, a sandbox mid-change: look again
            result.state = f"unreadable: {type(exc).__name__}: {exc}"
        now = time.monotonic()
        if progress.idle_since is not None and now - progress.idle_since >= SETTLE_S:
            result.ended = "settled"
            return result
        if now - progress.moved_at >= STALL_S:
            result.ended = "stalled"
            return result
        if now >= deadline:
            return result
        await asyncio.sleep(CHECK_EVERY_S)


async def direct(daemon: Daemon, world: World, server: EmbeddedRedis, opts: Options, faulted: bool) -> dict[str, Any]:
    """Run the workload (and the faults), wait for convergence, then check everything."""
    assert daemon.supervisor is not None
    settings = daemon.settings
    rng = random.Random(opts.seed)
    killer = ActorKiller(daemon.supervisor, random.Random(opts.seed + 1))
    log = chaos_faults.FaultLog()
    schedule = chaos_faults.Schedule.plan(opts.window, opts.kills, opts.redis_kills, opts.storm_rate, opts.seed,
                                          opts.storms)
    workload = Workload(world, rng, opts, bursts=int(opts.window * FEED_SHARE))
    jobs = [workload.run(opts.window * FEED_SHARE)]
    if faulted:
        jobs.append(chaos_faults.play(schedule, world, server, killer, log))
    else:  # the same window without faults: both passes poll for as long before converging
        jobs.append(asyncio.sleep(opts.window))
    await asyncio.gather(*jobs)
    settled_from = log.last_fault if faulted else time.monotonic()
    settled_wall = log.last_fault_wall if faulted else time.time()
    print(f"  workload done {dict(workload.done)}; waiting for convergence (at most {opts.deadline:.0f}s)",
          flush=True)
    redis = Redis.from_url(server.url, socket_timeout=30)
    try:
        outcome = await converge(world, redis, settings, settled_from + opts.deadline)
        calls = api_calls(world)
        calls_after = api_calls(world, since=settled_wall)
        audit = await chaos_audit.audit_world(world, redis, settings)
        state = outcome.state
        if not isinstance(state, chaos_audit.PipelineState):
            state = await chaos_audit.pipeline_state(redis, settings)
        desk = await chaos_audit.exceptions(redis, settings)
        counts = await chaos_audit.counters(redis, settings)
        stuck = [] if outcome.at is not None else [e.describe() for e in (
            await stuck_entries(redis, settings, limit=10)).entries]
    finally:
        await redis.aclose()
    return {
        "converged": outcome.at is not None,
        "wait_ended": outcome.ended,
        "converge_seconds": None if outcome.at is None else round(outcome.at - settled_from, 1),
        "waited_seconds": round(time.monotonic() - settled_from, 1),
        "pass_seconds": round(time.monotonic() - log.started, 1),
        "deadline_s": opts.deadline,
        "audit": audit.as_json(), "pipeline": state.as_json(), "exceptions": desk, "counters": counts,
        "stuck": stuck, "actors": actor_states(daemon),
        "api_calls": sum(calls.values()), "api_calls_by_endpoint": calls,
        "api_calls_after_faults": calls_after, "workload": dict(workload.done),
        "faults": chaos_faults.as_json(schedule, log, killer, world) if faulted else {},
    }


async def run_pass(opts: Options, faulted: bool, data_dir: Path) -> dict[str, Any]:
    """One pass on a fresh Redis, fresh sandboxes and its own namespace."""
    name = "faulted" if faulted else "fault-free"
    print(f"== {name} pass: {opts.records} accounts, {opts.contacts} contacts, {opts.edits} edits over "
          f"{opts.window * FEED_SHARE:.0f}s", flush=True)
    server = EmbeddedRedis(data_dir / "redis", binary=opts.redis_binary, appendfsync="everysec").start()
    world = World(qbo_rate_limit=10**9, qbo_concurrency=64, qbo_per_second=10**9, qbo_batch_limit=10**9,
                  sf_api_limit=10**9).start()
    world.psa.rate_limit = 10**9
    result: dict[str, Any] = {}
    try:
        settings = chaos_settings(world, server.url, data_dir, f"chaos{int(faulted)}s{opts.seed}")
        daemon = Daemon(settings)

        async def on_ready(d: Daemon) -> None:
            asyncio.get_running_loop().create_task(_direct(d))

        async def _direct(d: Daemon) -> None:
            try:
                result.update(await direct(d, world, server, opts, faulted))
            except Exception:
                logger.exception("the {} pass failed", name)
            finally:
                d.stop_event.set()

        await daemon.run(on_ready=on_ready, signals=False, own_ray=False)
    finally:
        world.stop()
        server.stop()
    if not result:
        raise RuntimeError(f"the {name} pass produced no result (see the log above)")
    _print_pass(name, result)
    return result


def _print_pass(name: str, r: dict[str, Any]) -> None:
    a = r["audit"]
    print(f"  {name}: {r['wait_ended']} after {r['waited_seconds']}s; lost {a['lost']}, duplicated "
          f"{a['duplicated']}, mismatched {a['mismatched']}, extra {a['extra']}; pipeline {r['pipeline']['lag_entries']}"
          f" lagging / {r['pipeline']['pending']} pending; exceptions {r['exceptions']['by_reason']}; "
          f"{r['api_calls']} API calls; counters {r['counters']}", flush=True)
    for line in (a["samples"][:10] + r["pipeline"]["stuck_slots"][:10] + r["stuck"]
                 + r["exceptions"]["transient_samples"][:5]):
        print(f"    {line}", flush=True)
    if not r["converged"]:
        print(f"    actors: {r['actors']}", flush=True)


# -- the figures ----------------------------------------------------------------------------------
def _failures(r: dict[str, Any]) -> int:
    a = r["audit"]
    return a["lost"] + a["duplicated"] + a["mismatched"] + r["exceptions"]["transient"]


def summarise(opts: Options, clean: dict[str, Any], faulted: dict[str, Any]) -> dict[str, Any]:
    a, f = faulted["audit"], faulted["faults"]
    return {
        "records": opts.records,
        "kills": f["kills"],
        "redis_restarts": f["redis_restarts"],
        "faults_injected": f["faults_injected"],
        "lost": a["lost"],
        "duplicated": a["duplicated"],
        "mismatched": a["mismatched"],
        "exceptions_transient": faulted["exceptions"]["transient"],
        "converge_seconds": faulted["converge_seconds"],
        "api_calls_per_record": round(faulted["api_calls"] / opts.records, 3),
        "api_calls_per_record_fault_free": round(clean["api_calls"] / opts.records, 3),
        "converged": faulted["converged"],
        "extra": a["extra"],
        "stranded_pending": faulted["pipeline"]["pending"],
        "lag_entries": faulted["pipeline"]["lag_entries"],
        "oldest_pending_s": faulted["pipeline"]["oldest_pending_s"],
        "wait_ended": faulted["wait_ended"],
        "exceptions": faulted["exceptions"]["by_reason"],
        "exceptions_transient_samples": faulted["exceptions"]["transient_samples"],
        "counters": faulted["counters"],
        "stuck": faulted["stuck"],
        "api_calls_after_faults": faulted["api_calls_after_faults"],
        "lost_by_target": a["lost_by_target"],
        "duplicated_by_target": a["duplicated_by_target"],
        "mismatched_by_target": a["mismatched_by_target"],
        "sandbox_faults": f["sandbox_faults"],
        "killed": [k["actor"] for k in f["killed"]],
        "missed_kills": f["missed_kills"],
        "storm_rate": opts.storm_rate,
        "storms": opts.storms,
        "seed": opts.seed,
        "window_s": opts.window,
        "deadline_s": faulted["deadline_s"],
        "contacts": opts.contacts,
        "edits": opts.edits,
        "fault_free": {"converged": clean["converged"], "converge_seconds": clean["converge_seconds"],
                       **{k: clean["audit"][k] for k in ("lost", "duplicated", "mismatched", "extra")},
                       "exceptions_transient": clean["exceptions"]["transient"],
                       "lost_by_target": clean["audit"]["lost_by_target"], "counters": clean["counters"]},
        "ok": _failures(clean) == 0 and _failures(faulted) == 0,
    }


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300, help="new CRM accounts (default 300)")
    parser.add_argument("--kills", type=int, default=4, help="kill -9 of actor processes (default 4)")
    parser.add_argument("--redis-kills", type=int, default=1, help="kill -9 + AOF restarts of Redis (default 1)")
    parser.add_argument("--storm-rate", type=float, default=0.3,
                        help="share of sandbox requests failed during a storm (default 0.3)")
    parser.add_argument("--storms", type=int, default=3, help="storms, a third of the window in all (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds at most to converge after the last fault (default max(120, records/10)); "
                             "the wait also ends after 90 s without progress")
    parser.add_argument("--window", type=float, default=None,
                        help="seconds the faults play (default max(30, records/100 + 5*kills))")
    parser.add_argument("--contacts", type=int, default=None, help="new CRM contacts (default records/10)")
    parser.add_argument("--edits", type=int, default=None, help="account edits in CRM and ERP (default records/5)")
    parser.add_argument("--redis-binary", default=None, help="redis-server to use (default: the embedded 6.2)")
    parser.add_argument("--keep", action="store_true", help="keep the passes' data (Redis AOF) for inspection")
    args = parser.parse_args(argv)
    if args.records < 1 or not 0.0 <= args.storm_rate <= 1.0:
        parser.error("--records must be positive and --storm-rate within [0, 1]")
    return Options(records=args.records, kills=args.kills, redis_kills=args.redis_kills, storm_rate=args.storm_rate,
                   storms=args.storms,
                   seed=args.seed, deadline=args.deadline or max(120.0, args.records / 10),
                   window=args.window or max(30.0, args.records / 100 + 5 * args.kills),
                   contacts=args.records // 10 if args.contacts is None else args.contacts,
                   edits=args.records // 5 if args.edits is None else args.edits, redis_binary=args.redis_binary,
                   keep=args.keep)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    setup("WARNING", json=False)
    root = Path(tempfile.mkdtemp(prefix="accord-chaos-"))
    Daemon(demo_settings(str(root), 0)).start_ray()  # one local Ray (or RAY_ADDRESS) for both passes
    try:
        clean = asyncio.run(run_pass(opts, False, root / "fault-free"))
        faulted = asyncio.run(run_pass(opts, True, root / "faulted"))
    finally:
        ray.shutdown()
        if opts.keep:
            print(f"data kept in {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarise(opts, clean, faulted)
    print(f"chaos: {summary['records']} records, {summary['kills']} kills, {summary['redis_restarts']} Redis "
          f"restarts, {summary['faults_injected']} faults: lost {summary['lost']}, duplicated {summary['duplicated']}, "
          f"mismatched {summary['mismatched']}, transient exceptions {summary['exceptions_transient']}, "
          f"{summary['stranded_pending']} entries still pending; {'OK' if summary['ok'] else 'FAILED'}")
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
