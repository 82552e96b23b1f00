"""Which of the org's indexes a bound SOQL query can start from, as Salesforce's query optimiser would.

A real org answers ``WHERE Id IN (...)``, ``WHERE <external id> = ...`` and ``WHERE SystemModstamp >= ...``
from indexes: what such a query costs does not grow with the table. A sandbox that evaluated every row
made each look-up cost the whole table: a Salesforce poller re-reading a 20,000-row window by Id (200 Ids
per query, ~100 queries) cost ~1.2 s per query in the sandbox, enough to starve every other sandbox of
the process and stall a benchmark for a minute. The index only picks the candidates: the whole WHERE
clause is still evaluated on each of them, so a plan never changes what a query returns.

Only top-level AND terms are used (``a AND (b OR c)`` may start from ``a``; ``a OR b`` scans). A keyset
term ``(SystemModstamp > X OR Id > 'k')`` (the connector's read after the last Id of a busy second) lets the
modstamp index step over the rows of X's second up to ``k`` without evaluating them: a poller that reads a
busy second by keyset every 0.2 s made the sandbox evaluate that second's every row on each read (14–18
rows looked at per row returned in a 20,000-record benchmark run, 4–8 at 5,000).
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.sandboxes.salesforce.soql import BoolOp, Cond, Lit, Node, Query


@dataclass(frozen=True)
class KeyLookup:
    """Rows whose ``field`` equals one of ``values`` (strings, compared ignoring case)."""

    field: str
    values: tuple[str, ...]


def _terms(where: Node | None) -> tuple[Node, ...]:
    if where is None:
        return ()
    return where.items if isinstance(where, BoolOp) and where.op == "AND" else (where,)


def key_lookups(query: Query) -> list[KeyLookup]:
    """The ``field = 'x'`` and ``field IN ('x', ...)`` terms of the WHERE clause, with string literals only."""
    lookups: list[KeyLookup] = []
    for term in _terms(query.where):
        if not isinstance(term, Cond) or term.op not in ("=", "IN"):
            continue
        lits = term.value if isinstance(term.value, tuple) else (term.value,)
        if all(isinstance(lit, Lit) and lit.kind == "string" for lit in lits):
            lookups.append(KeyLookup(term.field, tuple(str(lit.value) for lit in lits)))
    return lookups


@dataclass(frozen=True)
class Keyset:
    """Rows stamped before ``until_ms`` (the end of the keyset's second) with an Id up to ``key`` do not match."""

    until_ms: int
    key: str


def keyset(query: Query) -> Keyset | None:
    """The ``(SystemModstamp > X OR Id > 'k')`` term of the WHERE clause, as the rows it rules out."""
    for term in _terms(query.where):
        if not (isinstance(term, BoolOp) and term.op == "OR" and len(term.items) == 2):
            continue
        stamp, key = term.items
        if (isinstance(stamp, Cond) and stamp.field == "SystemModstamp" and stamp.op == ">"
                and isinstance(stamp.value, Lit) and stamp.value.kind == "datetime"
                and isinstance(key, Cond) and key.field == "Id" and key.op == ">"
                and isinstance(key.value, Lit) and key.value.kind == "string"):
            return Keyset(until_ms=(stamp.value.value // 1000 + 1) * 1000, key=str(key.value.value))
    return None


def modstamp_floor(query: Query) -> int | None:
    """The lowest ``SystemModstamp`` (epoch ms) a row must have to match, when the WHERE clause (or one
    of its top-level AND terms) says ``SystemModstamp >= / > datetime``; ``None`` otherwise."""
    floors = [(t.value.value // 1000 + (t.op == ">")) * 1000 for t in _terms(query.where)
              if isinstance(t, Cond) and t.field == "SystemModstamp" and t.op in (">=", ">")
              and isinstance(t.value, Lit) and t.value.kind == "datetime"]
    return max(floors, default=None)


def modstamp_ceiling(query: Query) -> int | None:
    """The highest ``SystemModstamp`` (epoch ms) a row may have to match, when the WHERE clause (or one of
    its top-level AND terms) says ``SystemModstamp <= / < datetime`` (compared to the second)."""
    ceilings = [(t.value.value // 1000 + (t.op == "<=")) * 1000 - 1 for t in _terms(query.where)
                if isinstance(t, Cond) and t.field == "SystemModstamp" and t.op in ("<=", "<")
                and isinstance(t.value, Lit) and t.value.kind == "datetime"]
    return min(ceilings, default=None)
