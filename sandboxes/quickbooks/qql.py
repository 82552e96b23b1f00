"""The QuickBooks Online query language, as Intuit's "Query operations" page and the reference (§4.3) give it.

Grammar (keywords case-insensitive, any amount of white space between tokens)::

    SELECT * | *, field, ... | field, ... | COUNT(*) FROM Entity
      [WHERE cond [AND cond ...]]          cond: field op value | field IN (v, ...) | field LIKE 'x%'
      [ORDERBY | ORDER BY field [ASC|DESC] [, field [ASC|DESC] ...]]
      [STARTPOSITION n] [MAXRESULTS m]     1-based; MAXRESULTS defaults to 100 and is at most 1000

op is one of the documented ``= < > <= >=``; values are 'text' (``\\'`` escapes a quote, a backslash
escapes any character), numbers, true and false. Fields may be dotted (``Metadata.LastUpdatedTime``) and
match wire keys case-insensitively. LIKE works only on name fields (``%`` is the only wildcard). What the
page says QBO does not support is refused as QBO refuses it: ``OR`` (and anything else after the
conditions) is a parse error. ``SELECT *, field`` returns whole objects; a list of fields returns those
(with ``Id``) marked ``"sparse": true`` (the page calls projections unsupported, yet the service accepts
them and flags partial objects with ``sparse``). Errors raise ``QboFault`` 4000 (parse) / 4001
(validation). Left out: ``ITERATOR`` and the ``' '`` null literal of IN lists.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from accord.connectors.quickbooks.faults import QboFault

MAX_RESULTS = 1000
DEFAULT_MAX_RESULTS = 100
LIKE_FIELDS = frozenset({"displayname", "name", "companyname", "fullyqualifiedname"})
TIME_FIELDS = frozenset({"metadata.lastupdatedtime", "metadata.createtime"})

_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?(?![\w.]))|(?P<op><=|>=|=|<|>)
                        |(?P<punct>[(),*])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))""", re.VERBOSE)
_OPS = ("=", "<", ">", "<=", ">=", "IN", "LIKE")


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any  # a scalar, or a tuple for IN


@dataclass(frozen=True)
class Query:
    entity: str
    count: bool = False
    where: tuple[Condition, ...] = ()
    order: tuple[tuple[str, bool], ...] = ()  # (field, descending), most significant first
    fields: tuple[str, ...] | None = None  # a projection; None: whole objects
    start: int = 1
    max_results: int = DEFAULT_MAX_RESULTS
    mentions: frozenset[str] = field(default_factory=frozenset)  # lower-cased fields used in WHERE


def parse_error(detail: str) -> QboFault:
    return QboFault(400, "4000", "Error parsing query", f"QueryParserError: {detail}")


def validation_error(detail: str) -> QboFault:
    return QboFault(400, "4001", "Invalid query", f"QueryValidationError: {detail}")


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise parse_error(f"Encountered \"{text[pos:pos + 20]}\" at column {pos + 1}.")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.items[self.pos] if self.pos < len(self.items) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.pos += 1
        return token

    def keyword(self, *words: str) -> str | None:
        kind, text = self.peek()
        if kind == "word" and text.upper() in words:
            self.pos += 1
            return text.upper()
        return None

    def expect(self, what: str, ok: bool, got: str) -> None:
        if not ok:
            raise parse_error(f"Encountered \"{got or '<EOF>'}\". Was expecting {what}.")

    def integer(self, clause: str) -> int:
        kind, text = self.take()
        self.expect(f"a number after {clause}", kind == "num" and "." not in text, text)
        return int(text)

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise parse_error(f"Encountered \"{text or '<EOF>'}\". Was expecting a value.")

    def condition(self) -> Condition:
        kind, name = self.take()
        self.expect("a field name", kind == "word", name)
        kind, op = self.peek()
        if kind == "op":
            self.take()
            return Condition(name, op, self.value())
        word = self.keyword("IN", "LIKE")
        self.expect(f"one of {', '.join(_OPS)}", word is not None, op)
        if word == "LIKE":
            return Condition(name, "LIKE", self.value())
        self.expect("(", self.take()[1] == "(", "")
        values = [self.value()]
        while self.peek()[1] == ",":
            self.take()
            values.append(self.value())
        self.expect(")", self.take()[1] == ")", "")
        return Condition(name, "IN", tuple(values))


def _select(p: _Parser) -> tuple[bool, tuple[str, ...] | None]:
    """(COUNT(*)?, the projected fields or None for whole objects)."""
    if p.peek()[1].upper() == "COUNT" and p.items[p.pos + 1:p.pos + 2] == [("punct", "(")]:
        p.take()
        p.expect("(*)", [p.take()[1] for _ in range(3)] == ["(", "*", ")"], "")
        return True, None
    star, fields = False, []
    while True:
        kind, text = p.take()
        p.expect("* or a property name", text == "*" or (kind == "word" and text.upper() != "FROM"), text)
        star = star or text == "*"
        if text != "*":
            fields.append(text)
        if p.peek()[1] != ",":
            return False, None if star else tuple(fields)
        p.take()


def _order(p: _Parser) -> tuple[tuple[str, bool], ...]:
    if not (p.keyword("ORDERBY") or (p.keyword("ORDER") and p.keyword("BY"))):
        return ()
    keys = []
    while True:
        kind, name = p.take()
        p.expect("a field name", kind == "word", name)
        keys.append((name, p.keyword("ASC", "DESC") == "DESC"))
        if p.peek()[1] != ",":
            return tuple(keys)
        p.take()


def parse(text: str) -> Query:
    """Parse one query statement, or raise ``QboFault`` (400, 4000/4001)."""
    p = _Parser(text)
    p.expect("SELECT", p.keyword("SELECT") is not None, p.peek()[1])
    count, fields = _select(p)
    p.expect("FROM", p.keyword("FROM") is not None, p.peek()[1])
    kind, entity = p.take()
    p.expect("an entity name", kind == "word", entity)
    where: list[Condition] = []
    if p.keyword("WHERE"):
        where.append(p.condition())
        while p.keyword("AND"):
            where.append(p.condition())
    order = _order(p)
    start = p.integer("STARTPOSITION") if p.keyword("STARTPOSITION") else 1
    max_results = p.integer("MAXRESULTS") if p.keyword("MAXRESULTS") else DEFAULT_MAX_RESULTS
    p.expect('one of: <EOF> "and" "orderby" "order by" "startposition" "maxresults" (OR is not supported)',
             p.peek()[0] == "end", p.peek()[1])
    if start < 1:
        raise validation_error(f"STARTPOSITION {start} must be 1 or more")
    if not 1 <= max_results <= MAX_RESULTS:
        raise validation_error(f"MAXRESULTS {max_results} must be between 1 and {MAX_RESULTS}")
    for cond in where:
        if cond.op == "LIKE" and cond.field.lower() not in LIKE_FIELDS:
            raise validation_error(f"LIKE is not supported on property {cond.field}; use it on DisplayName")
    return Query(entity=entity, count=count, where=tuple(where), order=order, start=start,
                 max_results=max_results, mentions=frozenset(c.field.lower() for c in where), fields=fields)


def named_fields(query: Query) -> list[str]:
    """Every property the query names (projection, WHERE, ORDERBY), top-level part only."""
    names = [*(query.fields or ()), *(c.field for c in query.where), *(name for name, _ in query.order)]
    return [name.split(".")[0] for name in names]


# ------------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------------

Resolver = Callable[[Any, str], Any]  # (row, lower-cased dotted field) → value


def _literal_time(value: Any, field_name: str) -> float:
    try:
        stamp = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise validation_error(f"{value!r} is not a date-time for {field_name}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _comparable(left: Any, right: Any, field_name: str) -> tuple[Any, Any]:
    if field_name in TIME_FIELDS:
        return left, _literal_time(right, field_name)
    if isinstance(left, str) and isinstance(right, str) and left.isdigit() and right.isdigit():
        return int(left), int(right)
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold(), right.casefold()
    if isinstance(left, str) and isinstance(right, int | float) and not isinstance(right, bool):
        return left, str(right)
    return left, right


def _matches(cond: Condition, value: Any) -> bool:
    name = cond.field.lower()
    if value is None:
        return False
    if cond.op == "IN":
        return any(_test("=", *_comparable(value, v, name)) for v in cond.value)
    if cond.op == "LIKE":
        pattern = "".join(".*" if ch == "%" else re.escape(ch) for ch in str(cond.value))
        return re.fullmatch(pattern, str(value), re.IGNORECASE | re.DOTALL) is not None
    return _test(cond.op, *_comparable(value, cond.value, name))


def _predicate(cond: Condition) -> Callable[[Any], bool]:
    """``_matches(cond, value)`` as a function of the value, a date-time literal parsed once."""
    if cond.field.lower() not in TIME_FIELDS or cond.op not in _COMPARE:
        return partial(_matches, cond)
    compare, floor = _COMPARE[cond.op], _literal_time(cond.value, cond.field.lower())

    def test(value: Any) -> bool:
        if value is None:
            return False
        try:
            return bool(compare(value, floor))
        except TypeError:
            return False
    return test


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {"=": operator.eq, "<": operator.lt, ">": operator.gt,
                                                   "<=": operator.le, ">=": operator.ge}


def _test(op: str, left: Any, right: Any) -> bool:
    try:
        return bool(_COMPARE[op](left, right))
    except TypeError:  # e.g. a number against a nested object: no match
        return False


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, str) and value.isdigit():
        return (1, int(value))
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value).casefold())


def _row_key(resolve: Resolver, name: str, row: Any) -> tuple[int, Any]:
    return _sort_key(resolve(row, name))


def updated_floor(query: Query) -> float | None:
    """The lowest ``Metadata.LastUpdatedTime`` a row must have to match (``>=`` / ``>`` conditions), if any."""
    floors = [_literal_time(c.value, c.field) for c in query.where
              if c.field.lower() == "metadata.lastupdatedtime" and c.op in (">=", ">")]
    return max(floors, default=None)


def id_set(query: Query) -> set[str] | None:
    """The ids a row must have to match (``Id = 'x'`` / ``Id IN (...)`` conditions), if the query names any."""
    sets = [{str(v) for v in (c.value if c.op.lower() == "in" else (c.value,))}
            for c in query.where if c.field.lower() == "id" and c.op.lower() in ("=", "in")]
    return set.intersection(*sets) if sets else None


def matcher(query: Query, resolve: Resolver, *, active_only: bool) -> Callable[[Any], bool]:
    """Whether a row matches the query's conditions.

    ``active_only``: name lists return only active rows unless the query filters on ``Active``.
    """
    conditions = list(query.where)
    if active_only and "active" not in query.mentions:
        conditions.append(Condition("Active", "=", True))
    tests = [(c.field.lower(), _predicate(c)) for c in conditions]  # literals parsed once, not per row

    def matches(row: Any) -> bool:
        return all(test(resolve(row, path)) for path, test in tests)
    return matches


def in_id_order(query: Query) -> bool:
    """Whether the query's rows come in ascending Id order (``ORDERBY Id``, or no order: the table's)."""
    return query.order in ((), (("id", False),)) or [(n.lower(), d) for n, d in query.order] == [("id", False)]


def run(query: Query, rows: Sequence[Any], resolve: Resolver, *, active_only: bool) -> tuple[list[Any], int]:
    """Filter, sort and page ``rows``. Returns (the page, total matches). ``active_only``: see ``matcher``."""
    hits = list(filter(matcher(query, resolve, active_only=active_only), rows))
    for name, descending in reversed(query.order):  # stable sorts, least significant key first
        hits.sort(key=partial(_row_key, resolve, name.lower()), reverse=descending)
    offset = query.start - 1
    return hits[offset:offset + query.max_results], len(hits)
