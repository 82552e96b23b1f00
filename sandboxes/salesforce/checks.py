"""The sandbox store's record checks, as Salesforce words them: ``RecordError`` (a per-record
``statusCode``), 18-character ids, and ``RecordChecks``, the field-level validation of a write (names,
types, restricted picklists, currencies, countries and lookups) that ``SObjectStore`` inherits.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from accord.sandboxes.salesforce.schema import COUNTRIES, STRING_TYPES, SYSTEM_FIELDS, SObjectType

__all__ = ["RecordChecks", "RecordError", "id18", "new_id", "normalize_id"]

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


class RecordChecks:
    """Field-level checks of a write against the org's schema and data (mixed into ``SObjectStore``)."""

    multi_currency: bool
    currencies: set[str]
    types: dict[str, SObjectType]
    rows: dict[str, dict[str, dict[str, Any]]]
    stages: dict[str, tuple[bool, bool, float]]
    picklists: dict[tuple[str, str], list[str]]

    def field_types(self, sobject: SObjectType) -> dict[str, str]:
        """Every queryable field of ``sobject`` (declared name → Salesforce type)."""
        types = {**SYSTEM_FIELDS, **sobject.fields, **sobject.computed()}
        if sobject.has_currency and self.multi_currency:
            types["CurrencyIsoCode"] = "picklist"
        return types

    def _check_values(self, sobject: SObjectType, values: dict[str, Any]) -> dict[str, Any]:
        """Field names and value types of a write; returns the values under their declared names."""
        types = self.field_types(sobject)
        by_fold = {name.casefold(): name for name in types}
        clean: dict[str, Any] = {}
        read_only: list[str] = []
        for key, value in values.items():
            if key == "attributes":
                continue
            name = by_fold.get(key.casefold())
            if name is None:  # the body is bound first: an unknown name is refused before read-only ones
                raise RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject.name}",
                                  [key])
            if name in SYSTEM_FIELDS or name in sobject.computed():
                read_only.append(name)
                continue
            clean[name] = self._check_type(name, types[name], value)
        if read_only:  # one error naming every read-only field sent
            raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE",
                              f"Unable to create/update fields: {', '.join(read_only)}. Please check the security "
                              "settings of this field and verify that it is read/write for your profile or "
                              "permission set.", read_only)
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
        """``value`` as the org stores it in a field of type ``ftype``; a value of the wrong type is refused."""
        if value is None:
            return None
        if ftype in STRING_TYPES:
            return _checked_text(name, ftype, value)
        if not _fits(ftype, value):
            raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value!r}",
                              [name])
        if ftype == "currency":
            return round(float(value), 2)  # Amount is currency(16, 2): Salesforce rounds on save
        return value


def _checked_text(name: str, ftype: str, value: Any) -> str | None:
    if not isinstance(value, str):
        raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value!r}", [name])
    limit = 32000 if ftype == "textarea" else 255
    if len(value) > limit:
        raise RecordError("STRING_TOO_LONG", f"{name}: data value too large: {value[:40]!r}... "
                                             f"(max length={limit})", [name])
    return value if value != "" else None


def _fits(ftype: str, value: Any) -> bool:
    """Whether a non-text ``value`` has the JSON type a field of ``ftype`` takes."""
    if ftype == "boolean":
        return isinstance(value, bool)
    if ftype in ("double", "currency", "percent"):
        return not isinstance(value, bool) and isinstance(value, int | float)
    if ftype == "date":
        return isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None and _is_date(value)
    return True


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True
