"""The sandbox's per-company (realm) data: entity tables with QBO write semantics.

Generic over ``tables.ENTITY_TYPES``: each type names its writable fields, its defaults, its unique name
field and its references; per-entity business rules (totals, payment application, billing) are
``rules.prepare`` / ``rules.after_write`` / ``rules.before_delete``. Rules enforced here:
ids are increasing integer strings per entity; ``SyncToken`` starts at "0" and goes up by one on every
change; an update must carry the current SyncToken (else 5010); a full update clears the writable fields
it omits while a ``"sparse": true`` update touches only the fields given (an aggregate such as BillAddr
is replaced whole); a ``null`` value clears a field; a create-only field (``EntityType.fixed``: a
Customer's currency) survives every update, and an update naming another value is refused (6000);
name-list names are unique (6240; Customer and Employee share one DisplayName space); name lists are
deactivated, never deleted; an Invoice can be voided. Records changed as a side effect (an invoice a
payment applies to) are collected in ``touched`` for the change events. Callers hold ``state.lock``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accord.connectors.quickbooks.faults import QboFault, qbo_time
from accord.sandboxes.quickbooks import account, qql, rules
from accord.sandboxes.quickbooks.pages import QueryPages
from accord.sandboxes.quickbooks.rulebase import business
from accord.sandboxes.quickbooks.tables import CURRENCIES, ENTITY_TYPES, EntityType, entity_type
from accord.sandboxes.recency import Recency

__all__ = ["ENTITY_TYPES", "EntityType", "Realm", "Row", "entity_type"]

READ_ONLY = frozenset({"time"})  # accepted besides each entity's documented ones (``EntityType.known``)


def unknown_property(etype: EntityType, key: str) -> QboFault:
    """QBO's answer to a property its schema lacks: the JSON binder's "Unrecognized field" text."""
    known = ", ".join(f'"{name}"' for name in sorted(etype.known))
    return QboFault(400, "2010", "Request has invalid or unsupported property",
                    f'Property Name:Unrecognized field "{key}" (class com.intuit.schema.finance.v3.{etype.name}), '
                    f"not marked as ignorable ({len(etype.known)} known properties: {known}]) specified is "
                    "unsupported or invalid", element=key)


@dataclass
class Row:
    wire: dict[str, Any]
    created: float
    updated: float
    deleted: bool = False


_KEY_CASE: dict[str, str] = {}  # lower-cased path part → the wire key's spelling, learned on first use


def _ref_or_value(value: Any) -> Any:
    """A reference's ``value`` (``{"value": "GBP", "name": ...}`` → ``"GBP"``); anything else as it is."""
    return value.get("value") if isinstance(value, Mapping) else value


def _lookup(data: Any, path: str) -> Any:
    """The value at a dotted, case-insensitive path (``metadata.lastupdatedtime``)."""
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        known = _KEY_CASE.get(part)
        if known is not None and known in data:
            data = data[known]
            continue
        key = next((k for k in data if k.lower() == part), None)
        if key is None:
            return None
        _KEY_CASE[part] = key
        data = data[key]
    return data


def _project(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The named properties of ``record`` (and its Id), marked sparse: a query's projection."""
    wanted = {f.split(".")[0].lower() for f in fields} | {"id"}
    return {"domain": "QBO", "sparse": True, **{k: v for k, v in record.items() if k.lower() in wanted}}


class Realm:
    """One company: tables, id sequences and the requestid replay cache (its quotas: ``state.quotas``)."""

    def __init__(self, realm_id: str, company_name: str, created: float = 0.0) -> None:
        self.id = realm_id
        self.company_name = company_name
        self.account = {"CompanyInfo": Row(account.company_info(company_name, realm_id), created, created),
                        "Preferences": Row(account.preferences(), created, created)}
        self.tables: dict[str, dict[str, Row]] = {name: {} for name in ENTITY_TYPES}
        self.recency = {name: Recency.of(table, lambda row: row.updated) for name, table in self.tables.items()}
        self.pages: QueryPages[Row] = QueryPages(self.tables)  # query results kept between pages
        self.names: dict[str, dict[str, str]] = {t.scope: {} for t in ENTITY_TYPES.values()}  # name → id
        self.touched: list[tuple[str, str]] = []  # (entity, id) changed as a side effect of a write
        self.next_doc = 1001  # the next automatic invoice DocNumber
        self.next_id: dict[str, int] = dict.fromkeys(ENTITY_TYPES, 1)
        self.replies: dict[str, tuple[int, bytes]] = {}  # requestid → (status, body)
        self.last_editor: dict[tuple[str, str], str] = {}

    REPLAY_MAX = 20_000  # requestids remembered per company (oldest forgotten first)

    def remember_reply(self, request_id: str, status: int, body: bytes) -> None:
        self.replies[request_id] = (status, body)
        while len(self.replies) > self.REPLAY_MAX:
            del self.replies[next(iter(self.replies))]

    # -- reads ----------------------------------------------------------------------------------
    def render(self, etype: EntityType | None, row: Row) -> dict[str, Any]:
        meta = {"CreateTime": qbo_time(row.created), "LastUpdatedTime": qbo_time(row.updated)}
        if row.deleted:
            return {"domain": "QBO", "status": "Deleted", "Id": row.wire["Id"], "MetaData": meta}
        wire = copy.deepcopy(row.wire)
        return {"Id": wire.pop("Id"), "SyncToken": wire.pop("SyncToken"), **wire, "MetaData": meta}

    def row(self, etype: EntityType, record_id: str) -> Row:
        row = self.tables[etype.name].get(str(record_id))
        if row is None or row.deleted:
            raise QboFault(400, "610", "Object Not Found",
                           f"Object Not Found : {etype.name} {record_id} does not exist in company {self.id}",
                           element="Id")
        return row

    def resolve(self, row: Row, path: str) -> Any:
        if path == "metadata.lastupdatedtime":
            return row.updated
        if path == "metadata.createtime":
            return row.created
        return _lookup(row.wire, path)

    def query(self, text: str) -> dict[str, Any]:
        """The ``QueryResponse`` object for one statement."""
        parsed = qql.parse(text)
        name, rows, known, name_list = self._source(parsed)
        for field_name in qql.named_fields(parsed):
            if field_name.lower() not in known:
                raise qql.validation_error(f"property '{field_name}' is not queryable for {name}")
        matches = qql.matcher(parsed, self.resolve, active_only=name_list)
        if rows is None:  # a table's rows in Id order: the kept result of the query's shape
            page, total = self.pages.page(name, parsed, lambda: self._candidates(name, parsed), matches)
        else:
            page, total = qql.run(parsed, rows, self.resolve, active_only=name_list)
        if parsed.count:
            return {"totalCount": total}
        if not page:
            return {}
        rendered = [self.render(None, r) for r in page]
        if parsed.fields is not None:
            rendered = [_project(r, parsed.fields) for r in rendered]
        return {name: rendered, "startPosition": parsed.start, "maxResults": len(page)}

    def _source(self, parsed: qql.Query) -> tuple[str, list[Row] | None, frozenset[str], bool]:
        """(entity name, candidate rows or None for "the table's, kept in Id order by ``pages``",
        lower-cased queryable properties, name list?) of a query."""
        single = account.singleton(parsed.entity)
        if single is not None:
            row = self.account[single]
            return single, [row], frozenset(k.lower() for k in (*row.wire, "MetaData")), False
        etype = entity_type(parsed.entity)
        known = frozenset(k.lower() for k in etype.known)
        ids = qql.id_set(parsed)
        if ids is None and qql.in_id_order(parsed):
            return etype.name, None, known, etype.name_list
        return etype.name, self._candidates(etype.name, parsed, ids), known, etype.name_list

    def _candidates(self, name: str, parsed: qql.Query, ids: set[str] | None = None) -> list[Row]:
        """The rows of table ``name`` that may match, in Id order: the ones named by id (a writer's
        read-before-write), else those changed since the query's floor (through the recency index), else all."""
        table, floor = self.tables[name], qql.updated_floor(parsed)
        if ids is not None:
            rows = [table[i] for i in ids if i in table]
        elif floor is None:
            rows = list(table.values())
        else:
            rows = [table[i] for i in self.recency[name].since(floor)]
        return sorted((r for r in rows if not r.deleted), key=lambda r: int(r.wire["Id"]))

    def _written(self, name: str, record_id: str, now: float) -> None:
        """Row ``record_id`` of table ``name`` was just written, stamped ``now``: the read indexes learn it."""
        self.recency[name].touch(record_id, now)
        self.pages.note(name, record_id)

    def changed_since(self, names: list[str], since: float, limit: int) -> tuple[list[tuple[str, Row]], bool]:
        """Rows of ``names`` changed at or after ``since``, oldest first, at most ``limit``."""
        changed = [(name, self.tables[name][rid]) for name in names
                   for rid in self.recency[name].since(since, limit=limit + 1)]  # each name's oldest suffice
        changed.sort(key=lambda item: item[1].updated)
        return changed[:limit], len(changed) > limit

    def exists(self, entity: str, record_id: str) -> bool:
        row = self.tables[entity].get(record_id)
        return row is not None and not row.deleted

    # -- writes ---------------------------------------------------------------------------------
    def _check_body(self, etype: EntityType, body: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in body.items():
            if key in etype.writable:
                values[key] = value
            elif key not in etype.known and key not in READ_ONLY:
                raise unknown_property(etype, key)
        for ref_field, target in etype.refs.items():
            ref = values.get(ref_field)
            if isinstance(ref, dict) and not self.exists(target, str(ref.get("value"))):
                raise QboFault(400, "2500", "Invalid Reference Id",
                               f"Invalid Reference Id : {ref_field} {ref.get('value')!r} is not a {target}",
                               element=ref_field)
        currency = values.get("CurrencyRef")
        if isinstance(currency, dict):
            code = str(currency.get("value", ""))
            if code not in CURRENCIES:
                raise QboFault(400, "2500", "Invalid Reference Id",
                               f"Invalid Reference Id : currency {code!r} is not enabled in this company",
                               element="CurrencyRef")
            values["CurrencyRef"] = {"value": code, "name": CURRENCIES[code]}
        return values

    def _check_unique(self, etype: EntityType, wire: Mapping[str, Any], own_id: str | None) -> None:
        if etype.unique is None:
            return
        name = wire.get(etype.unique)
        if not isinstance(name, str) or not name.strip():
            raise QboFault(400, "2020", "Required param missing, need to supply the required value for the API",
                           f"Required parameter {etype.unique} is missing in the request",
                           element=etype.unique)
        other_id = self.names[etype.scope].get(name.strip().casefold())
        if other_id is not None and other_id != own_id:
            raise QboFault(400, "6240", "Duplicate Name Exists Error",
                           "The name supplied already exists. : Another customer, vendor or employee "
                           f"is already using this name. Please use a different name. Id={other_id}")

    def _index_name(self, etype: EntityType, old: Mapping[str, Any] | None, new: Mapping[str, Any],
                    record_id: str) -> None:
        if etype.unique is None:
            return
        index = self.names[etype.scope]
        before = old.get(etype.unique) if old is not None else None
        if isinstance(before, str) and index.get(before.strip().casefold()) == record_id:
            del index[before.strip().casefold()]
        after = new.get(etype.unique)
        if isinstance(after, str):
            index[after.strip().casefold()] = record_id

    @staticmethod
    def _apply(wire: dict[str, Any], values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if value is None:
                wire.pop(key, None)
            else:
                wire[key] = copy.deepcopy(value)

    def create(self, etype: EntityType, body: Mapping[str, Any], now: float, editor: str) -> Row:
        values = self._check_body(etype, body)
        wire: dict[str, Any] = {"domain": "QBO", "sparse": False, **copy.deepcopy(dict(etype.defaults)),
                                **copy.deepcopy(dict(etype.computed))}
        self._apply(wire, values)
        if etype.unique == "DisplayName" and "DisplayName" not in wire:
            derived = wire.get("CompanyName") or " ".join(
                p for p in (wire.get("GivenName"), wire.get("FamilyName")) if p)
            if derived:
                wire["DisplayName"] = derived
        self._check_unique(etype, wire, None)
        record_id = str(self.next_id[etype.name])
        self.next_id[etype.name] += 1
        wire.update(Id=record_id, SyncToken="0")
        if etype.unique == "DisplayName":
            wire["FullyQualifiedName"] = wire["DisplayName"]
        rules.prepare(self, etype, wire, None, now)
        row = Row(wire=wire, created=now, updated=now)
        self.tables[etype.name][record_id] = row
        self._written(etype.name, record_id, now)
        self._index_name(etype, None, wire, record_id)
        self.last_editor[(etype.name, record_id)] = editor
        rules.after_write(self, etype, wire, None, now)
        return row

    def update(self, etype: EntityType, body: Mapping[str, Any], now: float, editor: str, *,
               check_token: bool = True) -> Row:
        record_id = body.get("Id")
        if record_id is None or (check_token and body.get("SyncToken") is None):
            missing = "Id" if record_id is None else "SyncToken"
            raise QboFault(400, "2020", "Required param missing, need to supply the required value for the API",
                           f"Required parameter {missing} is missing in the request", element=missing)
        row = self.row(etype, str(record_id))
        if check_token and str(body.get("SyncToken")) != row.wire["SyncToken"]:
            who = self.last_editor.get((etype.name, row.wire["Id"]), "another user")
            raise QboFault(400, "5010", "Stale Object Error",
                           f"Stale Object Error : You and {who} were working on this at the same time. "
                           f"{who} finished before you did, so your work was not saved.")
        values = self._check_body(etype, body)
        fixed = self._keep_fixed(etype, row.wire, values)
        if body.get("sparse") is True:
            wire = copy.deepcopy(row.wire)
        else:
            wire = {k: v for k, v in copy.deepcopy(row.wire).items() if k not in etype.writable}
            wire.update(copy.deepcopy(dict(etype.defaults)))
        self._apply(wire, values)
        wire.update(fixed)
        self._check_unique(etype, wire, row.wire["Id"])
        if etype.unique == "DisplayName":
            wire["FullyQualifiedName"] = wire["DisplayName"]
        rules.prepare(self, etype, wire, row.wire, now)
        wire["SyncToken"] = str(int(row.wire["SyncToken"]) + 1)
        self._index_name(etype, row.wire, wire, row.wire["Id"])
        old, row.wire, row.updated = row.wire, wire, now
        self._written(etype.name, row.wire["Id"], now)
        self.last_editor[(etype.name, row.wire["Id"])] = editor
        rules.after_write(self, etype, wire, old, now)
        return row

    @staticmethod
    def _keep_fixed(etype: EntityType, old: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """The create-only fields of ``old`` that an update keeps (whether it is sparse or full, names them
        or not); naming another value is refused. Removes them from ``values``."""
        kept: dict[str, Any] = {}
        for key in etype.fixed:
            sent = values.pop(key, None)
            held = old.get(key)
            if sent is not None and held is not None and _ref_or_value(sent) != _ref_or_value(held):
                raise business(
                    f"{etype.name} {old['Id']}: {key} is {_ref_or_value(held)!r} and cannot be changed to "
                    f"{_ref_or_value(sent)!r}: it is set when the {etype.name.lower()} is created")
            if held is not None:
                kept[key] = copy.deepcopy(held)
        return kept

    def touch(self, name: str, record_id: str, changes: Mapping[str, Any], now: float) -> None:
        """A side-effect change to another record (bumps its SyncToken and time; noted in ``touched``)."""
        row = self.tables[name][record_id]
        wire = copy.deepcopy(row.wire)
        self._apply(wire, changes)
        if wire == row.wire:
            return
        wire["SyncToken"] = str(int(row.wire["SyncToken"]) + 1)
        row.wire, row.updated = wire, now
        self._written(name, record_id, now)
        self.touched.append((name, record_id))

    def void(self, etype: EntityType, body: Mapping[str, Any], now: float, editor: str) -> Row:
        """Void an invoice: amounts go to 0, the memo says "Voided", billed time is billable again."""
        if etype.name != "Invoice":
            raise QboFault(400, "500", "Unsupported Operation",
                           f"Operation Void is not supported for {etype.name}", element="operation")
        row = self.row(etype, str(body.get("Id")))
        if str(body.get("SyncToken")) != row.wire["SyncToken"]:
            raise QboFault(400, "5010", "Stale Object Error", "Stale Object Error : the object changed")
        rules.before_delete(self, etype, row.wire, "void")
        old, wire = row.wire, rules.voided(row.wire)
        wire["SyncToken"] = str(int(old["SyncToken"]) + 1)
        row.wire, row.updated = wire, now
        self._written(etype.name, wire["Id"], now)
        self.last_editor[(etype.name, wire["Id"])] = editor
        rules.after_write(self, etype, wire, old, now)
        return row

    def delete(self, etype: EntityType, body: Mapping[str, Any], now: float) -> Row:
        if etype.name_list:
            raise QboFault(400, "500", "Unsupported Operation",
                           f"Operation Delete is not supported for {etype.name}: it is a name list; "
                           "update it with Active=false instead", element="operation")
        row = self.row(etype, str(body.get("Id")))
        if str(body.get("SyncToken")) != row.wire["SyncToken"]:
            raise QboFault(400, "5010", "Stale Object Error", "Stale Object Error : the object changed")
        rules.before_delete(self, etype, row.wire, "delete")
        row.deleted, row.updated = True, now
        self._written(etype.name, row.wire["Id"], now)
        rules.after_write(self, etype, None, row.wire, now)
        return row
