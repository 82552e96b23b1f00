"""The sandbox's sObject store: typed records, 18-character ids, modstamps, validation, transactions.

One ``SObjectStore`` is one org's data. Every change runs in a transaction that takes one
``SystemModstamp`` (strictly increasing per org: ``max(clock ms, last + 1)``); all records a transaction
touches share it, as a bulk DML statement's records do in Salesforce. Deleted rows stay (``IsDeleted``)
so ``queryAll`` sees them. Validation mirrors Salesforce's per-record status codes (``RecordError``).
The store is not thread-safe by itself: ``SalesforceState`` holds its lock around every call.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from accord.connectors.salesforce.fieldmap import format_datetime_ms
from accord.connectors.salesforce.schema import (
    COUNTRIES,
    STAGES,
    STANDARD_TYPES,
    STRING_TYPES,
    SYSTEM_FIELDS,
    SObjectType,
)

__all__ = ["STAGES", "SYSTEM_FIELDS", "RecordError", "SObjectStore", "SObjectType", "id18", "new_id",
           "normalize_id"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")
class RecordError(ValueError):
    """A per-record failure with Salesforce's ``statusCode``; ``http`` is the single-record status."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None, *, http: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = fields or []
        self.http = http

    def record_json(self) -> dict[str, Any]:
        """The per-record error shape (sObject Collections): ``statusCode``."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def rest_json(self) -> dict[str, Any]:
        """The top-level REST error shape: ``errorCode``."""
        return {"message": self.message, "errorCode": self.code, "fields": self.fields}


def id18(id15: str) -> str:
    """Salesforce's case-safe 18-character id: three suffix characters encode the uppercase letters."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        suffix += _SUFFIX[sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")]
    return id15 + suffix


def normalize_id(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when it is not an id at all."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    return id18(value[:15])


def new_id(prefix: str, counter: int) -> str:
    digits = ""
    for _ in range(5):
        counter, rest = divmod(counter, 62)
        digits = _BASE62[rest] + digits
    return id18(f"{prefix}5g00000{digits}")


class SObjectStore:
    """Records per object type, changed only inside ``transaction()``."""

    def __init__(self, now_ms: Callable[[], int], *, multi_currency: bool = True,
                 corporate_currency: str = "USD",
                 currencies: tuple[str, ...] = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF")) -> None:
        self.now_ms = now_ms
        self.multi_currency = multi_currency
        self.corporate_currency = corporate_currency
        self.currencies = set(currencies)
        self.types = {t.name.casefold(): t for t in STANDARD_TYPES}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {t.name: {} for t in STANDARD_TYPES}
        self.locked: set[str] = set()
        self.rules: dict[str, list[tuple[str, Callable[[dict[str, Any]], bool], str]]] = {}
        self.stages: dict[str, tuple[bool, bool, float]] = dict(STAGES)  # the org's OpportunityStage table
        # (object, field) → the values of a restricted picklist (an admin may add more)
        self.picklists: dict[tuple[str, str], list[str]] = {
            (t.name, f): list(values) for t in STANDARD_TYPES for f, values in t.picklists.items()}
        self._counter = 0
        self._last_stamp = 0
        self._stamp: int | None = None
        self._journal: list[tuple[str, str, dict[str, Any] | None]] | None = None
        # (object, external id field) → casefolded value → ids of live rows carrying it
        self._ext_index: dict[tuple[str, str], dict[str, set[str]]] = {
            (t.name, f): {} for t in STANDARD_TYPES for f in t.external_ids}

    # -- schema -------------------------------------------------------------------------------

    def sobject(self, name: str) -> SObjectType:
        try:
            return self.types[name.casefold()]
        except KeyError:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http=404) from None

    def field_types(self, sobject: SObjectType) -> dict[str, str]:
        """Every queryable field of ``sobject`` (declared name → Salesforce type)."""
        types = {**SYSTEM_FIELDS, **sobject.fields, **sobject.read_only}
        if sobject.has_currency and self.multi_currency:
            types["CurrencyIsoCode"] = "picklist"
        return types

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
        journal, self._journal = self._journal, None
        try:
            while journal:
                obj, rid, before = journal.pop()
                self._put(obj, rid, before)
        finally:
            self._journal = []  # still inside the transaction: later changes are journaled again

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
        else:
            self.rows[obj][rid] = row

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
        clean = self._check_values(sobject, values)
        if sobject.has_currency and self.multi_currency:
            clean.setdefault("CurrencyIsoCode", self.corporate_currency)
        row: dict[str, Any] = {name: None for name in self.field_types(sobject)}
        row.update(clean)
        self._check_record(sobject, row, None)
        self._counter += 1
        rid = new_id(sobject.prefix, self._counter)
        stamp = self._stamp_now()
        row.update(Id=rid, IsDeleted=False, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
        self._put(sobject.name, rid, row)
        return rid

    def update(self, sobject: SObjectType, rid: str, values: dict[str, Any]) -> str:
        row = self.find(sobject, rid)
        clean = self._check_values(sobject, values)
        merged = {**row, **clean}
        self._check_record(sobject, merged, row["Id"])
        stamp = self._stamp_now()
        merged.update(LastModifiedDate=stamp, SystemModstamp=stamp)
        self._put(sobject.name, row["Id"], merged)
        return str(row["Id"])

    def delete(self, sobject: SObjectType, rid: str) -> str:
        """Move a row to the recycle bin. Deleting an Account deletes its Contacts and Opportunities and
        clears ``ParentId`` on its child Accounts, in the same transaction (as Salesforce does); a locked
        related record fails the whole delete before anything changes."""
        row = self.find(sobject, rid)
        self._check_lock(row["Id"])
        related: list[tuple[SObjectType, dict[str, Any], str]] = []
        for child_type in self.types.values():
            for name, target in child_type.lookups.items():
                if target == sobject.name:
                    related.extend((child_type, child, name) for child in self.rows[child_type.name].values()
                                   if child.get(name) == row["Id"] and not child["IsDeleted"])
        for _, child, _ in related:
            self._check_lock(child["Id"])
        stamp = self._stamp_now()
        self._put(sobject.name, row["Id"], {**row, "IsDeleted": True, "LastModifiedDate": stamp,
                                            "SystemModstamp": stamp})
        for child_type, child, name in related:
            cascade = {"IsDeleted": True, "LastModifiedDate": stamp} if name == "AccountId" else {name: None}
            self._put(child_type.name, child["Id"], {**child, **cascade, "SystemModstamp": stamp})
        return str(row["Id"])

    # -- validation ---------------------------------------------------------------------------

    def _check_values(self, sobject: SObjectType, values: dict[str, Any]) -> dict[str, Any]:
        """Field names and value types of a write; returns the values under their declared names."""
        types = self.field_types(sobject)
        by_fold = {name.casefold(): name for name in types}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key == "attributes":
                continue
            name = by_fold.get(key.casefold())
            if name is None:
                raise RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject.name}",
                                  [key])
            if name in SYSTEM_FIELDS or name in sobject.read_only:
                raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE",
                                  f"Unable to create/update fields: {name}. Please check the security settings "
                                  "of this field and verify that it is read/write for your profile or "
                                  "permission set.", [name])
            clean[name] = self._check_type(name, types[name], value)
        if "BillingCountryCode" in clean:
            code = clean["BillingCountryCode"]
            if code is not None and not re.fullmatch(r"[A-Z]{2}", str(code)):
                raise RecordError("FIELD_INTEGRITY_EXCEPTION",
                                  "There's a problem with this country, even though it may appear correct. "
                                  "Please select a country/territory from the list of valid countries.: "
                                  "Billing Country Code", ["BillingCountryCode"])
            clean["BillingCountry"] = None if code is None else COUNTRIES.get(code, code)
        if clean.get("CurrencyIsoCode") is not None and clean["CurrencyIsoCode"] not in self.currencies:
            raise RecordError("INVALID_CURRENCY_ISO", f"Invalid currency code: {clean['CurrencyIsoCode']}; "
                                                      f"active currencies: {sorted(self.currencies)}",
                              ["CurrencyIsoCode"])
        self._check_picklists(sobject, clean)
        self._check_lookups(sobject, clean)
        if sobject.name == "Opportunity" and clean.get("StageName") is not None:
            closed, won, probability = self.stages[clean["StageName"]]
            clean.setdefault("Probability", probability)
            clean.update(IsClosed=closed, IsWon=won)
        return clean

    def _check_picklists(self, sobject: SObjectType, clean: dict[str, Any]) -> None:
        """Restricted picklists (and the stage table) refuse values they do not list."""
        for name, value in clean.items():
            if value is None:
                continue
            if sobject.name == "Opportunity" and name == "StageName":
                allowed: Any = self.stages
            else:
                allowed = self.picklists.get((sobject.name, name))
            if allowed is not None and value not in allowed:
                raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                  f"{name}: bad value for restricted picklist field: {value}", [name])

    def _check_lookups(self, sobject: SObjectType, clean: dict[str, Any]) -> None:
        """A lookup must hold the id of a live record of its object (stored in 18-character form)."""
        for name, target in sobject.lookups.items():
            value = clean.get(name)
            if value is None:
                continue
            norm = normalize_id(value)
            target_type = self.types[target.casefold()]
            if norm is None:
                raise RecordError("MALFORMED_ID", f"{target} ID: id value of incorrect type: {value}", [name])
            if not norm.startswith(target_type.prefix):
                raise RecordError("FIELD_INTEGRITY_EXCEPTION",
                                  f"field integrity exception: {name} (id value of incorrect type)", [name])
            found = self.rows[target].get(norm)
            if found is None or found["IsDeleted"]:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", [name])
            clean[name] = norm

    @staticmethod
    def _check_type(name: str, ftype: str, value: Any) -> Any:
        wrong = RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value!r}",
                            [name])
        if value is None:
            return None
        if ftype in STRING_TYPES:
            if not isinstance(value, str):
                raise wrong
            limit = 32000 if ftype == "textarea" else 255
            if len(value) > limit:
                raise RecordError("STRING_TOO_LONG", f"{name}: data value too large: {value[:40]!r}... "
                                                     f"(max length={limit})", [name])
            return value if value != "" else None
        if ftype == "boolean" and not isinstance(value, bool):
            raise wrong
        if ftype in ("double", "currency", "percent") and (isinstance(value, bool) or
                                                          not isinstance(value, int | float)):
            raise wrong
        if ftype == "currency":
            return round(float(value), 2)  # Amount is currency(16, 2): Salesforce rounds on save
        if ftype == "date":
            if not (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
                raise wrong
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise wrong from None
        return value

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
