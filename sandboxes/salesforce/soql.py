"""A small SOQL engine for the Salesforce sandbox: what the connector and the tests use, checked the way
Salesforce checks it.

Grammar (keywords case-insensitive)::

    SELECT field [, field ...] FROM Object
      [WHERE expr]  expr := term {OR term};  term := factor {AND factor};
                    factor := NOT factor | ( expr ) | field op literal | field [NOT] IN ( literal, ... )
                    op := = | != | <> | < | <= | > | >= | LIKE
      [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST] [, ...]] [LIMIT n] [OFFSET n]

Literals: 'quoted strings' (backslash escapes), numbers, true/false, null, unquoted dateTime
(``2026-04-01T00:00:00Z``, fraction and ``+hh:mm`` allowed) and date (``2026-04-01``) literals.
A syntax error is ``MALFORMED_QUERY``; an unknown field, or a literal of the wrong type for its field, is
``INVALID_FIELD`` (as in Salesforce). String comparisons ignore case, except an Id's order (base 62: case
is a digit); ``!=`` matches nulls. A dateTime is
compared and ordered to the second, as Salesforce stores it (``ORDER BY SystemModstamp, Id`` orders the rows
of one second by Id). Left out: the sandbox keeps its stamps to the millisecond and renders them so (real
stamps end in ``.000``), which keeps its versions unique per change.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
)""", re.X)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_KIND_NAMES = {"ident": "a field or object name", "number": "a number", "op": "an operator like = or <",
               "punct": "( ) or ,"}
_KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc", "desc",
             "nulls", "first", "last", "limit", "offset", "true", "false", "null"}


class SoqlError(ValueError):
    """A query Salesforce would refuse: ``code`` is ``MALFORMED_QUERY`` or ``INVALID_FIELD``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Lit:
    """A literal: ``kind`` is string, number, boolean, null, datetime (value: epoch ms) or date."""

    kind: str
    value: Any


@dataclass(frozen=True)
class Cond:
    field: str
    op: str  # = != < <= > >= LIKE IN NOTIN
    value: Lit | tuple[Lit, ...]
    ftype: str = ""  # the field's Salesforce type, once bound


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR | NOT
    items: tuple[Node, ...]


Node = Cond | BoolOp


@dataclass(frozen=True)
class Order:
    field: str
    desc: bool
    nulls_last: bool
    ftype: str = ""  # the field's Salesforce type, once bound


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    where: Node | None = None
    order: tuple[Order, ...] = ()
    limit: int | None = None
    offset: int = 0


# ------------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------------

def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected character {text[pos:].lstrip()[:1]!r} at "
                                               f"position {pos}: {text[pos:pos + 20]!r}")
        kind, value = match.lastgroup, match.group(match.lastgroup)
        if kind == "ident" and value.lower() in _KEYWORDS:
            kind, value = "kw", value.lower()
        tokens.append((kind, value))
        pos = match.end()
    return tokens


def _datetime_ms(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self, kind: str, value: str | None = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        tkind, tvalue = self.tokens[self.pos]
        return tkind == kind and (value is None or tvalue == value)

    def take(self, kind: str, value: str | None = None) -> str:
        if not self.peek(kind, value):
            found = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end of query"
            wanted = value.upper() if value else _KIND_NAMES.get(kind, kind)
            raise SoqlError("MALFORMED_QUERY", f"expecting {wanted}, unexpected token: {found!r} in "
                                               f"{self.text!r}")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def accept(self, kind: str, value: str | None = None) -> bool:
        if self.peek(kind, value):
            self.pos += 1
            return True
        return False

    def query(self) -> Query:
        self.take("kw", "select")
        fields = [self.take("ident")]
        while self.accept("punct", ","):
            fields.append(self.take("ident"))
        self.take("kw", "from")
        sobject = self.take("ident")
        where = self.expr() if self.accept("kw", "where") else None
        order = self.order_by() if self.accept("kw", "order") else ()
        limit = int(self.take("number")) if self.accept("kw", "limit") else None
        offset = int(self.take("number")) if self.accept("kw", "offset") else 0
        if self.pos != len(self.tokens):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {self.tokens[self.pos][1]!r} in "
                                               f"{self.text!r}")
        return Query(tuple(fields), sobject, where, order, limit, offset)

    def order_by(self) -> tuple[Order, ...]:
        self.take("kw", "by")
        items = []
        while True:
            field = self.take("ident")
            desc = self.accept("kw", "desc")
            if not desc:
                self.accept("kw", "asc")
            nulls_last = desc  # Salesforce: ASC puts nulls first, DESC puts them last
            if self.accept("kw", "nulls"):
                nulls_last = self.accept("kw", "last")
                if not nulls_last:
                    self.take("kw", "first")
            items.append(Order(field, desc, nulls_last))
            if not self.accept("punct", ","):
                return tuple(items)

    def expr(self) -> Node:
        items = [self.term()]
        while self.accept("kw", "or"):
            items.append(self.term())
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def term(self) -> Node:
        items = [self.factor()]
        while self.accept("kw", "and"):
            items.append(self.factor())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def factor(self) -> Node:
        if self.accept("kw", "not"):
            return BoolOp("NOT", (self.factor(),))
        if self.accept("punct", "("):
            node = self.expr()
            self.take("punct", ")")
            return node
        field = self.take("ident")
        if self.accept("kw", "not"):
            self.take("kw", "in")
            return Cond(field, "NOTIN", self.literal_list())
        if self.accept("kw", "in"):
            return Cond(field, "IN", self.literal_list())
        if self.accept("kw", "like"):
            return Cond(field, "LIKE", self.literal())
        op = self.take("op")
        return Cond(field, "!=" if op == "<>" else op, self.literal())

    def literal_list(self) -> tuple[Lit, ...]:
        self.take("punct", "(")
        items = [self.literal()]
        while self.accept("punct", ","):
            items.append(self.literal())
        self.take("punct", ")")
        return tuple(items)

    def literal(self) -> Lit:
        if self.pos >= len(self.tokens):
            raise SoqlError("MALFORMED_QUERY", f"expecting a value, found end of query in {self.text!r}")
        kind, value = self.tokens[self.pos]
        self.pos += 1
        if kind == "string":
            return Lit("string", re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), value[1:-1]))
        if kind == "number":
            return Lit("number", float(value) if "." in value else int(value))
        if kind == "datetime":
            return Lit("datetime", _datetime_ms(value))
        if kind == "date":
            return Lit("date", value)
        if kind == "kw" and value in ("true", "false"):
            return Lit("boolean", value == "true")
        if kind == "kw" and value == "null":
            return Lit("null", None)
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: {value!r}, expecting a value in {self.text!r}")


def parse(text: str) -> Query:
    """Parse a SOQL query (syntax only; ``bind`` checks it against an object's fields)."""
    return _Parser(text).query()


# ------------------------------------------------------------------------------------------------
# Binding (field names and literal types) and evaluation
# ------------------------------------------------------------------------------------------------

_LITERAL_KINDS = {
    "id": {"string"}, "reference": {"string"}, "string": {"string"}, "url": {"string"},
    "picklist": {"string"}, "textarea": {"string"}, "phone": {"string"}, "email": {"string"},
    "double": {"number"}, "currency": {"number"}, "percent": {"number"}, "int": {"number"},
    "boolean": {"boolean"}, "datetime": {"datetime"}, "date": {"date"},
}


def bind(query: Query, field_types: dict[str, str]) -> Query:
    """``query`` with field names in their declared case, checked against ``field_types``
    (declared name → Salesforce type). Raises ``SoqlError`` INVALID_FIELD like Salesforce does."""
    by_fold = {name.casefold(): name for name in field_types}

    def resolve(name: str) -> str:
        try:
            return by_fold[name.casefold()]
        except KeyError:
            raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{query.sobject}'. If you "
                                             "are attempting to use a custom field, be sure to append the "
                                             "'__c' after the custom field name.") from None

    def check(field: str, lit: Lit) -> None:
        ftype = field_types[field]
        if lit.kind != "null" and lit.kind not in _LITERAL_KINDS.get(ftype, {"string"}):
            quoted = " and should not be enclosed in quotes" if ftype in ("datetime", "date") else ""
            raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{field}' must be of "
                                             f"type {ftype}{quoted}")

    def walk(node: Node) -> Node:
        if isinstance(node, BoolOp):
            return BoolOp(node.op, tuple(walk(item) for item in node.items))
        field = resolve(node.field)
        for lit in node.value if isinstance(node.value, tuple) else (node.value,):
            check(field, lit)
        return Cond(field, node.op, node.value, field_types[field])

    return Query(
        fields=tuple(resolve(name) for name in query.fields),
        sobject=query.sobject,
        where=walk(query.where) if query.where is not None else None,
        order=tuple(Order(field, o.desc, o.nulls_last, field_types[field])
                    for o in query.order for field in (resolve(o.field),)),
        limit=query.limit,
        offset=query.offset,
    )


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


_ORDERING: dict[str, Callable[[Any, Any], Any]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                                  ">=": operator.ge}


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "=":
        return bool(_fold(have) == _fold(want))
    if op == "!=":
        return bool(_fold(have) != _fold(want))
    if have is None or want is None:
        return False
    try:
        return bool(_ORDERING[op](_fold(have), _fold(want)))
    except TypeError:  # e.g. a number against a string: no match, as in Salesforce
        return False


def _like(have: Any, pattern: str) -> bool:
    if not isinstance(have, str):
        return False
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, have, re.IGNORECASE | re.DOTALL) is not None


def matches(node: Node | None, row: dict[str, Any]) -> bool:
    """Whether ``row`` satisfies the (bound) condition tree."""
    if node is None:
        return True
    if isinstance(node, BoolOp):
        if node.op == "NOT":
            return not matches(node.items[0], row)
        results = (matches(item, row) for item in node.items)
        return all(results) if node.op == "AND" else any(results)
    have = row.get(node.field)
    if isinstance(node.value, tuple):
        found = any(_compare("=", have, lit.value) for lit in node.value)
        return found if node.op == "IN" else not found
    if node.op == "LIKE":
        return _like(have, str(node.value.value))
    if node.value.kind == "datetime" and isinstance(have, int):  # stored to the second: ms never compared
        return _compare(node.op, have // 1000, node.value.value // 1000)
    if node.ftype in _IDS and node.op in _ORDERING and isinstance(have, str):  # Ids order by case: base 62
        return bool(_ORDERING[node.op](have, str(node.value.value)))
    return _compare(node.op, have, node.value.value)


def run(query: Query, rows: Iterable[dict[str, Any]], project: Callable[[dict[str, Any]], dict[str, Any]],
        ) -> list[dict[str, Any]]:
    """Filter, sort, offset and limit ``rows`` with a bound query, then ``project`` each one."""
    return [project(row) for row in select(query, rows)]


def select(query: Query, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Filter, sort, offset and limit ``rows`` with a bound query (the rows themselves, not projected)."""
    selected = [row for row in rows if matches(query.where, row)]
    for order in reversed(query.order):  # stable sorts, last key first
        present = [row for row in selected if row.get(order.field) is not None]
        missing = [row for row in selected if row.get(order.field) is None]
        present.sort(key=partial(_SORT_KEYS.get(order.ftype, _sort_key), order.field), reverse=order.desc)
        selected = present + missing if order.nulls_last else missing + present
    selected = selected[query.offset:]
    if query.limit is not None:
        selected = selected[:query.limit]
    return selected


def _sort_key(field: str, row: dict[str, Any]) -> Any:
    value = row[field]
    return value.casefold() if isinstance(value, str) else value  # case-insensitive ties go to the next key


def _seconds_key(field: str, row: dict[str, Any]) -> Any:
    value = row[field]
    return value // 1000 if isinstance(value, int) else value  # ties within a second go to the next key


def _exact_key(field: str, row: dict[str, Any]) -> Any:
    return row[field]


_IDS = {"id", "reference"}
_SORT_KEYS: dict[str, Callable[[str, dict[str, Any]], Any]] = {
    "datetime": _seconds_key, "id": _exact_key, "reference": _exact_key}
