"""Typed views of Redis replies: bytes or text in, the types the code works with out."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from accord.streams.replies import (
    PendingRow,
    first_fields,
    int_map,
    pending_rows,
    read_entries,
    stream_entries,
    text_map,
    zset_members,
)


def test_stream_entries_take_bytes_or_text_and_keep_a_trimmed_entry_empty() -> None:
    reply = [(b"1-0", {b"d": b"x"}), ("2-0", {"d": "y"}), (b"3-0", None), (None, None)]
    assert stream_entries(reply) == [("1-0", {b"d": b"x"}), ("2-0", {b"d": b"y"}), ("3-0", {})]
    assert stream_entries(None) == []
    assert first_fields(reply) == {b"d": b"x"}
    assert first_fields([]) == {}


def test_read_entries_join_every_stream_of_a_resp2_reply() -> None:
    reply = [[b"s1", [(b"1-0", {b"a": b"1"})]], [b"s2", [(b"2-0", {b"b": b"2"})]]]
    assert read_entries(reply) == [("1-0", {b"a": b"1"}), ("2-0", {b"b": b"2"})]
    assert read_entries(None) == read_entries([]) == []
    with pytest.raises(TypeError, match="RESP3"):
        read_entries({b"s1": [[(b"1-0", {b"a": b"1"})]]})


def test_hash_replies() -> None:
    assert text_map({b"crm": b"001", "erp": "7"}) == {"crm": "001", "erp": "7"}
    assert int_map({b"0": b"3", "1": 4}) == {"0": 3, "1": 4}


def test_pending_rows_and_sorted_set_members() -> None:
    rows = [{"message_id": b"1-0", "consumer": b"p0", "time_since_delivered": 1500, "times_delivered": 2}]
    assert pending_rows(rows) == [PendingRow("1-0", 1500, 2)]
    assert zset_members([b"a", "b"]) == ["a", "b"]
    with pytest.raises(TypeError, match="without scores"):
        zset_members([(b"a", 1.0)])


async def test_the_views_read_what_redis_returns(fake_redis: Redis) -> None:
    await fake_redis.xadd("s", {"d": b"x"}, id="1-0")
    await fake_redis.hset("h", mapping={"n": 3})
    assert stream_entries(await fake_redis.xrange("s")) == [("1-0", {b"d": b"x"})]
    assert read_entries(await fake_redis.xread({"s": "0"})) == [("1-0", {b"d": b"x"})]
    assert int_map(await fake_redis.hgetall("h")) == {"n": 3}
