"""The indexes a poller page keeps current in the same batch as its changes: which records a live billing
document bills (for the locked-record policies), and the match-rule keys of a system's records (for linking
a new record to an existing one instead of creating it)."""

from __future__ import annotations

from typing import Any

from accord.actors.matching import match_keys
from accord.actors.poll.page import PagePlan
from accord.connectors.base import SourceRecord
from accord.model.entities import BILLS, VOID_STATUS
from accord.streams.keys import Keys


def index_billed(keys: Keys, document: str, records: list[SourceRecord], seen_all: list[dict[str, Any] | None],
                 plan: PagePlan) -> None:
    """Keep ``billed:{entity}`` (the records on a live billing document, e.g. the time entries and expenses
    on an invoice) current. A void or deleted document unbills what it billed as last seen."""
    for record, seen in zip(records, seen_all, strict=True):
        live = not record.deleted and not record.error and record.fields.get("status") != VOID_STATUS
        lines = (record.fields if live else seen or {}).get("lines") or []
        for line in lines if isinstance(lines, list) else []:
            for entity in BILLS[document]:
                if isinstance(line, dict) and line.get(entity):
                    (plan.billed if live else plan.unbilled).append((keys.billed(entity), line[entity]))


def index_match_keys(keys: Keys, rules: list[list[str]], system: str, entity: str, system_id: str,
                     seen: dict[str, Any] | None, fields: dict[str, Any], plan: PagePlan) -> None:
    """Move the record's match-rule keys from what was ``seen`` to what it holds now."""
    if not rules:
        return
    old = match_keys(rules, seen or {})
    new = match_keys(rules, fields)
    for rule, key in old.items():
        if new.get(rule) != key:
            plan.unindex.append((keys.match(entity, system, rule, key), system_id))
    for rule, key in new.items():
        if old.get(rule) != key:
            plan.index.append((keys.match(entity, system, rule, key), system_id))
