"""Typed views of Redis replies.

Accord's clients do not set ``decode_responses``, so every key, field and value comes back as bytes. redis-py
types its replies for either setting (``bytes | str``, entries that may be ``None``); these functions turn
them into the types the code works with, in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.typing import StreamRangeResponse, ZSetRangeResponse

K = TypeVar("K", bound=bytes | str)
V = TypeVar("V")

Entry = tuple[str, dict[bytes, bytes]]  # a stream entry: its id and its fields ({} when trimmed)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def text_or_none(value: bytes | str | None) -> str | None:
    return None if value is None else text(value)


def binary(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def binary_or_none(value: bytes | str | None) -> bytes | None:
    return None if value is None else binary(value)


def text_set(members: Iterable[bytes | str]) -> set[str]:
    return {text(m) for m in members}


def zset_members(reply: ZSetRangeResponse) -> list[str]:
    """The members of a ZRANGE-family reply asked for without scores."""
    return [_member(m) for m in reply]


def zset_scored(reply: ZSetRangeResponse) -> list[tuple[str, float]]:
    """(member, score) pairs of a ZRANGE-family reply asked for WITHSCORES."""
    out = []
    for item in reply:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"a (member, score) pair, not {item!r}: ask with scores")
        out.append((_member(item[0]), float(item[1])))
    return out


def _member(value: object) -> str:
    if not isinstance(value, bytes | str):
        raise TypeError(f"a sorted-set member, not {value!r}: ask without scores")
    return text(value)


def text_keys(reply: Mapping[K, V]) -> dict[str, V]:
    """A hash reply with its field names as text (values kept as they are: msgpack, counters...)."""
    return {text(k): v for k, v in reply.items()}


def text_map(reply: Mapping[K, bytes | str]) -> dict[str, str]:
    """A hash reply with field names and values as text."""
    return {text(k): text(v) for k, v in reply.items()}


def int_map(reply: Mapping[K, bytes | str | int]) -> dict[str, int]:
    """A hash of counters with its field names as text."""
    return {text(k): int(v) for k, v in reply.items()}


def stream_entries(
    reply: Iterable[tuple[bytes | str | None, Mapping[K, bytes | str] | None]] | None,
) -> list[Entry]:
    """The entries of an XRANGE or XREVRANGE reply, or of one stream of an XREAD(GROUP) reply. A pending
    entry whose payload was trimmed has no fields: ``{}``. A row without an id (a nil row) names nothing
    to read or acknowledge and is left out."""
    return [(text(entry_id), {binary(k): binary(v) for k, v in (fields or {}).items()})
            for entry_id, fields in reply or [] if entry_id is not None]


def first_fields(reply: StreamRangeResponse | None) -> dict[bytes, bytes]:
    """The fields of the first entry of an XRANGE reply (``{}``: no entry, or its payload was trimmed)."""
    entries = stream_entries(reply)
    return entries[0][1] if entries else {}


def read_entries(reply: list[list[Any]] | Mapping[Any, Any] | None) -> list[Entry]:
    """Every stream's entries of an XREAD or XREADGROUP reply, in stream order (RESP2 replies:
    ``[[stream, entries], ...]``, as Accord's clients speak)."""
    if not reply:
        return []
    if isinstance(reply, Mapping):
        raise TypeError("a RESP3 stream reply; Accord's Redis clients speak RESP2")
    return [entry for _stream, entries in reply for entry in stream_entries(entries)]


@dataclass(frozen=True)
class PendingRow:
    """One row of an XPENDING extended reply."""

    entry_id: str
    idle_ms: int
    deliveries: int


def pending_rows(reply: Iterable[Mapping[str, bytes | str | int]]) -> list[PendingRow]:
    """The rows of an XPENDING extended-form reply (``xpending_range``)."""
    return [PendingRow(_entry_id(row["message_id"]), int(row["time_since_delivered"]),
                       int(row["times_delivered"])) for row in reply]


def _entry_id(value: bytes | str | int) -> str:
    if isinstance(value, int):  # redis-py types every XPENDING column alike; an id is never a number
        raise TypeError(f"a stream entry id, not the number {value}")
    return text(value)
