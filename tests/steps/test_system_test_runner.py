"""The parallel test loop over a scripted cluster: bound, barriers, policies, timeouts, every
test to its end (stackyard.steps.system_tests)."""

from __future__ import annotations

import pytest

from stackyard.core.system_tests import (
    RUNNING, DeletePolicy, HookRejectedError, Observed, Phase, TestHook,
)
from stackyard.steps.system_tests import Cancelled, run_tests

BHC = DeletePolicy.BEFORE_HOOK_CREATION


def hook(name, *, weight=0, policies=(BHC,), kind="Pod"):
    return TestHook(name, kind, weight, frozenset(policies), "orders", "l3/charts/orders/t.yaml", {})


class Cluster:
    """Each test runs ``durations[name]`` poll turns after creation, then ends with ``outcomes[name]``."""

    def __init__(self, durations=None, outcomes=None, existing=(), stuck=(), rejected=()):
        self.durations, self.outcomes = durations or {}, outcomes or {}
        self.turn, self.created, self.deleted, self.events = 0, {}, [], []
        self.existing, self.stuck, self.rejected = set(existing), set(stuck), set(rejected)
        self.max_in_flight = 0

    def create(self, hook):
        if hook.name in self.rejected:
            raise HookRejectedError("422 Unprocessable Entity: spec.containers: Required value")
        self.created[hook.name] = self.turn
        self.events.append(("create", hook.name, self.turn))

    def delete(self, hook):
        self.deleted.append(hook.name)
        if hook.name not in self.stuck:
            self.existing.discard(hook.name)
        self.created.pop(hook.name, None)

    def observe(self, hooks):
        self.turn += 1
        running = [n for n, t in self.created.items() if self.turn - t < self.durations.get(n, 1)]
        self.max_in_flight = max(self.max_in_flight, len(running) + 1)
        seen = {}
        for h in hooks:
            if h.name in self.created:
                done = self.turn - self.created[h.name] >= self.durations.get(h.name, 1)
                seen[h.key] = Observed(self.outcomes.get(h.name, Phase.SUCCEEDED), "exit 1") if done else Observed(RUNNING)
            elif h.name in self.existing:
                seen[h.key] = Observed(RUNNING)
        return seen

    def logs(self, hook):
        return f"log of {hook.name} password=hunter22\n"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def go(groups, cluster, parallelism=8, timeout=100.0, **kw):
    clock = Clock()
    return run_tests(groups, cluster, parallelism=parallelism, timeout_seconds=timeout, poll_seconds=1.0,
                     clock=clock, sleep=clock.sleep, redact=lambda s: s.replace("hunter22", "***"), **kw)


def test_no_more_than_parallelism_tests_run_at_once():
    cluster = Cluster(durations={f"t{i}": 3 for i in range(10)})
    results = go([[hook(f"t{i}", policies=()) for i in range(10)]], cluster, parallelism=4)
    assert len(results) == 10 and all(r.phase is Phase.SUCCEEDED for r in results)
    starts = sorted(t for _, _, t in cluster.events)
    assert starts == [0] * 4 + [3] * 4 + [6] * 2  # three waves of at most four


def test_a_weight_group_starts_only_when_the_previous_one_finished():
    cluster = Cluster(durations={"slow": 5, "fast": 1, "next": 1})
    go([[hook("slow", policies=()), hook("fast", policies=())], [hook("next", weight=1, policies=())]], cluster)
    created = {name: turn for _, name, turn in cluster.events}
    assert created["next"] >= 5


def test_every_test_runs_to_its_end_after_a_failure():
    cluster = Cluster(outcomes={"a": Phase.FAILED, "c": Phase.FAILED})
    results = go([[hook("a", policies=())], [hook("b", weight=1, policies=()), hook("c", weight=1, policies=())]], cluster)
    assert {r.name: r.phase for r in results} == {"a": Phase.FAILED, "b": Phase.SUCCEEDED, "c": Phase.FAILED}
    assert {r.name: r.reason for r in results}["a"] == "exit 1"


def test_a_stopped_run_ends_at_the_next_poll_with_what_finished_and_starts_nothing_more():
    cluster = Cluster(durations={"quick": 1, "slow": 5, "later": 1})
    asked = []

    def stop():
        asked.append(cluster.turn)
        return "a change ahead failed" if cluster.turn >= 2 else None

    with pytest.raises(Cancelled) as stopped:
        go([[hook("quick", policies=()), hook("slow", policies=())], [hook("later", weight=1, policies=())]],
           cluster, stop=stop)
    assert stopped.value.reason == "a change ahead failed" and "a change ahead failed" in str(stopped.value)
    assert [r.name for r in stopped.value.results] == ["quick"]  # "slow" was still running
    assert "later" not in cluster.created and asked == [0, 1, 2]  # asked once per poll; the next group never started


def test_the_order_given_is_the_order_started():
    cluster = Cluster()
    go([[hook("changed", policies=()), hook("a", policies=()), hook("b", policies=())]], cluster, parallelism=1)
    assert [name for _, name, _ in cluster.events] == ["changed", "a", "b"]


def test_before_hook_creation_waits_until_the_leftover_is_gone():
    cluster = Cluster(existing={"t"})
    results = go([[hook("t")]], cluster)
    assert cluster.deleted[0] == "t" and results[0].phase is Phase.SUCCEEDED


def test_a_leftover_that_is_never_deleted_fails_that_test_after_the_timeout():
    cluster = Cluster(existing={"t"}, stuck={"t"})
    (result,) = go([[hook("t")]], cluster, timeout=5)
    assert result.phase is Phase.FAILED and "not deleted" in result.reason and "t" not in cluster.created


@pytest.mark.parametrize("policies, outcome, deleted", [
    ((DeletePolicy.HOOK_SUCCEEDED,), Phase.SUCCEEDED, True),
    ((DeletePolicy.HOOK_SUCCEEDED,), Phase.FAILED, False),
    ((DeletePolicy.HOOK_FAILED,), Phase.FAILED, True),
    ((), Phase.FAILED, False),
])
def test_delete_after_per_policy(policies, outcome, deleted):
    cluster = Cluster(outcomes={"t": outcome})
    go([[hook("t", policies=policies)]], cluster)
    assert ("t" in cluster.deleted) is deleted


def test_a_test_that_never_finishes_times_out_as_a_failure_with_its_hook_failed_policy():
    cluster = Cluster(durations={"t": 1000})
    (result,) = go([[hook("t", policies=(DeletePolicy.HOOK_FAILED,))]], cluster, timeout=10)
    assert result.phase is Phase.FAILED and "timed out after 10s" in result.reason and cluster.deleted == ["t"]


def test_a_refused_object_is_a_failed_test_and_the_others_still_run():
    cluster = Cluster(rejected={"bad"})
    results = go([[hook("bad", policies=()), hook("good", policies=())]], cluster)
    assert {r.name: r.phase for r in results} == {"bad": Phase.FAILED, "good": Phase.SUCCEEDED}
    assert "422" in results[0].reason


def test_kinds_that_helm_does_not_wait_on_are_done_once_created():
    cluster = Cluster()
    (result,) = go([[hook("cm", kind="ConfigMap", policies=())]], cluster)
    assert result.phase is Phase.SUCCEEDED and result.logs == "" and cluster.turn == 0


def test_logs_are_redacted_and_kept():
    (result,) = go([[hook("t", policies=())]], Cluster())
    assert result.logs == "log of t password=***"


def test_a_test_whose_pod_vanishes_is_a_failure():
    class Vanishing(Cluster):
        def observe(self, hooks):
            self.turn += 1
            return {}

    (result,) = go([[hook("t", policies=())]], Vanishing())
    assert result.phase is Phase.FAILED and "disappeared" in result.reason


def test_parallelism_must_be_positive():
    with pytest.raises(ValueError):
        go([[hook("t")]], Cluster(), parallelism=0)
