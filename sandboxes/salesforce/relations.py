"""Relationships in the sandbox store, the way Salesforce treats them: what a delete takes with it, which
masters a change of a detail record touches, and the values of roll-up summary fields.

* Deleting a record deletes, in the same transaction, every record whose master-detail field points at
  it, recursively (Account → Invoice__c → Payment__c), and the records of a cascading lookup (Contact
  and Opportunity go with their Account). Other lookups to a deleted record are cleared (``ParentId``).
* An insert, update or delete of a detail record locks its master and recomputes the master's roll-up
  summary fields (the store does this; see ``SObjectStore._touch_masters``). A roll-up whose value
  changes is saved on the master, which bumps its ``LastModifiedDate`` and ``SystemModstamp`` and in
  turn recomputes the master's own master (``Account.Last_Payment_Date__c`` rolls up
  ``Invoice__c.Last_Payment_Date__c``).
* SUM over no records is 0 and MAX over none is null. Currency amounts are converted from the detail's
  currency into the master's at the org's conversion rates (``CurrencyType.ConversionRate``: units of a
  currency per unit of the corporate currency), then rounded to the field's two decimals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from accord.sandboxes.salesforce.schema import SObjectType

Row = dict[str, Any]

DEFAULT_RATES: dict[str, float] = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "CAD": 1.37, "AUD": 1.52, "CHF": 0.88}


def delete_plan(types: Iterable[SObjectType], rows: Mapping[str, Mapping[str, Row]], sobject: SObjectType,
                row: Row) -> tuple[list[tuple[SObjectType, Row]], list[tuple[SObjectType, Row, str]]]:
    """What deleting ``row`` does: the rows deleted (``row`` first, then its details and cascades, breadth
    first) and the live rows outside that set whose lookup (the ``str``) to one of them is cleared."""
    kinds = list(types)
    doomed: list[tuple[SObjectType, Row]] = [(sobject, row)]
    seen = {row["Id"]}
    cleared: list[tuple[SObjectType, Row, str]] = []
    at = 0
    while at < len(doomed):
        parent_type, parent = doomed[at]
        at += 1
        for child_type in kinds:
            for name, target in child_type.lookups.items():
                if target != parent_type.name:
                    continue
                for child in rows[child_type.name].values():
                    if child.get(name) != parent["Id"] or child["IsDeleted"] or child["Id"] in seen:
                        continue
                    if child_type.deletes_with(name):
                        seen.add(child["Id"])
                        doomed.append((child_type, child))
                    else:
                        cleared.append((child_type, child, name))
    return doomed, [item for item in cleared if item[1]["Id"] not in seen]


def masters_of(types: Mapping[str, SObjectType], sobject: SObjectType, *versions: Row | None,
               ) -> list[tuple[SObjectType, str]]:
    """``(master type, master id)`` for every master-detail field of ``sobject`` in any of ``versions``
    (the row before and after a change: a reparented detail touches both masters)."""
    out: list[tuple[SObjectType, str]] = []
    for name in sobject.masters:
        master = types[sobject.lookups[name].casefold()]
        for version in versions:
            master_id = version.get(name) if version else None
            if master_id and (master, master_id) not in out:
                out.append((master, master_id))
    return out


def convert(amount: float, source: str | None, target: str | None, rates: Mapping[str, float]) -> float:
    """``amount`` in ``source`` currency expressed in ``target`` currency (unchanged when either is unset)."""
    if not source or not target or source == target:
        return amount
    return amount / rates.get(source, 1.0) * rates.get(target, 1.0)


def empty_rollups(master: SObjectType) -> Row:
    """The roll-up values of a master with no details: SUM 0, MAX null."""
    return {r.field: 0.0 if r.function == "SUM" else None for r in master.rollups}


def rollup_values(master: SObjectType, row: Row, details: Callable[[str], Iterable[Row]],
                  rates: Mapping[str, float] | None) -> Row:
    """Every roll-up summary field of the master ``row``, computed from its live details.
    ``details(name)`` gives the rows of a detail object; ``rates`` is None in a single-currency org."""
    out: Row = {}
    for rollup in master.rollups:
        values: list[Any] = []
        for detail in details(rollup.detail):
            if detail["IsDeleted"] or detail.get(rollup.relation) != row["Id"]:
                continue
            if any(detail.get(name) in excluded for name, excluded in rollup.exclude):
                continue
            value = detail.get(rollup.source)
            if value is None:
                continue
            if rollup.ftype == "currency" and rates is not None:
                value = convert(value, detail.get("CurrencyIsoCode"), row.get("CurrencyIsoCode"), rates)
            values.append(value)
        if rollup.function == "SUM":
            out[rollup.field] = round(float(sum(values)), 2)
        elif rollup.function == "MAX":
            out[rollup.field] = max(values, default=None)
        else:
            raise ValueError(f"roll-up {master.name}.{rollup.field}: unsupported function {rollup.function!r}")
    return out
