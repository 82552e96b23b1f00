"""Adaptive polling: an idle entity backs off to its maximum interval, a find or a webhook hint brings it
back to its base, and the interval achieved between polls is what the metric reports."""

from __future__ import annotations

from accord.actors.poll.pace import ACTIVE_FOR, ACTIVE_MAX, QUIET_GAPS, PollPace


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


def test_an_entity_that_changes_every_so_often_stays_at_its_base_between_changes() -> None:
    """A change every 12 s keeps the entity at its base interval through the quiet between changes (a
    backed-off poll would make the next change wait up to the backed-off interval); one that changed
    once (an initial load) backs off after ACTIVE_FOR; the wait never exceeds ACTIVE_MAX."""
    clock = Clock()
    pace = PollPace.of({"expense": (2.0, 60.0), "resource": (2.0, 60.0)}, clock)
    for _ in range(6):  # a find every 12 s: polls at 0, 2, ..., 10 find nothing, the one at 12 finds
        intervals = [poll(pace, clock, "expense", 0) for _ in range(5)] + [poll(pace, clock, "expense", 1)]
    assert intervals == [2.0] * 6
    quiet = [poll(pace, clock, "expense", 0) for _ in range(40)]
    active = quiet.index(4.0)  # three usual gaps at its base, then it backs off
    assert 2.0 * active < QUIET_GAPS * 12.0 <= 2.0 * (active + 1) and QUIET_GAPS * 12.0 > ACTIVE_FOR
    assert poll(pace, clock, "resource", 3) == 2.0
    quiet = [poll(pace, clock, "resource", 0) for _ in range(20)]
    assert 2.0 * quiet.index(4.0) < ACTIVE_FOR <= 2.0 * (quiet.index(4.0) + 1)
    pace.paces["resource"].gap = 1000.0
    assert pace.paces["resource"].active_for() == ACTIVE_MAX


def test_finds_are_kept_apart_when_the_entity_had_been_idle_and_a_hint_does_not_hide_the_wait() -> None:
    clock = Clock()
    pace = PollPace.of({"expense": (2.0, 60.0)}, clock)
    poll(pace, clock, "expense", 4)  # the first read of all: no wait to speak of
    poll(pace, clock, "expense", 1)
    for _ in range(30):
        poll(pace, clock, "expense", 0)  # backs off
    clock.now += 5.0
    pace.hinted("expense")  # a hint brings the poll forward; the change may have waited since the last one
    poll(pace, clock, "expense", 1)
    finds = pace.take_finds()
    assert finds[0] == ("expense", 2.0, False) and len(finds) == 2
    entity, waited, idle = finds[1]
    assert idle and waited == 5.0  # since the poll before, not since the hint
