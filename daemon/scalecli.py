"""``accord scale``: show, set or reset the writer replicas of each entity on the running daemon.

``--replicas N`` writes an override into the control hash, which the supervisor applies at its next check;
``--reset`` deletes it, so the config's ``replicas`` applies again. ``--show`` says, per entity and target,
whether more writers would help: not when the target's API budget is saturated (every caller of the
account shares one budget, so more writers only queue for the same grants), maybe when there is lag and
the budget has room.

A budget counts as saturated when a window counting every request is at least ``SATURATED`` used, or when
the budget refused requests while ``--show`` watched it for ``SAMPLE_GAP`` seconds. A window of one kind
of request only (QuickBooks' ``/batch``) is not the limit on its own: writers send single requests while
it is spent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from accord.actors.budget import RedisBudgetStore
from accord.actors.context import connect
from accord.cliargs import add_config, json_flag
from accord.config.load import load
from accord.config.settings import Settings
from accord.deskcli import redis_url
from accord.monthend_metrics import lag_by_pair, window_label
from accord.pipeline_metrics import read_counters
from accord.streams.keys import Keys
from accord.streams.replies import text_map
from accord.supervisor import Replicas, desired_replicas, reset_replicas, set_replicas

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SATURATED = 0.9  # share of a window used from which more writers will not help
SAMPLE_GAP = 1.0  # seconds between the two reads of the refusal counter

Sleep = Callable[[float], Awaitable[None]]


class UsageError(ValueError):
    pass


def add_parser(sub: Any) -> None:
    scale = add_config(sub, "scale", help="show, set or reset the writer replicas of an entity on the running daemon")
    scale.add_argument("--entity", help="the entity (required with --replicas and --reset; --show: default all)")
    action = scale.add_mutually_exclusive_group(required=True)
    action.add_argument("--replicas", type=int, help="run N writer replicas (an override of the config's replicas)")
    action.add_argument("--reset", action="store_true", help="drop the override: the config's replicas apply again")
    action.add_argument("--show", action="store_true",
                        help="replicas, lag and API budgets per entity, and whether more writers would help")
    json_flag(scale, "the outcome (with --show: one document)")


@dataclass(frozen=True)
class Budget:
    """One target system's request budget as ``--show`` saw it."""

    system: str
    used: dict[str, float]  # window label -> share used
    writes_used: float  # the highest share among the windows counting every request
    refusals_per_s: float

    @property
    def saturated(self) -> bool:
        return self.writes_used >= SATURATED or self.refusals_per_s > 0


@dataclass(frozen=True)
class TargetView:
    target: str
    lag: int  # change records the target's group has not acked
    budget: Budget
    verdict: str


@dataclass(frozen=True)
class EntityView:
    entity: str
    replicas: Replicas
    partitions: int
    targets: list[TargetView]


def verdict(target: str, lag: int, budget: Budget, replicas: int, partitions: int) -> str:
    """Whether more writers of the entity would drain its lag towards ``target`` faster."""
    if budget.saturated:
        return f"the {target} API quota is the bottleneck: more writers will not help"
    if lag <= 0:
        return "no lag: nothing to scale"
    if replicas >= partitions:
        return f"the {target} API quota has room, but {replicas} replicas is already streams.partitions"
    return f"the {target} API quota has room: more writers may help (at most {partitions}, streams.partitions)"


async def read_budgets(redis: Redis, settings: Settings, systems: Sequence[str], *,
                       gap: float = SAMPLE_GAP, sleep: Sleep = asyncio.sleep) -> dict[str, Budget]:
    """Each system's windows' use, and its refusals per second over ``gap`` seconds."""
    keys = Keys(settings.namespace)
    stores = {s: RedisBudgetStore(redis, keys, s, settings.systems[s].limits()) for s in systems}
    before = {s: (await store.counts())["denied"] for s, store in stores.items()}
    await sleep(gap)
    budgets = {}
    for system, store in stores.items():
        refused = (await store.counts())["denied"] - before[system]
        used = await store.used()
        writes = [ratio for window, ratio in used.items() if window.kind == "*"]
        budgets[system] = Budget(system=system, used={window_label(w): r for w, r in used.items()},
                                 writes_used=max(writes, default=0.0), refusals_per_s=max(0, refused) / gap)
    return budgets


async def gather(redis: Redis, settings: Settings, entities: Sequence[str], *,
                 gap: float = SAMPLE_GAP, sleep: Sleep = asyncio.sleep) -> list[EntityView]:
    """What ``--show`` prints for ``entities``."""
    keys = Keys(settings.namespace)
    wanted = desired_replicas(settings, text_map(await redis.hgetall(keys.control())))
    lag = lag_by_pair(await read_counters(redis, settings, keys))
    systems = sorted({t for e in entities for t in settings.targets_of(e)})
    budgets = await read_budgets(redis, settings, systems, gap=gap, sleep=sleep)
    partitions = settings.streams.partitions
    views = []
    for entity in entities:
        replicas = wanted[entity]
        targets = [TargetView(t, lag.get((entity, t), 0), budgets[t],
                              verdict(t, lag.get((entity, t), 0), budgets[t], replicas.replicas, partitions))
                   for t in settings.targets_of(entity)]
        views.append(EntityView(entity, replicas, partitions, targets))
    return views


def render_show(views: Sequence[EntityView]) -> str:
    lines = []
    for view in views:
        r = view.replicas
        source = "config" if r.source == "config" else f"override of the config's {r.configured}"
        lines.append(f"{view.entity}: {r.replicas} writer replica(s) ({source}; at most {view.partitions}, "
                     f"streams.partitions)")
        for t in view.targets:
            windows = ", ".join(f"{label} {ratio:.0%}" for label, ratio in t.budget.used.items()) or "no windows"
            lines.append(f"  -> {t.target}: lag {t.lag}; budget {windows}; refusals {t.budget.refusals_per_s:.1f}/s")
            lines.append(f"     {t.verdict}")
    return "\n".join(lines)


def show_json(views: Sequence[EntityView]) -> str:
    entities = [{"entity": v.entity, "replicas": v.replicas.replicas, "source": v.replicas.source,
                 "config": v.replicas.configured, "max": v.partitions,
                 "targets": [{"target": t.target, "lag": t.lag, **asdict(t.budget), "saturated": t.budget.saturated,
                              "verdict": t.verdict} for t in v.targets]}
                for v in views]
    return json.dumps({"entities": entities}, indent=2)


def check_args(settings: Settings, args: argparse.Namespace) -> list[str]:
    """The entities the command acts on; a ``UsageError`` naming the flag, the value and the fix."""
    configured = ", ".join(settings.entities)
    if args.entity is not None and args.entity not in settings.entities:
        raise UsageError(f"--entity: `{args.entity}` is not configured; expected one of {configured}")
    if args.show:
        return [args.entity] if args.entity else list(settings.entities)
    flag = "--reset" if args.reset else f"--replicas {args.replicas}"
    if args.entity is None:
        raise UsageError(f"{flag}: says nothing about which entity; add --entity E (one of {configured})")
    partitions = settings.streams.partitions
    if args.replicas is not None and not 1 <= args.replicas <= partitions:
        raise UsageError(f"--replicas: {args.replicas} must be between 1 and streams.partitions ({partitions}); "
                         f"more replicas than partitions would have nothing to write")
    return [args.entity]


def run(args: argparse.Namespace) -> int:
    settings = load(args.config)
    try:
        entities = check_args(settings, args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_act(settings, redis_url(settings), args, entities))


async def _act(settings: Settings, url: str, args: argparse.Namespace, entities: list[str]) -> int:
    redis = connect(url)
    try:
        if args.show:
            views = await gather(redis, settings, entities, gap=SAMPLE_GAP)
            print(show_json(views) if args.json else render_show(views))
            return EXIT_OK
        [entity] = entities
        configured = settings.entities[entity].replicas
        keys = Keys(settings.namespace)
        if args.reset:
            had = await reset_replicas(redis, keys, entity)
            print(json.dumps({"entity": entity, "replicas": configured, "source": "config", "override_removed": had})
                  if args.json else
                  f"{entity}: override removed; the config's {configured} writer replica(s) apply again" if had
                  else f"{entity}: no override was set; the config's {configured} writer replica(s) apply")
            return EXIT_OK
        await set_replicas(redis, keys, entity, args.replicas)
        print(json.dumps({"entity": entity, "replicas": args.replicas, "source": "override", "config": configured})
              if args.json else f"{entity}: asked for {args.replicas} writer replica(s), an override of the "
              f"config's {configured} (undo with --reset)")
        return EXIT_OK
    finally:
        await redis.aclose()
