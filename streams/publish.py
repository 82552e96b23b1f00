"""Publishing change records: the one place a change record is added to a partition stream.

A publication is queued on a ``Batch``, so it lands atomically with whatever state the caller commits
with it (a poller's cursor, a writer's acks, the desk's status): after a crash either both are in Redis or
neither is. The ``produced`` counter of each partition (what the lag metrics compare acks against) is
counted in the same batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.records import ChangeRecord, encode, partition_of


def publish(pipe: Batch, keys: Keys, partitions: int, changes: Iterable[ChangeRecord]) -> int:
    """Queue ``changes`` on their partitions' streams (``partition_of`` their gid) and count them produced;
    returns how many were queued."""
    produced: Counter[tuple[str, int]] = Counter()
    for change in changes:
        partition = partition_of(change.gid, partitions)
        pipe.xadd(keys.changes(change.entity, partition), {"d": encode(change)})
        produced[change.entity, partition] += 1
    for (entity, partition), count in produced.items():
        pipe.hincrby(keys.produced(entity), str(partition), count)
    return sum(produced.values())
