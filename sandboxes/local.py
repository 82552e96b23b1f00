"""Start a system plug-in's simulator: the ``LocalSandbox`` contract a plug-in's ``sandbox`` factory returns,
and ``Simulator``, which fits it for any state object and app builder."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from accord.config.systems import SystemSettings
from accord.sandboxes.server import SandboxServer, SandboxState

St = TypeVar("St", bound=SandboxState)


class LocalSandbox(Protocol):
    """What a system plug-in's ``sandbox`` factory returns: a simulator ready to serve, and the settings
    of a connector pointed at it. ``state`` is the simulator's own (records, ``faults``, ``clock``)."""

    state: SandboxState

    def app(self) -> Any:
        """The ASGI app of the simulated API."""
        ...

    def settings(self, base_url: str) -> SystemSettings:
        """The ``[systems.<name>]`` settings that reach this simulator at ``base_url``."""
        ...


class RunningSandbox(msgspec.Struct, kw_only=True, frozen=True, dict=True):
    sandbox: Any  # LocalSandbox
    server: Any  # SandboxServer
    settings: Any  # SystemSettings

    def stop(self) -> None:
        self.server.stop()


def load_sandbox(reference: str) -> LocalSandbox:
    """Call the ``"module:callable"`` a plug-in names as its ``sandbox`` (imported only now)."""
    module, _, name = reference.partition(":")
    factory = getattr(importlib.import_module(module), name)
    sandbox: LocalSandbox = factory()
    return sandbox


def start_local(reference: str, *, quota_scale: float = 1.0) -> RunningSandbox:
    """A plug-in's simulator served on a free localhost port, with the settings that reach it.
    ``quota_scale`` divides every quota window of the simulator (``SandboxState.quota_scale``; a plug-in
    whose state declares no quotas ignores it)."""
    sandbox = load_sandbox(reference)
    sandbox.state.quota_scale = quota_scale
    server = SandboxServer(sandbox.app()).start()
    return RunningSandbox(sandbox=sandbox, server=server, settings=sandbox.settings(server.url))


class Simulator(Generic[St]):
    """A ``LocalSandbox`` from a state, the function that builds its app, and the function that makes the
    settings of a connector pointed at a base URL."""

    def __init__(self, state: St, build_app: Callable[[St], Any],
                 settings: Callable[[St, str], SystemSettings]) -> None:
        self.state = state
        self._build_app = build_app
        self._settings = settings

    def app(self) -> Any:
        return self._build_app(self.state)

    def settings(self, base_url: str) -> SystemSettings:
        return self._settings(self.state, base_url)
