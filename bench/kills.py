"""``kill -9`` of Accord's actor processes by pid, for the benchmarks' fault runs.

Every actor reports its process id in ``health()``; the supervisor keeps the last health of each actor
(``supervisor.status()["actors"]``). A pid is only killed when ``/proc`` says it is still a Ray worker
(``ray::...``), so a stale pid (the actor was killed and Ray has not restarted it yet) is never sent a
signal, and an actor is never killed twice in the same process.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from accord.supervisor import Supervisor


def is_ray_worker(pid: int) -> bool:
    """Whether ``pid`` is alive and is a Ray worker process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().startswith(b"ray::")
    except OSError:
        return False


def actor_pids(supervisor: Supervisor) -> dict[str, int]:
    """Actor name (``writer:account:0``, ``poller:erp``, ...) -> pid, for every actor that reported one."""
    out = {}
    for name, health in supervisor.status()["actors"].items():
        pid = health.get("pid")
        if isinstance(pid, int) and health.get("healthy"):
            out[name] = pid
    return out


@dataclass
class Kill:
    actor: str
    pid: int
    at: float  # time.monotonic()


@dataclass
class ActorKiller:
    """Kills actors with SIGKILL and remembers what it killed."""

    supervisor: Supervisor
    rng: random.Random = field(default_factory=random.Random)
    kills: list[Kill] = field(default_factory=list)

    def _killed(self) -> set[int]:
        return {k.pid for k in self.kills}

    def candidates(self, names: set[str] | None = None) -> dict[str, int]:
        """Live actors (optionally only ``names``) whose current pid has not been killed yet."""
        killed = self._killed()
        return {name: pid for name, pid in actor_pids(self.supervisor).items()
                if (names is None or name in names) and pid not in killed and is_ray_worker(pid)}

    async def kill(self, name: str, within_s: float = 60.0) -> Kill | None:
        """Kill the actor ``name`` once it runs in a fresh process; ``None`` if it did not within ``within_s``."""
        return await self._kill_from({name}, within_s)

    async def kill_random(self, within_s: float = 60.0) -> Kill | None:
        """Kill one actor chosen at random among those running in a process not killed yet."""
        return await self._kill_from(None, within_s)

    async def _kill_from(self, names: set[str] | None, within_s: float) -> Kill | None:
        deadline = time.monotonic() + within_s
        while True:
            found = self.candidates(names)
            if found:
                name = self.rng.choice(sorted(found))
                return self._signal(name, found[name])
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.1)

    def _signal(self, name: str, pid: int) -> Kill | None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        kill = Kill(actor=name, pid=pid, at=time.monotonic())
        self.kills.append(kill)
        return kill

    def report(self, since: float) -> list[dict[str, Any]]:
        """The kills as JSON-able rows, times in seconds after ``since``."""
        return [{"actor": k.actor, "pid": k.pid, "at_s": round(k.at - since, 2)} for k in self.kills]
