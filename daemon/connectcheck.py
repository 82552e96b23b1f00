"""``accord check --connect``: call every configured system through its plug-in's connection check
(``SystemSpec.check_connection``, see ``accord.connectors.check``) and print one line per system (or one
JSON document per system with ``--json``).

Exit codes: 0 every system answered and has what the sync needs (a plug-in without a check is reported
"not checked" and does not fail the run); 1 a system refused the credentials or lacks something, even if
another could not be reached; 3 a system could not be reached (nor the daemon's Redis, where a grant
that rotates its refresh token must keep the new one).

Tokens: the checks that need the daemon's token store get it through ``TokenStores``: the daemon's Redis
(``redis.url``), or its embedded one, started here on the data folder as ``accord run`` would when its
socket is not there yet, and stopped afterwards. Nothing printed holds a secret of the configuration or
a token obtained (``accord.config.secrets``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from accord.actors.context import connect
from accord.cliargs import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, redis_errors
from accord.config.load import ConfigError
from accord.config.secrets import masked, redact, secret_values
from accord.config.settings import Settings
from accord.config.systems import SystemSettings
from accord.connectors.base import TokenCache
from accord.connectors.check import CheckContext, EntityUse, Finding, Report, finding_of
from accord.connectors.errors import ConnectorError
from accord.connectors.registry import spec_of
from accord.deskcli import redis_url
from accord.redis_server import EmbeddedRedis
from accord.streams.keys import Keys
from accord.streams.state import RedisTokenCache

DEFAULT_TIMEOUT = 10.0  # seconds per request; a whole check gets ``ROUNDS`` times that
ROUNDS = 4
LABELS = {"ok": "OK", "unchecked": "NOT CHECKED", "refused": "CREDENTIALS REFUSED", "unreachable": "UNREACHABLE",
          "failed": "FAILED", "missing": "MISSING"}
WORST_FIRST = ("refused", "failed", "missing", "unreachable")


@dataclass(frozen=True)
class SystemResult:
    """One system's verdict: ``status`` is ``ok``, ``unchecked`` or the worst kind of its findings."""

    system: str
    kind: str
    status: str
    about: str = ""
    findings: list[Finding] = field(default_factory=list)

    @classmethod
    def of(cls, system: str, kind: str, report: Report) -> SystemResult:
        kinds = {f.kind for f in report.findings}
        status = next((k for k in WORST_FIRST if k in kinds), "ok")
        return cls(system, kind, status, report.about, list(report.findings))

    def line(self) -> str:
        head = f"{self.system} ({self.kind}): {LABELS[self.status]}"
        if self.findings:
            return f"{head} - " + " | ".join(f.text() for f in self.findings)
        return f"{head} - {self.about}" if self.about else head

    def document(self) -> dict[str, object]:
        return {"system": self.system, "kind": self.kind, "status": self.status, "about": self.about,
                "findings": [{"kind": f.kind, "what": f.what, "value": f.value, "fix": f.fix} for f in self.findings]}


def uses(settings: Settings, system: str) -> dict[str, EntityUse]:
    """Every entity the configuration syncs with ``system``, and how (``EntityUse``)."""
    out: dict[str, EntityUse] = {}
    for entity, ent in settings.entities.items():
        if system not in ent.systems:
            continue
        mapped = settings.mappings.get(system, {}).get(entity)
        paths = [*(r.path for r in mapped.fields.values() if r.path), *mapped.expect] if mapped else []
        out[entity] = EntityUse(excluded=frozenset(ent.exclude.get(system, [])),
                                conditions=frozenset(f for target in ent.when.values() for f in target),
                                wire_fields=tuple(dict.fromkeys(p for p in paths if "." not in p)))
    return out


class TokenStores:
    """The daemon's Redis as the token store of every system, opened on the first need (``None`` when it
    cannot be reached); an embedded one is started here when its socket does not exist yet."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = asyncio.Lock()
        self._opened = False
        self._redis: Redis | None = None
        self._embedded: EmbeddedRedis | None = None

    async def cache(self, system: str) -> TokenCache | None:
        async with self._lock:
            if not self._opened:
                self._opened = True
                self._redis = await self._open()
        return None if self._redis is None else RedisTokenCache(self._redis, Keys(self.settings.namespace), system)

    async def _open(self) -> Redis | None:
        url = await asyncio.to_thread(self._url)
        redis = connect(url, self.settings.redis.socket_timeout)
        try:
            await redis.ping()
        except redis_errors():
            await redis.aclose()
            return None
        return redis

    def _url(self) -> str:
        """The daemon's Redis URL; the embedded server is started first when its socket is not there."""
        url = redis_url(self.settings)
        if self.settings.redis.url or Path(url.removeprefix("unix://")).exists():
            return url
        try:
            self._embedded = EmbeddedRedis(Path(self.settings.data_dir) / "redis",
                                           appendfsync=self.settings.redis.appendfsync).start()
        except (RuntimeError, OSError, ConfigError):  # no binary, or no room: the checks that need it say so
            return url
        return self._embedded.url

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)


async def check_system(name: str, system: SystemSettings, settings: Settings, stores: TokenStores,
                       request_timeout: float) -> SystemResult:
    """One system's check, its errors turned into findings (see ``accord.connectors.check``)."""
    spec = spec_of(system)
    if spec.check_connection is None:
        return SystemResult(name, spec.kind, "unchecked", f"the {spec.kind} plug-in has no connection check")
    context = CheckContext(name=name, entities=uses(settings, name), timeout=request_timeout,
                           token_cache=lambda: stores.cache(name))
    try:
        async with asyncio.timeout(request_timeout * ROUNDS):
            report = await spec.check_connection(system, context)
    except ConnectorError as exc:
        report = Report(findings=[finding_of(exc)])
    except TimeoutError:
        report = Report(findings=[Finding(kind="unreachable", what=name, value=f"no complete answer within "
                                          f"{request_timeout * ROUNDS:g} s", fix="try again, or raise --timeout")])
    except Exception as exc:  # a plug-in's bug must not hide the other systems' answers
        report = Report(findings=[Finding(kind="failed", what=f"the {spec.kind} check", value=f"crashed: "
                                          f"{type(exc).__name__}: {exc}", fix="report this with the message")])
    return SystemResult.of(name, spec.kind, report)


async def check_all(settings: Settings, request_timeout: float = DEFAULT_TIMEOUT) -> list[SystemResult]:
    """Every configured system's result, checked side by side, in the configuration's order."""
    stores = TokenStores(settings)
    try:
        return list(await asyncio.gather(*(check_system(name, system, settings, stores, request_timeout)
                                           for name, system in settings.systems.items())))
    finally:
        await stores.aclose()


def exit_code(results: list[SystemResult]) -> int:
    kinds = {f.kind for r in results for f in r.findings}
    if kinds & {"refused", "failed", "missing"}:
        return EXIT_FAILED
    return EXIT_UNREACHABLE if "unreachable" in kinds else EXIT_OK


def run(settings: Settings, *, as_json: bool = False, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Check every system, print the verdicts (secrets masked) and return the exit code."""
    redact(*secret_values(settings))
    results = asyncio.run(check_all(settings, timeout))
    for result in results:
        print(masked(json.dumps(result.document()) if as_json else result.line()))
    return exit_code(results)
