"""The QuickBooks fetch cursor: an opaque JSON string the poller stores as given.

* ``{"mode":"query","start":1001,"since":"..."}``: paging a query (a full load when ``after`` is absent,
  else a re-read of the records changed at or after ``after``). ``since`` is the server ``time`` of the
  first page: where change data capture picks up when the query is done; ``recent`` collects the records
  already read that CDC will send again (changed inside the overlap before ``since``) and, after a capped
  CDC, starts with those the last CDC window returned: the query skips every pair it holds.
* ``{"mode":"cdc","since":"...","recent":[[id, version], ...]}``: CDC from ``since`` minus the overlap;
  ``recent`` holds what the last response returned inside the overlap window so it is not emitted twice.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from accord.connectors.errors import Permanent
from accord.connectors.quickbooks.mapping import SYSTEM

# bound on the overlap de-dup set: one pair per record changed since the last watermark minus the overlap,
# which after a capped CDC is everything a query window read (thousands while a bulk load is written)
RECENT_MAX = 20_000


class QueryCursor(msgspec.Struct, tag="query", tag_field="mode", omit_defaults=True, frozen=True):
    start: int = 1
    since: str | None = None
    after: str | None = None
    recent: list[tuple[str, int]] = []


class CdcCursor(msgspec.Struct, tag="cdc", tag_field="mode", frozen=True):
    since: str
    recent: list[tuple[str, int]] = []


Cursor = QueryCursor | CdcCursor
_decoder = msgspec.json.Decoder(Cursor)


def encode(cursor: Cursor) -> str:
    return msgspec.json.encode(cursor).decode()


def decode(text: str | None) -> Cursor:
    if not text:
        return QueryCursor()
    try:
        cursor: Cursor = _decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise Permanent(SYSTEM, f"cursor {text[:120]!r} is not a QuickBooks cursor ({exc}); "
                                "reset it (accord resync) to reload from QuickBooks") from exc
    return cursor


def parse_time(value: str) -> dt.datetime:
    stamp = dt.datetime.fromisoformat(value)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def shift(value: str, seconds: float) -> str:
    """``value`` (an ISO time) moved by ``seconds``, keeping its offset."""
    return (parse_time(value) + dt.timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def from_epoch_ms(ms: int) -> str:
    """A query literal for epoch milliseconds, floored to the second (QBO stamps have second resolution)."""
    return dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC).isoformat(timespec="seconds")
