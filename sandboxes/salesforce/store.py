"""The sandbox's sObject store: typed records, modstamps, transactions, relationships.

One ``SObjectStore`` is one org's data. Every change runs in a transaction that takes one
``SystemModstamp`` (strictly increasing per org: ``max(clock ms, last + 1)``); all records a transaction
touches share it, as a bulk DML statement's records do in Salesforce. Deleted rows stay (``IsDeleted``)
so ``queryAll`` sees them. Validation (``checks``) mirrors Salesforce's per-record status codes.
Each insert, update and delete is atomic on its own too (a failed record of a collection leaves no
trace), and recomputes the roll-up summary fields of the masters it touches (``relations``).
The store is not thread-safe by itself: ``SalesforceState`` holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from accord.connectors.salesforce.fieldmap import format_datetime_ms
from accord.sandboxes.recency import Recency
from accord.sandboxes.salesforce.checks import RecordChecks, RecordError, id18, new_id, normalize_id
from accord.sandboxes.salesforce.relations import (
    DEFAULT_RATES,
    delete_plan,
    empty_rollups,
    masters_of,
    rollup_values,
)
from accord.sandboxes.salesforce.schema import SCHEMA_TYPES, STAGES, SYSTEM_FIELDS, SObjectType

__all__ = ["STAGES", "SYSTEM_FIELDS", "RecordError", "SObjectStore", "SObjectType", "id18", "new_id",
           "normalize_id"]


class SObjectStore(RecordChecks):
    """Records per object type, changed only inside ``transaction()``."""

    def __init__(self, now_ms: Callable[[], int], *, multi_currency: bool = True,
                 corporate_currency: str = "USD",
                 currencies: tuple[str, ...] = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF")) -> None:
        self.now_ms = now_ms
        self.multi_currency = multi_currency
        self.corporate_currency = corporate_currency
        self.currencies = set(currencies)
        # CurrencyType.ConversionRate: units of each currency per unit of the corporate currency
        self.rates = {code: DEFAULT_RATES.get(code, 1.0) / DEFAULT_RATES.get(corporate_currency, 1.0)
                      for code in self.currencies}
        self.types = {t.name.casefold(): t for t in SCHEMA_TYPES}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {t.name: {} for t in SCHEMA_TYPES}
        self.recency = {name: Recency.of(rows, lambda row: row["SystemModstamp"]) for name, rows in self.rows.items()}
        self.locked: set[str] = set()
        self.rules: dict[str, list[tuple[str, Callable[[dict[str, Any]], bool], str]]] = {}
        self.stages: dict[str, tuple[bool, bool, float]] = dict(STAGES)  # the org's OpportunityStage table
        # (object, field) → the values of a restricted picklist (an admin may add more)
        self.picklists: dict[tuple[str, str], list[str]] = {
            (t.name, f): list(values) for t in SCHEMA_TYPES for f, values in t.picklists.items()}
        self._counter = 0
        self._auto_numbers: dict[str, int] = {}
        self._last_stamp = 0
        self._stamp: int | None = None
        self._journal: list[tuple[str, str, dict[str, Any] | None]] | None = None
        # (object, external id field) → casefolded value → ids of live rows carrying it
        self._ext_index: dict[tuple[str, str], dict[str, set[str]]] = {
            (t.name, f): {} for t in SCHEMA_TYPES for f in t.external_ids}
        # object → casefolded Id → Id (an 18-character Id's suffix encodes its case: the fold is unique)
        self._id_index: dict[str, dict[str, str]] = {t.name: {} for t in SCHEMA_TYPES}

    # -- schema -------------------------------------------------------------------------------

    def sobject(self, name: str) -> SObjectType:
        try:
            return self.types[name.casefold()]
        except KeyError:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http=404) from None

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One unit of work: one SystemModstamp; an exception rolls every change back."""
        if self._journal is not None:  # nested: join the outer transaction
            yield
            return
        self._journal, self._stamp = [], None
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        finally:
            self._journal, self._stamp = None, None

    def rollback(self) -> None:
        """Undo every change of the current transaction (allOrNone)."""
        assert self._journal is not None, "rollback() outside a transaction"
        self._undo(0)

    def _undo(self, mark: int) -> None:
        """Undo the changes journaled after position ``mark``; the transaction goes on."""
        journal, self._journal = self._journal, None
        try:
            while journal and len(journal) > mark:
                obj, rid, before = journal.pop()
                self._put(obj, rid, before)
        finally:
            self._journal = journal if journal is not None else []

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One record's change: a ``RecordError`` undoes what it did so far (its cascades and roll-ups)."""
        mark = len(self._journal) if self._journal is not None else None
        try:
            yield
        except RecordError:
            if mark is not None:
                self._undo(mark)
            raise

    def _stamp_now(self) -> int:
        if self._stamp is None:
            self._stamp = self._last_stamp = max(self.now_ms(), self._last_stamp + 1)
        return self._stamp

    def _put(self, obj: str, rid: str, row: dict[str, Any] | None) -> None:
        """The one place rows change: journal (inside a transaction) and external-id index."""
        before = self.rows[obj].get(rid)
        if self._journal is not None:
            self._journal.append((obj, rid, before))
        for (index_obj, ext_field), index in self._ext_index.items():
            if index_obj != obj:
                continue
            for old_new, add in ((before, False), (row, True)):
                value = old_new.get(ext_field) if old_new and not old_new["IsDeleted"] else None
                if isinstance(value, str):
                    ids = index.setdefault(value.casefold(), set())
                    (ids.add if add else ids.discard)(rid)
        if row is None:
            del self.rows[obj][rid]
            self.recency[obj].drop(rid)
            self._id_index[obj].pop(rid.casefold(), None)
        else:
            self.rows[obj][rid] = row
            self.recency[obj].touch(rid, row["SystemModstamp"])
            self._id_index[obj][rid.casefold()] = rid

    # -- reads --------------------------------------------------------------------------------

    def find(self, sobject: SObjectType, rid: str, *, include_deleted: bool = False) -> dict[str, Any]:
        """The row with id ``rid``; ``MALFORMED_ID``, ``ENTITY_IS_DELETED`` or ``NOT_FOUND`` otherwise."""
        norm = normalize_id(rid)
        if norm is None or not norm.startswith(sobject.prefix):
            raise RecordError("MALFORMED_ID", f"{sobject.name} ID: id value of incorrect type: {rid}", ["Id"])
        row = self.rows[sobject.name].get(norm)
        if row is None:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http=404)
        if row["IsDeleted"] and not include_deleted:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", http=404)
        return row

    def by_external_id(self, sobject: SObjectType, ext_field: str, value: Any) -> list[dict[str, Any]]:
        """Live rows whose ``ext_field`` equals ``value`` ignoring case (as Salesforce matches them)."""
        ids = self._ext_index[(sobject.name, ext_field)].get(str(value).casefold(), set())
        return [self.rows[sobject.name][rid] for rid in sorted(ids)]

    def by_key(self, sobject: SObjectType, field: str, values: tuple[str, ...], *, include_deleted: bool,
               ) -> list[dict[str, Any]] | None:
        """The rows whose ``field`` equals one of ``values`` ignoring case, from an index, in Id order (the
        order they were created in); ``None`` when no index answers (the caller scans). Deleted rows are
        included when asked and only the Id index holds them."""
        if field == "Id":
            index = self._id_index[sobject.name]
            ids = {rid for value in values if (rid := index.get(value.casefold())) is not None}
        elif (sobject.name, field) in self._ext_index and not include_deleted:
            ext = self._ext_index[(sobject.name, field)]
            ids = {rid for value in values for rid in ext.get(value.casefold(), ())}
        else:
            return None
        return [self.rows[sobject.name][rid] for rid in sorted(ids)]

    def render(self, sobject: SObjectType, row: dict[str, Any], fields: list[str] | None = None,
               *, version: str = "66.0") -> dict[str, Any]:
        """A row as the REST API returns it: ``attributes`` first, dateTimes as wire strings."""
        types = self.field_types(sobject)
        names = fields if fields is not None else list(types)
        out: dict[str, Any] = {"attributes": {"type": sobject.name,
                                              "url": f"/services/data/v{version}/sobjects/{sobject.name}/{row['Id']}"}}
        for name in names:
            value = row.get(name)
            out[name] = format_datetime_ms(value) if types.get(name) == "datetime" and value is not None else value
        return out

    # -- writes -------------------------------------------------------------------------------

    def insert(self, sobject: SObjectType, values: dict[str, Any]) -> str:
        """Create a row. A detail record's currency defaults to its master's (else the corporate one)."""
        clean = self._check_values(sobject, values)
        if sobject.has_currency and self.multi_currency:
            clean.setdefault("CurrencyIsoCode", self._master_currency(sobject, clean) or self.corporate_currency)
        row: dict[str, Any] = {name: None for name in self.field_types(sobject)}
        row.update(clean, **empty_rollups(sobject))
        self._check_record(sobject, row, None)
        self._counter += 1
        rid = new_id(sobject.prefix, self._counter)
        if sobject.auto_name:
            number = self._auto_numbers[sobject.name] = self._auto_numbers.get(sobject.name, 0) + 1
            row["Name"] = sobject.auto_name.format(number)
        with self._atomic():
            stamp = self._stamp_now()
            row.update(Id=rid, IsDeleted=False, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
            self._put(sobject.name, rid, row)
            self._touch_masters(sobject, None, row)
        return rid

    def update(self, sobject: SObjectType, rid: str, values: dict[str, Any]) -> str:
        """Change a row; a new currency on a master converts its roll-ups, a detail recomputes its masters."""
        row = self.find(sobject, rid)
        clean = self._check_values(sobject, values)
        merged = {**row, **clean}
        self._check_record(sobject, merged, row["Id"])
        with self._atomic():
            stamp = self._stamp_now()
            merged.update(LastModifiedDate=stamp, SystemModstamp=stamp)
            self._put(sobject.name, row["Id"], merged)
            if sobject.rollups and "CurrencyIsoCode" in clean:
                self._recompute(sobject, merged)
            self._touch_masters(sobject, row, merged)
        return str(row["Id"])

    def delete(self, sobject: SObjectType, rid: str) -> str:
        """Move a row to the recycle bin with its details and cascades (an Account takes its Contacts,
        Opportunities and Invoice__c records, and those their Payment__c records) and clear other lookups
        to them (``ParentId`` of child Accounts), in the same transaction, as Salesforce does. The masters
        that remain get their roll-ups recomputed. A locked record fails the whole delete first."""
        row = self.find(sobject, rid)
        doomed, cleared = delete_plan(self.types.values(), self.rows, sobject, row)
        for _, related in doomed:
            self._check_lock(related["Id"])
        for _, related, _ in cleared:
            self._check_lock(related["Id"])
        with self._atomic():
            stamp = self._stamp_now()
            for kind, related in doomed:
                self._put(kind.name, related["Id"], {**related, "IsDeleted": True, "LastModifiedDate": stamp,
                                                     "SystemModstamp": stamp})
            for kind, related, name in cleared:
                current = self.rows[kind.name][related["Id"]]
                self._put(kind.name, related["Id"], {**current, name: None, "SystemModstamp": stamp})
            for kind, related in doomed:
                self._touch_masters(kind, related, None)
        return str(row["Id"])

    # -- master-detail ------------------------------------------------------------------------

    def _master_currency(self, sobject: SObjectType, clean: dict[str, Any]) -> str | None:
        for master, master_id in masters_of(self.types, sobject, clean):
            found = self.rows[master.name].get(master_id)
            if found is not None and found.get("CurrencyIsoCode"):
                return str(found["CurrencyIsoCode"])
        return None

    def _touch_masters(self, sobject: SObjectType, before: dict[str, Any] | None,
                       after: dict[str, Any] | None) -> None:
        """A detail row changed: lock each live master it points at (before and after) and recompute it."""
        for master, master_id in masters_of(self.types, sobject, before, after):
            row = self.rows[master.name].get(master_id)
            if row is None or row["IsDeleted"]:
                continue
            self._check_lock(master_id)
            self._recompute(master, row)

    def _recompute(self, master: SObjectType, row: dict[str, Any]) -> None:
        """Save the master's roll-ups when they changed (bumping its modstamps), and pass the change up."""
        rates = self.rates if self.multi_currency else None
        values = rollup_values(master, row, lambda name: self.rows[name].values(), rates)
        changed = {name: value for name, value in values.items() if row.get(name) != value}
        if not changed:
            return
        stamp = self._stamp_now()
        updated = {**row, **changed, "LastModifiedDate": stamp, "SystemModstamp": stamp}
        self._put(master.name, row["Id"], updated)
        self._touch_masters(master, row, updated)

    # -- record checks (field checks: ``checks.RecordChecks``) ---------------------------------

    def _check_record(self, sobject: SObjectType, row: dict[str, Any], rid: str | None) -> None:
        missing = [name for name in sobject.required if row.get(name) in (None, "")]
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                              missing)
        if rid is not None:
            self._check_lock(rid)
        for ext_field, unique in sobject.external_ids.items():
            value = row.get(ext_field)
            if not unique or value is None:
                continue
            clash = [r for r in self.by_external_id(sobject, ext_field, value) if r["Id"] != rid]
            if clash:
                raise RecordError("DUPLICATE_VALUE", f"duplicate value found: {ext_field} duplicates value on "
                                                     f"record with id: {clash[0]['Id']}", [ext_field])
        for _name, check, message in self.rules.get(sobject.name, []):
            if not check(row):
                raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message)

    def _check_lock(self, rid: str) -> None:
        if rid in self.locked:
            raise RecordError("UNABLE_TO_LOCK_ROW", f"unable to obtain exclusive access to this record or 1 "
                                                    f"records: {rid}")
