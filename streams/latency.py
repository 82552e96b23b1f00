"""End-to-end latency: from a change in its source system to its write in a target, as a Prometheus
histogram kept in Redis (``stats:latency``: bucket counters per entity and target, incremented in the
writer's commit, so a crash counts a write exactly when it counts as done).

The start is the source's own change stamp (the record's version, epoch ms, for the systems whose
version is their modification time), else when the poller observed the change; a stamp that is not a
time of the last 30 days is not one, and the observation counts instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 4 * 3600.0)
PLAUSIBLE_MS = 30 * 86400 * 1000
SUM, COUNT = "sum_ms", "count"


def started_ms(version: int, observed_ms: int, now_ms: int) -> int:
    """When the change happened in its source, as well as Accord can tell."""
    if now_ms - PLAUSIBLE_MS <= version <= now_ms:
        return min(version, observed_ms) if observed_ms else version
    return observed_ms or now_ms


def bucket_counts(entity: str, target: str, latencies_ms: Iterable[int]) -> Counter[str]:
    """The ``stats:latency`` increments for some writes: each write counts in its smallest bucket
    (cumulated at scrape time), plus the sum and the count."""
    out: Counter[str] = Counter()
    for ms in latencies_ms:
        seconds = max(0, ms) / 1000
        le = next((b for b in BUCKETS if seconds <= b), float("inf"))
        out[f"{entity}|{target}|{_le(le)}"] += 1
        out[f"{entity}|{target}|{SUM}"] += max(0, ms)
        out[f"{entity}|{target}|{COUNT}"] += 1
    return out


def histogram(raw: Mapping[tuple[str, ...], int], entity: str, target: str) -> tuple[list[tuple[str, float]], float]:
    """Cumulative ``(le, count)`` buckets (``+Inf`` last) and the sum in seconds, from the stored counters."""
    cumulative, buckets = 0, []
    for bound in (*BUCKETS, float("inf")):
        cumulative += raw.get((entity, target, _le(bound)), 0)
        buckets.append((_le(bound), float(cumulative)))
    return buckets, raw.get((entity, target, SUM), 0) / 1000


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(float(bound))  # Prometheus' spelling: "5.0"
