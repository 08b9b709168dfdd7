"""The speculative gate queue model: named rules, then a Hypothesis property over random queues,
outcomes and finishing orders — no promoted L3 version was untested or carries two changes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stackyard.core.gate_queue import GateQueue
from stackyard.exceptions import InputError

L3 = {"orders": "1.0.0", "catalog": "1.0.0", "storefront": "1.0.0", "billing": "1.0.0"}


def run_all(queue: GateQueue, passes) -> None:
    """Start and finish everything until the queue is empty (each run judged by ``passes``)."""
    while queue.queue:
        queue.to_cancel()
        started = queue.to_start()
        assert started, "a queue with changes always has something to test"
        for candidate in started:
            queue.finish(candidate, passes(candidate.services))


def test_changes_behind_are_tested_on_l3_plus_the_changes_ahead():
    q = GateQueue(L3, window=3)
    a, b, c = q.enqueue("orders", "1.1.0"), q.enqueue("catalog", "1.1.0"), q.enqueue("storefront", "1.1.0")
    started = q.to_start()
    assert [x.item for x in started] == [a, b, c]
    assert started[2].ahead == (a, b)
    assert started[2].services == {**L3, "orders": "1.1.0", "catalog": "1.1.0", "storefront": "1.1.0"}


def test_the_window_bounds_what_runs_at_once():
    q = GateQueue(L3, window=2)
    for service in ("orders", "catalog", "storefront"):
        q.enqueue(service, "1.1.0")
    assert len(q.to_start()) == 2 and q.to_start() == []


def test_a_change_behind_passing_first_waits_for_the_one_ahead():
    q = GateQueue(L3, window=2)
    q.enqueue("orders", "1.1.0"), q.enqueue("catalog", "1.1.0")
    first, second = q.to_start()
    assert q.finish(second, True) == []  # not at the head: nothing promoted
    promoted = q.finish(first, True)
    assert [v.change.service for v in promoted] == ["orders", "catalog"]  # both, in order, as tested
    assert [v.version for v in q.history] == [1, 2, 3]


def test_a_failure_re_tests_the_changes_behind_without_it():
    q = GateQueue(L3, window=3)
    q.enqueue("orders", "1.1.0"), q.enqueue("catalog", "6.6.6"), q.enqueue("storefront", "1.1.0")
    a, b, c = q.to_start()
    q.finish(b, False)
    (retest,) = q.to_start()
    assert retest.item == c.item and [i.service for i in retest.ahead] == ["orders"]  # catalog left out
    q.finish(c, True)  # the old combination passing changes nothing: it included catalog
    q.finish(a, True)
    assert [v.change.service for v in q.finish(retest, True)] == ["storefront"]
    assert [i.service for i in q.rejected] == ["catalog"]
    assert "catalog" not in {v.change.service for v in q.history[1:]}


def test_a_change_failing_behind_a_failing_one_is_tested_again_once_that_one_is_out():
    q = GateQueue(L3, window=2)
    q.enqueue("orders", "6.6.6"), q.enqueue("catalog", "1.1.0")
    a, b = q.to_start()
    q.finish(b, False)  # failed because orders 6.6.6 was ahead
    q.finish(a, False)  # orders rejected at the head
    (again,) = q.to_start()
    assert again.item.service == "catalog" and again.ahead == ()
    assert [v.change.service for v in q.finish(again, True)] == ["catalog"]


def test_a_newer_version_supersedes_the_queued_older_one():
    q = GateQueue(L3, window=1)
    old = q.enqueue("orders", "1.1.0")
    new = q.enqueue("orders", "1.2.0")
    assert q.queue == [new] and q.superseded == [old]
    run_all(q, lambda services: True)
    assert q.latest.services["orders"] == "1.2.0" and len(q.history) == 2


def test_what_l3_pins_already_is_no_change():
    with pytest.raises(InputError, match="pins already"):
        GateQueue(L3).enqueue("orders", "1.0.0")


def test_the_window_must_hold_one_candidate():
    with pytest.raises(InputError, match="window"):
        GateQueue(L3, window=0)


def test_superseded_and_re_lined_runs_are_cancelled_and_free_the_window():
    q = GateQueue(L3, window=2)
    q.enqueue("orders", "1.1.0"), q.enqueue("catalog", "1.1.0")
    first, second = q.to_start()
    q.enqueue("orders", "1.2.0")  # supersedes the head: both runs tested it (or on it)
    assert set(q.to_cancel()) == {first.key, second.key}
    assert [c.item.service for c in q.to_start()] == ["catalog", "orders"]


def test_positions_show_place_window_and_state():
    q = GateQueue(L3, window=1)
    q.enqueue("orders", "1.1.0"), q.enqueue("catalog", "1.1.0")
    q.to_start()
    assert [(p.place, p.in_window, p.state) for p in q.positions()] == [(1, True, "testing"), (2, False, "waiting")]


SERVICES = sorted(L3)
change = st.tuples(st.sampled_from(SERVICES), st.sampled_from(["1.1.0", "1.2.0", "2.0.0"]))
op = st.one_of(st.tuples(st.just("enqueue"), change), st.tuples(st.just("finish"), st.integers(0, 7)),
               st.tuples(st.just("start"), st.none()))


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(op, max_size=40), window=st.integers(1, 5),
       bad=st.sets(change, max_size=3), conflicts=st.sets(st.tuples(change, change), max_size=2),
       flaky=st.lists(st.booleans(), max_size=20))
def test_no_promoted_l3_version_was_untested_or_carries_two_changes(ops, window, bad, conflicts, flaky):
    """Random queues, outcomes (broken versions, broken pairs, flaky failures) and finishing orders."""
    q = GateQueue(L3, window=window)
    tested_passing: set[frozenset] = set()
    running, enqueued = [], []
    flakes = iter(flaky)

    def passes(services: dict[str, str]) -> bool:
        pins = set(services.items())
        if pins & bad or any(x in pins and y in pins for x, y in conflicts):
            return False
        return next(flakes, True)

    def finish(candidate) -> None:
        assert candidate.key in q.running
        passed = passes(candidate.services)
        if passed:
            tested_passing.add(candidate.combination)
        q.finish(candidate, passed)

    for kind, arg in ops:
        if kind == "enqueue":
            try:
                enqueued.append(q.enqueue(*arg))
            except InputError:
                assert q.latest.services[arg[0]] == arg[1]
        elif kind == "start":
            cancelled = set(q.to_cancel())
            running = [c for c in running if c.key not in cancelled] + q.to_start()
        elif running:
            finish(running.pop(arg % len(running)))
        assert len(q.running) <= window
    for candidate in running:  # the runs still in flight end too, in some order
        if candidate.key in q.running:
            finish(candidate)
    while q.queue:  # then the queue drains
        q.to_cancel()
        started = q.to_start()
        assert started
        for candidate in started:
            finish(candidate)

    untested_promotions = 0
    for parent, child in zip(q.history, q.history[1:]):
        if frozenset(child.services.items()) not in tested_passing:
            untested_promotions += 1
        changed = {s for s in set(parent.services) | set(child.services) if parent.services.get(s) != child.services.get(s)}
        assert changed == {child.change.service} and child.version == parent.version + 1
        assert not set(child.services.items()) & bad
    assert untested_promotions == 0
    promoted = [v.change for v in q.history[1:]]
    assert sorted(i.seq for i in promoted + q.rejected + q.superseded) == sorted(i.seq for i in enqueued)
    if not conflicts and not flaky:  # only broken versions fail: every other change gets in
        assert {(i.service, i.version) for i in q.rejected} <= bad
