"""Ray decoration at the edge: the only module that turns plain actor classes into Ray actors.

Fault tolerance comes from Redis, not from Ray retries: actors restart forever (``max_restarts=-1``)
and re-load their state from Redis, and no method is retried by Ray (``max_task_retries=0``), since a
``RayActorError`` may follow a call that did run. Every actor asks for an explicit, small CPU share so
a dozen fit on a 2-core machine. Each actor sets up logging as the driver does before it is constructed.
"""

from __future__ import annotations

from typing import Any, TypeVar

import ray

from accord.actors.logs import setup_actor
from accord.actors.poll.poller import Poller
from accord.actors.provision.provisioner import Provisioner
from accord.actors.reconcile.scheduler import Scheduler
from accord.actors.write.writer import Writer

_COMMON: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0, "max_concurrency": 8}
T = TypeVar("T")


def _logging(cls: type[T]) -> type[T]:
    """``cls`` whose construction first sets up logging in the actor's process, as the driver does (JSON
    lines on stderr, secrets of ``settings`` masked, the actor's name on every line). Every actor class
    takes the settings first."""

    def __init__(self: Any, settings: Any, *args: Any, **kwargs: Any) -> None:
        setup_actor(settings)
        cls.__init__(self, settings, *args, **kwargs)  # type: ignore[call-arg]

    return type(cls.__name__, (cls,), {"__init__": __init__, "__qualname__": cls.__qualname__,
                                       "__module__": cls.__module__})


def poller_actor(num_cpus: float) -> Any:
    return ray.remote(num_cpus=num_cpus, **_COMMON)(_logging(Poller))


def writer_actor(num_cpus: float) -> Any:
    return ray.remote(num_cpus=num_cpus, **_COMMON)(_logging(Writer))


def scheduler_actor(num_cpus: float) -> Any:
    return ray.remote(num_cpus=num_cpus, **_COMMON)(_logging(Scheduler))


def provisioner_actor(num_cpus: float) -> Any:
    return ray.remote(num_cpus=num_cpus, **_COMMON)(_logging(Provisioner))
