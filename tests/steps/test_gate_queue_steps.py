"""The live speculative gate queue over its real stores (local backend): what a run is given to
test, when it may decide, what happens to runs behind a failure, a superseded change and a dead
run — then a Hypothesis property over random queues, outcomes and finishing orders: no promoted
L3 version was untested or carries two changes, and every queued change leaves the queue."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stackyard.adapters.gate_queue_store import GateQueueStore
from stackyard.adapters.manifest_store import LocalManifestStore
from stackyard.core.gate_queue import Settlement, Turn, turn
from stackyard.core.manifest import Manifest, Provenance, ServicePin
from stackyard.exceptions import ConflictError, InputError
from stackyard.steps import gate_queue as q

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
L3 = {"orders": "1.0.0", "catalog": "1.0.0", "storefront": "1.0.0", "billing": "1.0.0"}


def stores(root):
    store = LocalManifestStore(root / "store")
    store.seed(Manifest.initial({name: ServicePin(version) for name, version in L3.items()}, NOW, Provenance()))
    return GateQueueStore(store.backend), store


def queue_change(queue, service, version, run_id):
    return q.join(queue, service=service, version=version, pin=ServicePin(version), run_id=run_id)


def start(queue, store, item, run_id, window=3):
    return q.start(queue, store, item, window=window, run_id=run_id, now=NOW, provenance=Provenance(run_id))


def pins(store):
    return {name: pin.chart_version for name, pin in store.latest().services.items()}


def decide_now(queue, store, seq):
    return turn(pins(store), queue.entries(include=(seq,)), seq)


def test_a_change_is_tested_on_l3_plus_the_changes_ahead_of_it(tmp_path):
    queue, store = stores(tmp_path)
    a = queue_change(queue, "orders", "1.1.0", "run-a")
    b = queue_change(queue, "catalog", "1.1.0", "run-b")
    first, second = start(queue, store, a, "run-a"), start(queue, store, b, "run-b")
    assert first.candidate.parent == 1 and first.candidate.version == 2
    assert second.candidate.parent == 2 and second.candidate.version == 3  # what L3 will be after orders
    assert second.candidate.services["orders"].chart_version == "1.1.0"
    assert str(second.candidate.change) == str(second.candidate.change) and second.position.ahead == ["orders 1.1.0"]
    # The one behind passed first: it waits; the head decides; then the one behind decides.
    queue.record_result(b.seq, second.attempt, passed=True, run_id="run-b")
    assert decide_now(queue, store, b.seq) is Turn.WAIT
    queue.record_result(a.seq, first.attempt, passed=True, run_id="run-a")
    assert decide_now(queue, store, a.seq) is Turn.DECIDE
    store.promote(first.candidate)
    queue.settle(a.seq, Settlement.PROMOTED, l3_version=2)
    assert decide_now(queue, store, b.seq) is Turn.DECIDE
    assert store.promote(second.candidate).version == 3  # exactly what was tested, one change on v2


def test_the_window_holds_the_rest_back(tmp_path):
    queue, store = stores(tmp_path)
    items = [queue_change(queue, s, "1.1.0", f"run-{s}") for s in ("orders", "catalog", "storefront")]
    assert isinstance(start(queue, store, items[0], "run-orders", window=2), q.Started)
    waiting = start(queue, store, items[2], "run-storefront", window=2)
    assert isinstance(waiting, q.Position) and (waiting.place, waiting.queued, waiting.window) == (3, 3, 2)
    assert "3 of 3 (window 2): waiting for the window" in str(waiting)


def test_behind_a_failure_a_change_is_tested_again_without_it(tmp_path):
    queue, store = stores(tmp_path)
    a = queue_change(queue, "orders", "6.6.6", "run-a")
    b = queue_change(queue, "catalog", "1.1.0", "run-b")
    first, second = start(queue, store, a, "run-a"), start(queue, store, b, "run-b")
    queue.record_result(a.seq, first.attempt, passed=False, run_id="run-a")
    queue.record_result(b.seq, second.attempt, passed=True, run_id="run-b")
    assert decide_now(queue, store, b.seq) is Turn.RETEST  # it was tested with orders 6.6.6
    assert decide_now(queue, store, a.seq) is Turn.DECIDE
    queue.settle(a.seq, Settlement.REJECTED)
    # The requeued run takes the change up again with its place; now it is tested on L3 alone.
    queue.hand_over(b.seq, second.attempt, run_id=q.requeue_run_id(b.seq, second.attempt, "t"))
    run_id = q.requeue_run_id(b.seq, second.attempt, "t")
    assert q.taken_up(queue, run_id=run_id, service="catalog", version="1.1.0") == b
    again = start(queue, store, b, run_id)
    assert again.attempt == 2 and again.candidate.parent == 1 and again.position.ahead == []


def test_tests_behind_a_failure_learn_at_once_that_their_attempt_no_longer_counts(tmp_path):
    """While its tests run, a change asks whether its attempt still counts: not once a change
    tested ahead of it has failed (its tests may stop), nor when one ahead left the queue; a
    failure behind it, or a promotion ahead of it, changes nothing."""
    queue, store = stores(tmp_path)
    a, b, c = (queue_change(queue, s, "1.1.0", f"run-{s}") for s in ("orders", "catalog", "storefront"))
    first, second, third = (start(queue, store, item, f"run-{item.service}") for item in (a, b, c))
    assert q.outdated(queue, store, c.seq) is None  # nothing known yet
    queue.record_result(c.seq, third.attempt, passed=False, run_id="run-storefront")
    assert q.outdated(queue, store, b.seq) is None  # a failure behind it is no concern of catalog's
    queue.record_result(a.seq, first.attempt, passed=True, run_id="run-orders")
    store.promote(first.candidate)
    queue.settle(a.seq, Settlement.PROMOTED, l3_version=2)
    assert q.outdated(queue, store, b.seq) is None and q.outdated(queue, store, c.seq) is None
    queue.record_result(b.seq, second.attempt, passed=False, run_id="run-catalog")  # its first failed test
    assert q.outdated(queue, store, c.seq) == "catalog 1.1.0 (#2) ahead of it failed"
    queue.settle(b.seq, Settlement.REJECTED)
    assert "catalog 1.1.0 (#2), tested ahead of it, left the queue: rejected" == q.outdated(queue, store, c.seq)
    queue.settle(c.seq, Settlement.ABANDONED)
    assert q.outdated(queue, store, c.seq) is None  # it left the queue: nothing more to stop for


def test_a_requeued_run_must_ask_for_its_change(tmp_path):
    queue, store = stores(tmp_path)
    b = queue_change(queue, "catalog", "1.1.0", "run-b")
    with pytest.raises(InputError, match=r"re-tests queued change #1 \(catalog 1.1.0\), but its conf asks for orders"):
        q.taken_up(queue, run_id=q.requeue_run_id(b.seq, 1, "t"), service="orders", version="1.1.0")


def test_a_newer_version_supersedes_the_queued_one(tmp_path):
    queue, store = stores(tmp_path)
    old = queue_change(queue, "orders", "1.1.0", "run-old")
    tested = start(queue, store, old, "run-old")
    queue_change(queue, "orders", "1.2.0", "run-new")
    queue.record_result(old.seq, tested.attempt, passed=True, run_id="run-old")
    assert decide_now(queue, store, old.seq) is Turn.SUPERSEDED
    assert queue.settled(old.seq).detail == "superseded by orders 1.2.0 (#2)"
    assert start(queue, store, old, "run-old").state.startswith("left the queue: superseded")


def test_a_run_behind_a_dead_one_does_not_wait_forever(tmp_path):
    queue, store = stores(tmp_path)
    a = queue_change(queue, "orders", "1.1.0", "run-a")
    b = queue_change(queue, "catalog", "1.1.0", "run-b")
    start(queue, store, a, "run-a")
    second = start(queue, store, b, "run-b")
    queue.record_result(b.seq, second.attempt, passed=True, run_id="run-b")
    seen = []
    decision = q.wait_turn(queue, store, b.seq, window=3, alive=lambda run: run != "run-a", deadline=float("inf"),
                           report=seen.append, sleep=lambda _: None)
    assert decision is Turn.RETEST  # orders left the queue without a verdict; catalog was tested on it
    assert queue.settled(a.seq).settlement is Settlement.ABANDONED
    assert seen and seen[0].ahead == ["orders 1.1.0"]


def test_a_head_that_stood_still_for_hours_is_taken_out_even_if_its_run_looks_alive(tmp_path):
    from datetime import timedelta

    queue, store = stores(tmp_path)
    queue_ = GateQueueStore(store.backend, clock=lambda: datetime.now(timezone.utc) - q.STALE_AFTER - timedelta(minutes=1))
    a = queue_change(queue_, "orders", "1.1.0", "run-a")  # a killed `airflow dags test`: "running" for ever
    start(queue_, store, a, "run-a")
    b = queue_change(queue, "catalog", "1.1.0", "run-b")
    second = start(queue, store, b, "run-b")
    queue.record_result(b.seq, second.attempt, passed=True, run_id="run-b")
    decision = q.wait_turn(queue, store, b.seq, window=3, alive=lambda run: True, deadline=float("inf"),
                           report=lambda _: None, sleep=lambda _: None)
    assert decision is Turn.RETEST and queue.settled(a.seq).settlement is Settlement.ABANDONED


def test_a_dead_run_that_promoted_counts_as_promoted(tmp_path):
    queue, store = stores(tmp_path)
    a = queue_change(queue, "orders", "1.1.0", "run-a")
    b = queue_change(queue, "catalog", "1.1.0", "run-b")
    first, second = start(queue, store, a, "run-a"), start(queue, store, b, "run-b")
    store.promote(first.candidate)  # ...and the run was killed before it settled the change
    queue.record_result(b.seq, second.attempt, passed=True, run_id="run-b")
    decision = q.wait_turn(queue, store, b.seq, window=3, alive=lambda run: run != "run-a", deadline=float("inf"),
                           report=lambda _: None, sleep=lambda _: None)
    assert decision is Turn.DECIDE and queue.settled(a.seq).settlement is Settlement.PROMOTED


def test_a_handed_over_change_is_waited_for_while_its_new_run_is_queued(tmp_path):
    queue, store = stores(tmp_path)
    a = queue_change(queue, "orders", "1.1.0", "run-a")
    first = start(queue, store, a, "run-a")
    queue.hand_over(a.seq, first.attempt, run_id="requeue__1__2__t")
    b = queue_change(queue, "catalog", "1.1.0", "run-b")
    second = start(queue, store, b, "run-b")
    queue.record_result(b.seq, second.attempt, passed=True, run_id="run-b")
    with pytest.raises(TimeoutError, match="still waits for orders 1.1.0"):
        q.wait_turn(queue, store, b.seq, window=3, alive=lambda run: run == "requeue__1__2__t", deadline=0,
                    report=lambda _: None, sleep=lambda _: None)
    assert queue.settled(a.seq) is None


def test_the_stacks_view_shows_the_queue_in_order_with_what_each_change_is_tested_behind(tmp_path):
    queue, store = stores(tmp_path)
    a = queue_change(queue, "orders", "1.1.0", "run-a")
    b = queue_change(queue, "catalog", "1.1.0", "run-b")
    queue_change(queue, "storefront", "1.1.0", "run-c")
    first = start(queue, store, a, "run-a", window=2)
    start(queue, store, b, "run-b", window=2)
    queue.record_result(a.seq, first.attempt, passed=True, run_id="run-a")
    view = q.queue_view(queue, store, window=2)
    assert view["window"] == 2
    assert [(c["place"], c["service"], c["state"], c["ahead"], c["in_window"]) for c in view["changes"]] == [
        (1, "orders", "passed, waiting for its turn", [], True),
        (2, "catalog", "testing", ["orders 1.1.0"], True),
        (3, "storefront", "waiting for the window", ["orders 1.1.0", "catalog 1.1.0"], False)]
    assert view["changes"][1]["run"] == {"dag_id": "l3_gate", "run_id": "run-b"}


def test_facts_are_written_once(tmp_path):
    queue, store = stores(tmp_path)
    a = queue_change(queue, "orders", "1.1.0", "run-a")
    first = start(queue, store, a, "run-a")
    assert start(queue, store, a, "run-a").attempt == first.attempt  # a retried task gets its attempt back
    queue.record_result(a.seq, first.attempt, passed=True, run_id="run-a")
    queue.record_result(a.seq, first.attempt, passed=True, run_id="run-a")
    with pytest.raises(ConflictError, match="already has a result"):
        queue.record_result(a.seq, first.attempt, passed=False, run_id="run-a")
    assert queue.settle(a.seq, Settlement.PROMOTED).settlement is Settlement.PROMOTED
    assert queue.settle(a.seq, Settlement.ABANDONED).settlement is Settlement.PROMOTED  # the first stands


SERVICES = sorted(L3)
change = st.tuples(st.sampled_from(SERVICES), st.sampled_from(["1.1.0", "1.2.0", "2.0.0"]))
action = st.one_of(st.tuples(st.just("enqueue"), change), st.tuples(st.just("step"), st.integers(0, 7)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(action, max_size=25), window=st.integers(1, 4), bad=st.sets(change, max_size=3),
       conflicts=st.sets(st.tuples(change, change), max_size=2), flaky=st.lists(st.booleans(), max_size=12))
def test_the_live_queue_never_promotes_an_untested_combination(tmp_path_factory, actions, window, bad, conflicts,
                                                              flaky):
    """Runs as the DAG runs them: each run waits for the window, tests one combination, records its
    result, then (at its turn) promotes or rejects, or hands its change to a new run."""
    queue, store = stores(tmp_path_factory.mktemp("queue"))
    flakes = iter(flaky)
    tested_passing: set[frozenset] = set()
    runs: list[dict] = []  # {"run_id", "item", "stage", "started"}
    counter = iter(range(10_000))

    def passes(services) -> bool:
        pins_ = set(services.items())
        if pins_ & bad or any(x in pins_ and y in pins_ for x, y in conflicts):
            return False
        return next(flakes, True)

    def step(run) -> None:
        """One run moves one stage on (what its next task would do)."""
        item = run["item"]
        if run["stage"] == "window":
            started = start(queue, store, item, run["run_id"], window=window)
            if isinstance(started, q.Started):
                run.update(stage="tested", started=started)
            elif started.place == 0:
                run["stage"] = "done"
        elif run["stage"] == "tested":
            candidate = run["started"].candidate
            services = {n: p.chart_version for n, p in candidate.services.items()}
            passed = passes(services)
            if passed:
                tested_passing.add(frozenset(services.items()))
            queue.record_result(item.seq, run["started"].attempt, passed=passed, run_id=run["run_id"])
            run.update(stage="turn", passed=passed)
        elif run["stage"] == "turn":
            decision = decide_now(queue, store, item.seq)
            if decision is Turn.WAIT:
                return
            run["stage"] = "done"
            if decision is Turn.SUPERSEDED:
                return
            if decision is Turn.RETEST:
                new_id = q.requeue_run_id(item.seq, run["started"].attempt, str(next(counter)))
                queue.hand_over(item.seq, run["started"].attempt, run_id=new_id)
                assert q.taken_up(queue, run_id=new_id, service=item.service, version=item.version) == item
                runs.append({"run_id": new_id, "item": item, "stage": "window"})
            elif run["passed"]:
                promoted = store.promote(run["started"].candidate)
                queue.settle(item.seq, Settlement.PROMOTED, l3_version=promoted.version)
            else:
                queue.settle(item.seq, Settlement.REJECTED)

    for kind, arg in actions:
        if kind == "enqueue":
            if pins(store).get(arg[0]) == arg[1]:
                continue  # validate refuses what L3 pins already
            run_id = f"run-{next(counter)}"
            runs.append({"run_id": run_id, "item": queue_change(queue, *arg, run_id), "stage": "window"})
        else:
            active = [run for run in runs if run["stage"] != "done"]
            if active:
                step(active[arg % len(active)])
    for _ in range(2_000):  # then every run goes on until the queue is empty
        active = [run for run in runs if run["stage"] != "done"]
        if not active:
            break
        for run in active:
            step(run)
    else:
        pytest.fail("the queue did not drain")

    assert not [entry for entry in queue.entries()]  # every change left the queue
    history = list(reversed(store.history()))
    untested_promotions = 0
    for parent, child in zip(history, history[1:]):
        services = {n: p.chart_version for n, p in child.services.items()}
        if frozenset(services.items()) not in tested_passing:
            untested_promotions += 1
        before = {n: p.chart_version for n, p in parent.services.items()}
        assert {s for s in set(before) | set(services) if before.get(s) != services.get(s)} == {child.change.service}
    assert untested_promotions == 0
