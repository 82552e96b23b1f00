"""Ray decoration at the edge: the only module that turns plain actor classes into Ray actors.

Fault tolerance comes from Redis, not from Ray retries: actors restart forever (``max_restarts=-1``)
and re-load their state from Redis, and no method is retried by Ray (``max_task_retries=0``), since a
``RayActorError`` may follow a call that did run. Every actor asks for an explicit, small CPU share so
a dozen fit on a 2-core machine.
"""

from __future__ import annotations

from typing import Any

import ray

from accord.actors.poll.poller import Poller
from accord.actors.provision.provisioner import Provisioner
from accord.actors.reconcile.scheduler import Scheduler
from accord.actors.write.writer import Writer

_COMMON: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0, "max_concurrency": 8}


def poller_actor(num_cpus: float) -> Any:
    return ray.remote(num_cpus=num_cpus, **_COMMON)(Poller)


def writer_actor(num_cpus: float) -> Any:
    return ray.remote(num_cpus=num_cpus, **_COMMON)(Writer)


def scheduler_actor(num_cpus: float) -> Any:
    return ray.remote(num_cpus=num_cpus, **_COMMON)(Scheduler)


def provisioner_actor(num_cpus: float) -> Any:
    return ray.remote(num_cpus=num_cpus, **_COMMON)(Provisioner)
