"""What every actor builds from its settings: a Redis client, the key builder and the state stores.

Clients are created lazily inside the actor's own event loop (never pickled into Ray arguments).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from accord.actors.budget import shared_budget
from accord.actors.desk import ExceptionDesk
from accord.config.settings import Settings
from accord.connectors.base import CallStats, Connector
from accord.connectors.budget import RequestBudget
from accord.connectors.registry import build_connector
from accord.streams.audit import AuditTrail
from accord.streams.keys import Keys
from accord.streams.scope import Scope
from accord.streams.state import Cursors, Identity, Projections, RedisTokenCache, Stats, Versions


def connect(url: str, socket_timeout: float = 10.0) -> Redis:
    """A redis.asyncio client for ``redis://``, ``rediss://`` or ``unix://`` URLs (auth in the URL)."""
    return Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=5.0,
                          health_check_interval=30)


@dataclass
class Context:
    settings: Settings
    redis: Redis
    keys: Keys = field(init=False)
    identity: Identity = field(init=False)
    projections: Projections = field(init=False)
    versions: Versions = field(init=False)
    cursors: Cursors = field(init=False)
    stats: Stats = field(init=False)
    audit: AuditTrail = field(init=False)
    desk: ExceptionDesk = field(init=False)
    _budgets: dict[str, RequestBudget] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.namespace)
        self.identity = Identity(self.redis, self.keys)
        self.projections = Projections(self.redis, self.keys)
        self.versions = Versions(self.redis, self.keys)
        self.cursors = Cursors(self.redis, self.keys)
        self.stats = Stats(self.keys)
        self.audit = AuditTrail(self.keys, self.settings.streams.audit_retention)
        self.desk = ExceptionDesk(self.redis, Scope.of(self.settings))

    def connector(self, system: str, *, stats: CallStats | None = None) -> Connector:
        """A new connector to configured ``system``, its OAuth tokens and request budget shared through
        Redis with every other caller of the account."""
        return build_connector(system, self.settings.systems[system], budget=self.budget(system), stats=stats,
                               token_cache=RedisTokenCache(self.redis, self.keys, system))

    def budget(self, system: str) -> RequestBudget:
        """The request budget of configured ``system``'s account (one object per process and system)."""
        if system not in self._budgets:
            self._budgets[system] = shared_budget(self.redis, self.keys, system, self.settings.systems[system])
        return self._budgets[system]

    @classmethod
    def open(cls, settings: Settings, redis_url: str) -> Context:
        return cls(settings=settings, redis=connect(redis_url, settings.redis.socket_timeout))
