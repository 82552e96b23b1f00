"""Every Redis key Accord uses, built in this one module (DESIGN §5).

All keys live under ``accord:{ns}:``. They carry no Redis Cluster hash tags: Accord's atomic batches (one
Lua call) touch stream, state and lease keys of several partitions together, so Accord needs a single Redis
primary (with replicas for failover), not a Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one namespace."""

    namespace: str = "default"

    @property
    def prefix(self) -> str:
        return f"accord:{self.namespace}:"

    # -- streams -------------------------------------------------------------------------------
    def changes(self, entity: str, partition: int) -> str:
        return f"{self.prefix}chg:{entity}:{partition}"

    def intake(self, system: str) -> str:
        return f"{self.prefix}intake:{system}"

    def exceptions(self) -> str:
        return f"{self.prefix}exceptions"

    def exception_index(self) -> str:
        return f"{self.prefix}exceptions:index"

    def exception_state(self) -> str:
        """Hash: exception id -> its desk state (open until an operator or a later success closes it)."""
        return f"{self.prefix}exceptions:state"

    def exceptions_open(self, entity: str, system: str, record: str) -> str:
        """Set of open exception ids of one record (its gid in a target, or its id in a source)."""
        return f"{self.prefix}exceptions:open:{entity}:{system}:{record}"

    def exceptions_by_time(self) -> str:
        """Sorted set: every exception id the desk keeps, scored by when it was filed (ms): the desk's pages."""
        return f"{self.prefix}exceptions:by_time"

    def exceptions_open_all(self) -> str:
        """Sorted set: open exception ids by filing time (ms)."""
        return f"{self.prefix}exceptions:open_all"

    def exceptions_open_kind(self, entity: str, reason: str) -> str:
        """Sorted set: open exception ids of one entity and reason by filing time (ms): counts and ages for
        the metrics without reading a single exception."""
        return f"{self.prefix}exceptions:open_kind:{entity}:{reason}"

    def exceptions_settled(self) -> str:
        """Sorted set: exception ids no longer open, scored by when they were settled (ms): the retention queue."""
        return f"{self.prefix}exceptions:settled"

    def exceptions_ledger_built(self) -> str:
        """Set once the sorted sets above were built for the exceptions filed before they existed."""
        return f"{self.prefix}exceptions:ledger_built"

    def desk_audit(self) -> str:
        """Stream of every exception desk action (who, what, when)."""
        return f"{self.prefix}audit:desk"

    def trace(self, correlation_id: str) -> str:
        """Stream of the events of one business flow (expires after ``streams.audit_retention``)."""
        return f"{self.prefix}trace:{correlation_id}"

    @staticmethod
    def group(target: str) -> str:
        return f"to:{target}"

    @staticmethod
    def consumer(partition: int) -> str:
        return f"p{partition}"

    # -- identity ------------------------------------------------------------------------------
    def xref(self, entity: str, gid: str) -> str:
        return f"{self.prefix}xref:{entity}:{gid}"

    def xid(self, entity: str, system: str, system_id: str) -> str:
        return f"{self.prefix}xid:{entity}:{system}:{system_id}"

    def xid_prefix(self, entity: str) -> str:
        """What every ``xid`` key of ``entity`` starts with (then ``{system}:{system_id}``)."""
        return self.xid(entity, "", "")[:-1]

    def alias(self, entity: str, gid: str) -> str:
        """String: a global id minted for a reference before its record was linked -> the record's gid."""
        return f"{self.prefix}alias:{entity}:{gid}"

    # -- sync state ----------------------------------------------------------------------------
    def cursor(self, system: str, entity: str) -> str:
        return f"{self.prefix}cursor:{system}:{entity}"

    def seen(self, system: str, entity: str, system_id: str) -> str:
        return f"{self.prefix}seen:{system}:{entity}:{system_id}"

    def inflight(self, system: str, entity: str, system_id: str) -> str:
        """Fields a writer is about to write to a record: the poller treats them as echoes."""
        return f"{self.prefix}inflight:{system}:{entity}:{system_id}"

    def creating(self, target: str, entity: str) -> str:
        """Hash: gid -> epoch ms a create of it was sent to the target, until a commit records it (after a
        crash, only these records may already exist there: they are looked up before being created)."""
        return f"{self.prefix}creating:{target}:{entity}"

    def version(self, target: str, entity: str, gid: str) -> str:
        return f"{self.prefix}ver:{target}:{entity}:{gid}"

    def reverts(self, system: str, entity: str, system_id: str) -> str:
        """Counter of reverts written to one record in the last hour (a loop breaker)."""
        return f"{self.prefix}reverts:{system}:{entity}:{system_id}"

    def suspects(self, system: str, entity: str) -> str:
        """Hash: record id -> a non-owner edit waiting for the owner's next read (``actors.suspects``)."""
        return f"{self.prefix}suspects:{system}:{entity}"

    def billed(self, entity: str) -> str:
        """Set of the global ids of ``entity`` records on an invoice that is not void (time, expenses)."""
        return f"{self.prefix}billed:{entity}"

    def known_ids(self, entity: str, system: str) -> str:
        """Set of a system's record ids Accord has seen (for delete detection by full id scan)."""
        return f"{self.prefix}ids:{entity}:{system}"

    def match(self, entity: str, system: str, rule: int, key: str) -> str:
        """Set of a system's record ids whose normalised match key (rule ``rule``) is ``key``."""
        return f"{self.prefix}match:{entity}:{system}:{rule}:{key}"

    def lease(self, entity: str, target: str, partition: int) -> str:
        return f"{self.prefix}lease:{entity}:{target}:{partition}"

    def token(self, system: str) -> str:
        return f"{self.prefix}token:{system}"

    def poll_pace(self, system: str) -> str:
        """Hash: entity -> seconds between its last two polls in ``system`` (the achieved interval)."""
        return f"{self.prefix}poll:{system}"

    def poll_finds(self, system: str, entity: str) -> str:
        """List: for the last 1,000 polls of an active entity that found records, the seconds since its
        previous poll (how long its changes waited to be seen, at most)."""
        return f"{self.prefix}poll:{system}:{entity}:finds"

    def budget(self, system: str) -> str:
        """Hash: the request budget of one external account (pause, throttle factor, demand, counts)."""
        return f"{self.prefix}budget:{system}"

    def budget_window(self, system: str, kind: str, requests: int, period: float) -> str:
        """Sorted set: request holder -> grant time (server clock, s) within one of the account's windows."""
        return f"{self.prefix}budget:{system}:w:{kind}:{requests}/{period:g}"

    def budget_slots(self, system: str) -> str:
        """Sorted set: request holder -> when its in-flight slot lapses if never given back."""
        return f"{self.prefix}budget:{system}:slots"

    def provisions(self) -> str:
        """Hash: opportunity gid -> its closed-won provisioning process (``streams.process``)."""
        return f"{self.prefix}provision"

    def provisions_labelled(self, step: str, state: str) -> str:
        """Set: opportunity gids whose provisioning process is at ``step`` in ``state`` (the metric's counts)."""
        return f"{self.prefix}provision:label:{step}:{state}"

    def provisions_labels_built(self) -> str:
        """Set once the label sets above hold the processes started before they existed."""
        return f"{self.prefix}provision:labels_built"

    def provisions_due(self) -> str:
        """Sorted set: opportunity gid scored by when its provisioning process runs next (epoch ms)."""
        return f"{self.prefix}provision:due"

    def reconcile(self, job: str) -> str:
        """Hash: the last report of one reconciliation job (and its counts, for metrics)."""
        return f"{self.prefix}reconcile:{job}"

    # -- business-process KPIs and SLAs (``streams.business``) ---------------------------------------
    def sla_due(self, sla: str) -> str:
        """Sorted set: items of one SLA whose clock runs, scored by their deadline (epoch ms)."""
        return f"{self.prefix}sla:{sla}:due"

    def sla_overdue(self, sla: str) -> str:
        """Sorted set: items past their deadline and not yet done (each counted once as a breach)."""
        return f"{self.prefix}sla:{sla}:overdue"

    def awaiting(self, entity: str, target: str) -> str:
        """Sorted set: gids of records waiting to be written to ``target``, scored by when they began to wait."""
        return f"{self.prefix}awaiting:{entity}:{target}"

    def unbilled(self, system: str, entity: str) -> str:
        """Hash: record id -> its unbilled contribution (``day|milli-hours|cents|currency``)."""
        return f"{self.prefix}unbilled:{system}:{entity}"

    def unbilled_totals(self, system: str, entity: str) -> str:
        """Hash: ``day|measure[|currency]`` -> unbilled milli-hours, cents or count of that work day."""
        return f"{self.prefix}unbilled:{system}:{entity}:totals"

    # -- counters and control ------------------------------------------------------------------
    def stats(self, kind: str) -> str:
        return f"{self.prefix}stats:{kind}"

    def produced(self, entity: str) -> str:
        """Hash: partition -> number of change records ever added."""
        return f"{self.prefix}stats:produced:{entity}"

    def acked(self, entity: str, target: str) -> str:
        """Hash: partition -> number of change records the target group has acked."""
        return f"{self.prefix}stats:acked:{entity}:{target}"

    def control(self) -> str:
        return f"{self.prefix}control"

    def health(self, node: str) -> str:
        return f"{self.prefix}health:{node}"

    def pattern(self, kind: str) -> str:
        """SCAN pattern for every key of one kind, e.g. ``pattern("xref")``."""
        return f"{self.prefix}{kind}:*"
