"""Building blocks of the sandbox's business rules (``rules``, ``billed``, ``billing``): the line and
status names, the QBO faults a rule raises (2020 required, 2010 invalid, 2500 bad reference, 6000
business validation) and small readers of wire values. Nothing here touches a realm's tables except
``live``, which reads one record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from accord.connectors.quickbooks.faults import PACIFIC, QboFault

if TYPE_CHECKING:
    from accord.sandboxes.quickbooks.store import Realm

CENT = Decimal("0.01")
EXPENSE_LINE = "AccountBasedExpenseLineDetail"
SALES_LINE = "SalesItemLineDetail"
BILLED, BILLABLE = "HasBeenBilled", "Billable"


def required(name: str, entity: str, why: str = "") -> QboFault:
    return QboFault(400, "2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {name} is missing in the request{': ' + why if why else ''}",
                    element=name)


def invalid(name: str, value: Any, why: str) -> QboFault:
    return QboFault(400, "2010", "Request has invalid or unsupported property",
                    f"Property {name} value {value!r} is invalid: {why}", element=name)


def bad_ref(name: str, value: Any, target: str, why: str = "") -> QboFault:
    return QboFault(400, "2500", "Invalid Reference Id",
                    f"Invalid Reference Id : {name} {value!r} is not a {target}{': ' + why if why else ''}",
                    element=name)


def business(detail: str) -> QboFault:
    return QboFault(400, "6000", "A business validation error has occurred while processing your request",
                    f"Business Validation Error: {detail}")


def amount(value: Any, name: str = "Amount") -> Decimal:
    try:
        return Decimal(str(value)).quantize(CENT)
    except ArithmeticError:
        raise invalid(name, value, "expected a number") from None


def as_number(value: Decimal) -> float:
    return float(value.quantize(CENT))


def ref_id(wire: Mapping[str, Any], name: str) -> str | None:
    ref = wire.get(name)
    return str(ref["value"]) if isinstance(ref, Mapping) and ref.get("value") is not None else None


def live(realm: Realm, table: str, record_id: str | None) -> dict[str, Any] | None:
    row = realm.tables[table].get(str(record_id)) if record_id is not None else None
    return None if row is None or row.deleted else row.wire


def today(now: float) -> str:
    return dt.datetime.fromtimestamp(now, tz=PACIFIC).date().isoformat()


def linked(line: Mapping[str, Any], kind: str) -> list[str]:
    """The TxnIds of ``line``'s LinkedTxn entries of TxnType ``kind``."""
    return [str(x.get("TxnId")) for x in line.get("LinkedTxn") or [] if x.get("TxnType") == kind]
