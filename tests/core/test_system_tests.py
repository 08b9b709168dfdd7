"""The rules of parallel system tests, one table row per rule (stackyard.core.system_tests)."""

from __future__ import annotations

import pytest

from stackyard.core import system_tests as rules
from stackyard.core.system_tests import DeletePolicy, Phase, TestHook, TestResult
from stackyard.exceptions import InputError

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"


def raw(name, *, path="l3/charts/orders/templates/test.yaml", events=("test",), weight=None, policies=None,
        kind="Pod", manifest=POD):
    hook = {"name": name, "kind": kind, "path": path, "manifest": manifest, "events": list(events)}
    if weight is not None:
        hook["weight"] = weight
    if policies is not None:
        hook["delete_policies"] = policies
    return hook


def hook(name, service="orders", weight=0, policies=(DeletePolicy.BEFORE_HOOK_CREATION,), kind="Pod"):
    return TestHook(name, kind, weight, frozenset(policies), service, f"l3/charts/{service}/t.yaml", {})


def result(name, phase=Phase.SUCCEEDED):
    return TestResult(name, "orders", "Pod", 0, phase, 1.0)


@pytest.mark.parametrize("path, service", [
    ("l3/charts/orders/templates/tests/t.yaml", "orders"),
    ("l3/charts/orders/charts/redis/templates/t.yaml", "orders"),  # nested: its top-level service
    ("l3/templates/t.yaml", ""),  # the umbrella's own
    ("demo/templates/t.yaml", ""),  # a chart that is not an umbrella
])
def test_service_of_a_template_path(path, service):
    assert rules.service_of(path) == service


def test_only_hooks_with_the_test_event_are_tests():
    hooks = rules.test_hooks([raw("a"), raw("b", events=("pre-install",)), raw("c", events=("pre-install", "test"))])
    assert [h.name for h in hooks] == ["a", "c"]


def test_no_delete_policy_means_before_hook_creation_as_in_helm():
    (only,) = rules.test_hooks([raw("a")])
    assert only.delete_policies == {DeletePolicy.BEFORE_HOOK_CREATION} and only.weight == 0


def test_weight_and_policies_are_read_from_the_record():
    (only,) = rules.test_hooks([raw("a", weight=-3, policies=["hook-succeeded", "hook-failed"])])
    assert only.weight == -3 and only.delete_policies == {DeletePolicy.HOOK_SUCCEEDED, DeletePolicy.HOOK_FAILED}


@pytest.mark.parametrize("bad, message", [
    (raw("a", policies=["sometimes"]), "unknown delete policy"),
    (raw("a", manifest="a: [b"), "not valid YAML"),
    (raw("a", manifest="- just a list"), "not a Kubernetes object"),
    ({"kind": "Pod", "events": ["test"], "manifest": POD, "path": "p"}, "missing name"),
])
def test_a_bad_hook_is_refused_by_name(bad, message):
    with pytest.raises(InputError, match=message):
        rules.test_hooks([bad])


def test_weight_groups_run_lowest_first():
    groups = rules.plan([hook("c", weight=5), hook("a", weight=-1), hook("b", weight=5)])
    assert [[h.name for h in g] for g in groups] == [["a"], ["b", "c"]]


def test_within_a_group_the_changed_service_goes_first_then_helm_order_by_name():
    hooks = [hook("a-test", "alpha"), hook("z-test", "zulu"), hook("m-test", "mike"), hook("y-test", "zulu")]
    (group,) = rules.plan(hooks, "zulu")
    assert [h.name for h in group] == ["y-test", "z-test", "a-test", "m-test"]


def test_the_changed_service_never_jumps_a_weight_barrier():
    groups = rules.plan([hook("a", "alpha", weight=0), hook("z", "zulu", weight=1)], "zulu")
    assert [[h.name for h in g] for g in groups] == [["a"], ["z"]]


def test_no_changed_service_is_helm_order():
    (group,) = rules.plan([hook("b", "x"), hook("a", "")], None)
    assert [h.name for h in group] == ["a", "b"]


@pytest.mark.parametrize("policies, phase, deleted", [
    ((DeletePolicy.HOOK_SUCCEEDED,), Phase.SUCCEEDED, True),
    ((DeletePolicy.HOOK_SUCCEEDED,), Phase.FAILED, False),
    ((DeletePolicy.HOOK_FAILED,), Phase.FAILED, True),
    ((DeletePolicy.HOOK_FAILED,), Phase.SUCCEEDED, False),
    ((DeletePolicy.BEFORE_HOOK_CREATION,), Phase.SUCCEEDED, False),
    ((DeletePolicy.HOOK_SUCCEEDED, DeletePolicy.HOOK_FAILED), Phase.FAILED, True),
])
def test_deleted_after_its_outcome_only_when_its_policy_says(policies, phase, deleted):
    assert hook("a", policies=policies).deleted_after(phase) is deleted


@pytest.mark.parametrize("results, passed, failed, missing", [
    ([result("a"), result("b")], True, (), ()),
    ([result("a"), result("b", Phase.FAILED)], False, ("b",), ()),
    ([result("b", Phase.FAILED), result("a", Phase.FAILED)], False, ("a", "b"), ()),  # every failure, planned order
    ([result("a")], False, (), ("b",)),  # a test without a result is no pass
])
def test_the_verdict_is_helms_every_test_must_succeed(results, passed, failed, missing):
    outcome = rules.verdict([hook("a"), hook("b")], results)
    assert (outcome.passed, outcome.failed, outcome.missing) == (passed, failed, missing)


def test_no_tests_pass_as_with_helm_test():
    assert rules.verdict([], []).passed


def test_the_report_has_helm_tests_shape_so_failed_tests_are_found():
    from stackyard.steps.gate import failed_tests

    text = rules.report("l3", "ns", [result("a"), TestResult("b", "orders", "Pod", 0, Phase.FAILED, 2.0, "timed out", "boom")])
    assert failed_tests(text) == ["b"]
    assert "POD LOGS: b\nboom" in text and "Reason:         timed out" in text


@pytest.mark.parametrize("text, seconds", [("10m0s", 600), ("90s", 90), ("1h", 3600), ("1h2m3s", 3723),
                                           ("1.5s", 1.5), ("250ms", 0.25)])
def test_go_durations(text, seconds):
    assert rules.go_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "5m-1s"])
def test_a_bad_duration_is_refused(text):
    with pytest.raises(InputError, match="not a duration"):
        rules.go_duration_seconds(text)


@pytest.mark.parametrize("raw_value, expected", [(None, 16), ("", 16), ("4", 4), (" 64 ", 64)])
def test_parallelism(raw_value, expected):
    assert rules.parse_parallelism(raw_value, 16, source="X") == expected


@pytest.mark.parametrize("raw_value", ["0", "-2", "many", "1.5"])
def test_bad_parallelism_names_its_source(raw_value):
    with pytest.raises(InputError, match="STACKYARD_GATE_TEST_PARALLELISM"):
        rules.parse_parallelism(raw_value, 16, source="STACKYARD_GATE_TEST_PARALLELISM")


def test_the_record_keeps_logs_of_failed_tests_only():
    passed = TestResult("a", "orders", "Pod", 0, Phase.SUCCEEDED, 1.0, logs="all good")
    failed = TestResult("b", "orders", "Pod", 0, Phase.FAILED, 1.0, logs="boom")
    assert passed.to_dict()["logs"] == "" and failed.to_dict()["logs"] == "boom"
    text = rules.report("l3", "ns", [passed, failed])
    assert "all good" not in text and "POD LOGS: b\nboom" in text
