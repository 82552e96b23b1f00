"""Adaptive polling: an idle entity backs off to its maximum interval, a find or a webhook hint brings it
back to its base, and the interval achieved between polls is what the metric reports."""

from __future__ import annotations

from accord.actors.poll.pace import ACTIVE_FOR, PollPace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poll(pace: PollPace, clock: Clock, entity: str, found: int) -> float:
    """Wait until ``entity`` is due, poll it; the interval until its next poll."""
    clock.now = max(clock.now, pace.paces[entity].due)
    assert pace.due(entity)
    pace.started(entity)
    pace.polled(entity, found)
    return pace.paces[entity].due - clock.now


def test_an_idle_entity_backs_off_to_its_maximum_and_a_find_brings_it_back() -> None:
    clock = Clock()
    pace = PollPace.of({"time_entry": (2.0, 30.0)}, clock)
    assert poll(pace, clock, "time_entry", 5) == 2.0
    intervals = [poll(pace, clock, "time_entry", 0) for _ in range(16)]
    active = intervals.index(4.0)  # polls at the base interval while the last find is recent
    assert intervals[:active] == [2.0] * active and 2.0 * active < ACTIVE_FOR <= 2.0 * (active + 1)
    assert intervals[active:active + 4] == [4.0, 8.0, 16.0, 30.0] and intervals[-1] == 30.0
    assert poll(pace, clock, "time_entry", 1) == 2.0


def test_a_webhook_hint_makes_an_idle_entity_due_at_once_at_its_base() -> None:
    clock = Clock()
    pace = PollPace.of({"invoice": (2.0, 60.0)}, clock)
    for _ in range(20):
        poll(pace, clock, "invoice", 0)
    assert not pace.due("invoice") and pace.paces["invoice"].interval == 60.0
    pace.hinted("invoice")
    assert pace.due("invoice") and pace.next_due() <= clock.now
    assert poll(pace, clock, "invoice", 0) == 2.0  # the hint counts as activity


def test_the_achieved_interval_is_the_time_between_two_poll_starts() -> None:
    clock = Clock()
    pace = PollPace.of({"a": (1.0, 8.0), "b": (3.0, 3.0)}, clock)
    assert pace.achieved() == {}
    poll(pace, clock, "a", 1)
    clock.now += 2.5  # the poller was busy: the entity was polled later than due
    poll(pace, clock, "a", 1)
    assert pace.achieved() == {"a": 2.5}
    pace.failed("b", 10.0)
    assert pace.paces["b"].due == clock.now + 10.0 and pace.next_due() == pace.paces["a"].due


def test_a_maximum_below_the_base_interval_is_the_base() -> None:
    pace = PollPace.of({"a": (5.0, 1.0)}, Clock())
    assert pace.paces["a"].ceiling == 5.0
