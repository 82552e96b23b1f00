"""Settings Structs: the whole configuration as typed, frozen data (loaded once in ``accord.app``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from accord.config.mapping import EntityMap
from accord.config.systems import SystemSettings
from accord.config.types import Duration, Port, PositiveInt

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class RedisSettings(_Section, frozen=True):
    """``url`` unset: Accord starts an embedded Redis (AOF on) on a unix socket in ``data_dir``."""

    url: str | None = None
    socket_timeout: Duration = Duration(10.0)
    appendfsync: Literal["always", "everysec"] = "everysec"


class RaySettings(_Section, frozen=True):
    """``address`` unset (and no ``RAY_ADDRESS``): start a local Ray; else join that cluster."""

    address: str | None = None
    num_cpus: PositiveInt | None = None
    actor_cpus: Annotated[float, msgspec.Meta(ge=0, le=16)] = 0.05
    object_store_mb: Annotated[int, msgspec.Meta(ge=64)] = 256
    namespace: str = "accord"


class HttpSettings(_Section, frozen=True):
    """Two listeners. ``host``/``port``: ``/metrics``, ``/healthz``, ``/readyz`` and ``/webhooks/{system}``
    (what Prometheus and the systems' notifications reach). ``admin_host``/``admin_port``: the exception
    desk (JSON and the web page) and flow traces, every route behind ``admin_token`` (without a token, only
    clients on the local host are served; an admin listener on another address needs one)."""

    host: str = "127.0.0.1"
    port: Port = 9464
    admin_host: str = "127.0.0.1"
    admin_port: Port = 9465
    admin_token: str | None = None


class StreamSettings(_Section, frozen=True):
    partitions: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 16
    read_count: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 200
    max_deliveries: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    retention: Duration = Duration(7 * 86400.0)
    audit_retention: Duration = Duration(30 * 86400.0)  # how long `accord trace` can follow a business flow
    exception_retention: Duration = Duration(30 * 86400.0)  # settled (not open) exceptions kept for the desk
    trim_interval: Duration = Duration(30.0)
    idle_wait: Duration = Duration(0.1)
    lease_ttl: Duration = Duration(10.0)
    retry_backoff_cap: Duration = Duration(60.0)
    write_concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    stuck_after: Duration = Duration(60.0)  # a pending entry idle this long with nothing scheduled is re-read
    retry_for: Duration = Duration(600.0)  # a failing record is retried at least this long (an outage is not its fault)


Condition = str | bool | int | float | list[str | bool | int | float] | None


class LockedPolicy(_Section, frozen=True):
    """What happens to a change of a record the target has already billed (its global id is on an invoice
    that is not void) or dated in a closed period (``date_field`` on or before ``closed_through``), and to
    a record that stops meeting the target's ``when`` (an approval withdrawn) once it reached the target.

    ``block``: nothing is written; the change becomes a ``locked`` exception. ``review``: nothing is
    written; it becomes a ``finance_review`` exception. ``adjust``: an increase of ``measure`` (hours,
    amount) is written as a new adjustment record carrying the difference (the original stays, and the
    next billing run bills the adjustment); anything else (a decrease, a withdrawal) needs a credit note
    and goes to finance review. A withdrawal from a record that is not locked removes it from the target.
    """

    target: str
    policy: Literal["block", "adjust", "review"] = "review"
    measure: str | None = None
    date_field: str | None = None
    closed_through: dt.date | None = None  # the last day of the last closed period


class EntitySettings(_Section, frozen=True):
    """One entity's governance: which systems hold it, the owner system and per-field owners.

    ``match``: rules tried in order before creating a record in a target, each a list of canonical fields
    (values compared normalised); one candidate links, several become an exception for review.
    ``on_violation``: what happens when a system edits a field it does not own: ``revert`` writes the
    owner's value back, ``review`` files an exception, ``count`` only counts and logs (all three count).
    ``park_timeout``: how long a record waits for a record it references to exist in the target.
    ``poll_interval`` is how often the entity is polled while its polls find records; each empty poll
    doubles the interval up to ``poll_max_interval`` (never below ``poll_interval``), and a poll that
    finds records or a webhook hint brings it back.
    ``exclude``: per system, canonical fields not synced with it at all (e.g. a field its API can only
    hold lossily, like a free-text address).
    ``when``: per target system, the canonical field values a record must have to flow there, e.g.
    ``when.erp = { approval = "approved", billable = true }`` (a list means any of those values).
    """

    owner: str
    systems: list[str]
    fields: dict[str, str] = {}
    replicas: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 1
    poll_interval: Duration = Duration(2.0)
    poll_max_interval: Duration = Duration(60.0)
    match: list[list[str]] = []
    on_violation: Literal["revert", "review", "count"] = "revert"
    park_timeout: Duration = Duration(600.0)
    when: dict[str, dict[str, Condition]] = {}
    exclude: dict[str, list[str]] = {}
    locked: LockedPolicy | None = None


class ReconcileJob(_Section, frozen=True):
    """A scheduled comparison of one entity between the system that sends it and one that receives it.

    Records are paired through the xref. ``missing``: in the source (and meeting ``where``) but not in the
    target; ``extra``: in the target without such a source record; ``mismatched``: paired records whose
    ``fields`` differ. ``sum`` fields are totalled per ``period`` (a date field, by month) on both sides.
    ``where`` defaults to the entity's ``when`` for the target; ``target_where`` keeps only the target records
    that count (deactivated customers do not). A condition value ``"*"`` means "set to anything". Runs every ``interval`` or on ``cron``
    (5 fields, UTC), or only on demand (``accord reconcile``) when neither is set.
    """

    entity: str
    source: str
    target: str
    fields: list[str] = []
    sum: list[str] = []
    period: str | None = None
    where: dict[str, Condition] | None = None
    target_where: dict[str, Condition] = {}  # target records that count (e.g. { status = "active" })
    interval: Duration | None = None
    cron: str | None = None
    open_exceptions: bool = False  # file each finding as an exception (reason "reconcile") for review


class WbsTask(_Section, frozen=True):
    name: str
    billable: bool = True
    budget_hours: float | None = None


class WbsPhase(_Section, frozen=True):
    """One phase of a project template; Harvest has no task tree, so its tasks are named "<phase> / <task>"."""

    name: str
    tasks: list[WbsTask]


class ProjectTemplate(_Section, frozen=True):
    """The work breakdown a won deal of one service line gets in the PSA."""

    phases: list[WbsPhase]
    billing_model: str | None = None  # default: the deal's
    budget_hours: float | None = None


class ProvisioningSettings(_Section, frozen=True):
    """Closed-won provisioning: a won deal in ``crm`` gets its customer validated and linked in ``erp``, a
    project with the service line's work breakdown in ``psa``, and the project and customer ids written back.

    ``required``: account fields the ERP needs before a deal is provisioned; ``currencies``: currencies the
    firm bills in (empty: any); ``legal_entities``: delivery region -> the legal entity that delivers and
    bills (a region without one stops the deal at the customer step); ``templates``: service line ->
    work breakdown (``default`` is used for other lines); ``wait_timeout``: how long a step may wait for
    the sync (e.g. the customer to reach the ERP) before it becomes an exception.
    """

    crm: str
    psa: str
    erp: str
    templates: dict[str, ProjectTemplate]
    required: list[str] = msgspec.field(default_factory=lambda: ["name", "country", "currency"])
    currencies: list[str] = []
    legal_entities: dict[str, str] = {}
    wait_timeout: Duration = Duration(600.0)
    retry_backoff_cap: Duration = Duration(60.0)


Process = Literal["quote-to-cash", "project-to-revenue", "resource-to-margin"]
PROCESS_OF: dict[str, Process] = {  # the business process an entity's records serve (``business.processes`` overrides)
    "account": "quote-to-cash", "contact": "quote-to-cash", "opportunity": "quote-to-cash",
    "project": "project-to-revenue", "task": "project-to-revenue", "time_entry": "project-to-revenue",
    "expense": "project-to-revenue", "invoice": "project-to-revenue", "payment": "project-to-revenue",
    "resource": "resource-to-margin",
}
INVOICE_RUN = "invoice run"


class BusinessSettings(_Section, frozen=True):
    """Business-process KPIs (``accord.business_metrics``). ``processes``: entity -> process, over
    ``PROCESS_OF``; ``invoice_runs``: when the ERP's invoice run happens (cron, 5 fields, UTC), the deadline
    of SLAs with ``before = "invoice run"``; ``backlog``: entities whose records waiting for a target are
    counted (``accord_backlog_records``); the age buckets' upper edges of open exceptions and unbilled time.
    """

    processes: dict[str, Process] = {}
    invoice_runs: str | None = None
    backlog: list[str] = msgspec.field(default_factory=lambda: ["invoice", "time_entry", "expense"])
    exception_age_buckets: list[Duration] = msgspec.field(
        default_factory=lambda: [Duration(3600.0), Duration(86400.0), Duration(7 * 86400.0)])
    unbilled_age_buckets: list[Duration] = msgspec.field(
        default_factory=lambda: [Duration(7 * 86400.0), Duration(30 * 86400.0), Duration(60 * 86400.0),
                                 Duration(90 * 86400.0)])


class SlaSettings(_Section, frozen=True):
    """One service level of a business process. ``track``: what starts and stops the clock.
    ``provisioning``: a deal won (its provisioning process starts) until its customer is in the ERP and its
    project in the PSA (the project step done). ``delivery``: a change of ``entity`` that meets the
    ``target``'s ``when`` read from its source, until it is written to ``target``.
    The deadline is ``within`` after the start, or the first ``invoice_runs`` time after it (``before =
    "invoice run"``). An item is at risk ``at_risk`` before its deadline (default a fifth of ``within``,
    or a day before the invoice run); past it, it is overdue and counted once as a breach.
    """

    process: Process
    track: Literal["provisioning", "delivery"]
    entity: str | None = None
    target: str | None = None
    within: Duration | None = None
    before: Literal["invoice run"] | None = None
    at_risk: Duration | None = None
    severity: Literal["critical", "warning"] = "warning"

    def risk_window(self) -> float:
        if self.at_risk is not None:
            return float(self.at_risk)
        return float(self.within) / 5 if self.within is not None else 86400.0


class SupervisorSettings(_Section, frozen=True):
    check_interval: Duration = Duration(1.0)
    health_ttl: Duration = Duration(15.0)
    drain_timeout: Duration = Duration(20.0)


class Settings(_Section, frozen=True):
    namespace: Name = "default"
    data_dir: str = ".accord"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    redis: RedisSettings = RedisSettings()
    ray: RaySettings = RaySettings()
    http: HttpSettings = HttpSettings()
    streams: StreamSettings = StreamSettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    systems: dict[Name, SystemSettings] = {}  # decoded by kind through the plug-ins (``accord.config.load``)
    entities: dict[str, EntitySettings] = {}
    mappings: dict[str, dict[str, EntityMap]] = {}  # system -> entity -> configured field map
    lookups: dict[str, dict[str, str]] = {}  # named wire value -> canonical value tables
    reconcile: dict[Name, ReconcileJob] = {}
    provisioning: ProvisioningSettings | None = None
    business: BusinessSettings = BusinessSettings()
    sla: dict[Name, SlaSettings] = {}

    def targets_of(self, entity: str) -> list[str]:
        """Every system an entity's changes are written to (each gets a consumer group)."""
        return list(self.entities[entity].systems)

    def process_of(self, entity: str) -> str:
        """The business process an entity serves (``business.processes``, else ``PROCESS_OF``)."""
        return self.business.processes.get(entity) or PROCESS_OF.get(entity, "project-to-revenue")

    def entities_of(self, system: str) -> list[str]:
        return [name for name, ent in self.entities.items() if system in ent.systems]

    def holds(self, system: str, entity: str) -> bool:
        """Whether ``system`` keeps records of ``entity`` (so references to them are native ids there)."""
        ent = self.entities.get(entity)
        return ent is not None and system in ent.systems
