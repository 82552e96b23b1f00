"""The SOQL of the Salesforce connector's incremental reads, and where the next one starts.

Three kinds of read (``client.SalesforceConnector.fetch``):

* a **full** read (no watermark yet): every row, whole, page by page;
* a **fast** read between settling reads: from the watermark's second, or, when that second was busy
  (``KEYSET_MIN`` rows or more), by keyset after the last Id read in it (``SystemModstamp``, ``Id``);
* a **settling** read once per ``overlap``: from the last settled floor up to the watermark, *thin*
  (``Id`` and ``SystemModstamp`` only: most of its rows were read already); the rows the de-dup window does
  not hold are then read whole by Id (``Id IN (...)``, ``REFETCH_IDS`` at a time).

Nothing here keeps state: the position travels in ``dedup.FetchCursor``.
"""

from __future__ import annotations

from typing import Any

from accord.connectors.salesforce.dedup import FetchCursor, Pair
from accord.connectors.salesforce.fieldmap import parse_datetime_ms, soql_datetime, soql_string
from accord.connectors.salesforce.mapping import MappingError

# a second holding at least this many rows is read by keyset (after the last Id read) between settling
# reads; a quieter second is read whole again (no row of it waits for the settling read)
KEYSET_MIN = 200
# Ids per ``Id IN (...)`` query when a thin settling read finds rows not read yet (a GET's URL stays ~5 KB)
REFETCH_IDS = 200
THIN_FIELDS = ("Id", "SystemModstamp")


def row_pair(raw: dict[str, Any]) -> Pair | None:
    """``(id, version)`` of a queried row as ``to_canonical`` reads them, or None when it cannot tell."""
    stamp = raw.get("SystemModstamp")
    if not isinstance(stamp, str) or raw.get("Id") is None:
        return None
    try:
        return str(raw["Id"]), parse_datetime_ms(stamp)
    except (ValueError, MappingError):
        return None


def where(floor: int | None, *, key: str | None = None, upto: int | None = None) -> str:
    """The WHERE clause from ``floor``'s second (after Id ``key`` in it), up to ``upto``'s second."""
    if floor is None:
        return ""
    since = soql_datetime(floor)
    clause = f" WHERE SystemModstamp >= {since}"
    if key is not None:
        clause += f" AND (SystemModstamp > {since} OR Id > {soql_string(key)})"
    if upto is not None:
        clause += f" AND SystemModstamp <= {soql_datetime(upto)}"
    return clause


def ids_in(ids: list[str]) -> str:
    return f" WHERE Id IN ({', '.join(soql_string(rid) for rid in ids)})"


def keyset(rows: list[dict[str, Any]], state: FetchCursor, wm: int | None) -> str | None:
    """The Id the next fast read starts after in the watermark's second (``FetchCursor.key``), or None to
    read that second whole: keyset when the page's last second holds ``KEYSET_MIN`` rows or more, or
    continues the second the previous key was for. ``rows`` come ordered by (second, Id)."""
    if not rows:
        return state.key
    last = row_pair(rows[-1])
    if last is None or wm is None or last[1] // 1000 != wm // 1000:
        return None
    second = last[1] // 1000
    if state.key is not None and state.wm is not None and state.wm // 1000 == second:
        return last[0]
    busy = sum(1 for raw in rows[-KEYSET_MIN:] if (pair := row_pair(raw)) is not None and pair[1] // 1000 == second)
    return last[0] if busy >= KEYSET_MIN else None
