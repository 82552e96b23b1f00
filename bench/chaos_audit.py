"""What the chaos benchmark checks once the faults are over: the pipeline's state in Redis (lag, pending
entries), every record of every sandbox, and the exception desk.

The record-by-record check pairs each CRM account with its PSA client and ERP customer, and each CRM
contact with its PSA contact, through the global id (the xref in Redis, or the gid Accord stamped on the
record). Per target it counts:

* ``lost``: a source record with no twin in the target;
* ``duplicated``: more than one twin for one source record, or a target record that is not linked to any
  source record but carries a source record's name (a second copy made without a link);
* ``mismatched``: a twin whose compared fields differ from the source's (owned fields flow both ways:
  ERP-owned ``tax_id``/``payment_terms`` are compared on the CRM account too);
* ``extra``: a target record linked to nothing that looks like nothing (should not exist either).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from accord.actors.desk import ExceptionDesk, Filters
from accord.config.settings import Settings
from accord.connectors.harvest import mapping as harvest_mapping
from accord.connectors.quickbooks import mapping as qbo_mapping
from accord.connectors.salesforce import mapping as sf_mapping
from accord.pipeline_metrics import slot_stats
from accord.sandboxes.firm.world import World
from accord.streams.keys import Keys
from accord.streams.scope import Scope
from accord.streams.state import Stats

COMPARED_FIELDS = ("name", "website", "billing_address", "country", "currency", "tax_id", "payment_terms")

ACCOUNT_FIELDS = {"erp": COMPARED_FIELDS, "psa": ("name", "currency", "status")}
CONTACT_FIELDS = ("account", "first_name", "last_name", "email")
SAMPLES = 20

# an exception caused by a transient failure: retries should have absorbed it
TRANSIENT_REASONS = {"max_deliveries"}
_TRANSIENT_TEXT = re.compile(r"\b(429|5\d\d|time[d ]?out|timeout|retryable|ratelimited|rate.limit|throttl|"
                             r"unavailable|temporar|connect(ion)?error|readerror|remoteprotocol)", re.IGNORECASE)


# -- the pipeline ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineState:
    """Sums over every (entity, target group, partition) slot."""

    lag_entries: int  # produced - acked
    pending: int  # XPENDING: delivered, not acked
    oldest_pending_s: float
    stuck_slots: list[str]

    @property
    def idle(self) -> bool:
        return self.lag_entries == 0 and self.pending == 0

    def as_json(self) -> dict[str, Any]:
        return {"lag_entries": self.lag_entries, "pending": self.pending,
                "oldest_pending_s": round(self.oldest_pending_s, 1), "stuck_slots": self.stuck_slots[:SAMPLES]}


async def pipeline_state(redis: Redis, settings: Settings) -> PipelineState:
    slots = await slot_stats(redis, settings, Keys(settings.namespace))
    stuck = [f"{s.entity}:{s.target}:p{s.partition} lag={s.lag_entries} pending={s.pending} "
             f"idle={s.oldest_pending_seconds:.0f}s" for s in slots if s.lag_entries or s.pending]
    return PipelineState(lag_entries=sum(s.lag_entries for s in slots), pending=sum(s.pending for s in slots),
                         oldest_pending_s=max((s.oldest_pending_seconds for s in slots), default=0.0),
                         stuck_slots=stuck)


COUNTED = ("skipped", "stuck", "parked", "deferred", "exceptions")


async def counters(redis: Redis, settings: Settings) -> dict[str, int]:
    """The writers' record counters that explain a finding: skipped (by reason), stuck, parked, deferred."""
    counts = await Stats(Keys(settings.namespace)).read(redis, Stats.RECORDS)
    return {":".join(parts): n for parts, n in sorted(counts.items()) if parts and parts[0] in COUNTED}


# -- the exception desk ---------------------------------------------------------------------------
def is_transient(reason: str, message: str) -> bool:
    """An exception that a retry would have cured: out of deliveries, or refused with a 5xx/429/timeout."""
    return reason in TRANSIENT_REASONS or (reason not in ("reconcile", "governance") and
                                           bool(_TRANSIENT_TEXT.search(message)))


async def exceptions(redis: Redis, settings: Settings) -> dict[str, Any]:
    """Every exception filed (whatever its desk state), by reason, and the transient ones."""
    entries = await ExceptionDesk(redis, Scope.of(settings)).list(Filters(state=None))
    by_reason = Counter(e.record.reason for e in entries)
    transient = [e for e in entries if is_transient(e.record.reason, e.record.message)]
    return {"total": len(entries), "by_reason": dict(by_reason), "transient": len(transient),
            "transient_samples": [f"{e.record.entity}->{e.record.target} {e.record.reason}: {e.record.message[:160]}"
                                  for e in transient[:SAMPLES]]}


# -- the records ----------------------------------------------------------------------------------
@dataclass
class Twin:
    id: str
    gid: str | None
    fields: dict[str, Any]


@dataclass
class Audit:
    """The verdict of the record-by-record check (counts per ``entity:target``)."""

    checked: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    duplicated: Counter[str] = field(default_factory=Counter)
    mismatched: Counter[str] = field(default_factory=Counter)
    extra: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatched or self.extra)

    def note(self, text: str) -> None:
        if len(self.samples) < SAMPLES:
            self.samples.append(text)

    def totals(self) -> dict[str, int]:
        return {"lost": sum(self.lost.values()), "duplicated": sum(self.duplicated.values()),
                "mismatched": sum(self.mismatched.values()), "extra": sum(self.extra.values())}

    def as_json(self) -> dict[str, Any]:
        return {**self.totals(), "checked": dict(self.checked), "lost_by_target": dict(self.lost),
                "duplicated_by_target": dict(self.duplicated), "mismatched_by_target": dict(self.mismatched),
                "extra_by_target": dict(self.extra), "samples": self.samples}


async def _gids(redis: Redis, keys: Keys, entity: str, system: str, ids: Sequence[str]) -> list[str | None]:
    """The global id of each system record (pipelined look-ups of the xref)."""
    out: list[str | None] = []
    for i in range(0, len(ids), 2000):
        async with redis.pipeline(transaction=False) as pipe:
            for system_id in ids[i: i + 2000]:
                pipe.get(keys.xid(entity, system, system_id))
            out.extend(raw.decode() if raw else None for raw in await pipe.execute())
    return out


async def _twins(redis: Redis, keys: Keys, entity: str, system: str, records: list[Twin]) -> list[Twin]:
    """``records`` with their gid from the xref (or, failing that, the gid Accord stamped on them)."""
    linked = await _gids(redis, keys, entity, system, [r.id for r in records])
    return [Twin(r.id, gid or r.gid, r.fields) for r, gid in zip(records, linked, strict=True)]


def crm_records(world: World, entity: str) -> list[Twin]:
    sobject = {"account": "Account", "contact": "Contact"}[entity]
    live_accounts = {a["Id"] for a in world.crm.records("Account")}
    out = []
    for wire in world.crm.records(sobject):
        if entity == "contact" and wire.get("AccountId") not in live_accounts:
            continue
        fields, *_ = sf_mapping.to_canonical(entity, wire, multi_currency=world.crm.multi_currency)
        out.append(Twin(str(wire["Id"]), None, fields))
    return out


def erp_accounts(world: World) -> list[Twin]:
    out = []
    for wire in world.erp.records("Customer"):
        if wire.get("Job"):
            continue  # a project (sub-customer), not an account
        record = qbo_mapping.to_canonical("account", wire)
        out.append(Twin(str(record.id), record.gid, dict(record.fields)))
    return out


def psa_records(world: World, entity: str) -> list[Twin]:
    resource = {"account": "clients", "contact": "contacts"}[entity]
    spec = harvest_mapping.spec_for(entity)
    out = []
    for wire in world.psa.records(resource):
        record = harvest_mapping.to_canonical(spec, wire)
        out.append(Twin(str(record.id), record.gid, dict(record.fields)))
    return out


def compare(audit: Audit, label: str, sources: list[Twin], targets: list[Twin], fields: Iterable[str]) -> None:
    """Pair ``sources`` with ``targets`` by gid and count what is lost, doubled, different or extra."""
    fields = tuple(fields)
    by_gid: dict[str, list[Twin]] = {}
    unlinked: list[Twin] = []
    for twin in targets:
        (by_gid.setdefault(twin.gid, []) if twin.gid else unlinked).append(twin)
    source_gids = {s.gid for s in sources if s.gid}
    names = {s.fields.get("name") or s.fields.get("email") for s in sources}
    for source in sources:
        audit.checked[label] += 1
        twins = by_gid.get(source.gid, []) if source.gid else []
        if not twins:
            audit.lost[label] += 1
            audit.note(f"lost {label}: source {source.id} gid={source.gid} {source.fields.get('name', '')!r}")
            continue
        if len(twins) > 1:
            audit.duplicated[label] += len(twins) - 1
            audit.note(f"duplicated {label}: gid {source.gid} has {[t.id for t in twins]}")
        diffs = [f"{f}: {source.fields.get(f)!r} != {twins[0].fields.get(f)!r}" for f in fields
                 if source.fields.get(f) != twins[0].fields.get(f)]
        if diffs:
            audit.mismatched[label] += 1
            audit.note(f"mismatched {label}: gid {source.gid} ({twins[0].id}): {'; '.join(diffs)[:300]}")
    orphans = unlinked + [t for gid, ts in by_gid.items() if gid not in source_gids for t in ts]
    for twin in orphans:
        copy = (twin.fields.get("name") or twin.fields.get("email")) in names
        (audit.duplicated if copy else audit.extra)[label] += 1
        audit.note(f"{'duplicated' if copy else 'extra'} {label}: target {twin.id} gid={twin.gid} linked to no "
                   f"source record ({twin.fields.get('name') or twin.fields.get('email')!r})")


async def audit_world(world: World, redis: Redis, settings: Settings) -> Audit:
    """Check every CRM account in the PSA and the ERP, and every CRM contact in the PSA."""
    keys = Keys(settings.namespace)
    audit = Audit()
    accounts = await _twins(redis, keys, "account", "crm", crm_records(world, "account"))
    compare(audit, "account:erp", accounts, await _twins(redis, keys, "account", "erp", erp_accounts(world)),
            ACCOUNT_FIELDS["erp"])
    psa_clients = await _twins(redis, keys, "account", "psa", psa_records(world, "account"))
    compare(audit, "account:psa", accounts, psa_clients, ACCOUNT_FIELDS["psa"])
    if "contact" in settings.entities:
        crm_gid = {a.id: a.gid for a in accounts}
        psa_gid = {c.id: c.gid for c in psa_clients}
        contacts = await _twins(redis, keys, "contact", "crm", crm_records(world, "contact"))
        for c in contacts:
            c.fields["account"] = crm_gid.get(str(c.fields.get("account")))
        psa_contacts = await _twins(redis, keys, "contact", "psa", psa_records(world, "contact"))
        for c in psa_contacts:
            c.fields["account"] = psa_gid.get(str(c.fields.get("account")))
        compare(audit, "contact:psa", contacts, psa_contacts, CONTACT_FIELDS)
    return audit
