"""How a gate run ends (stackyard.steps.gate.rejection and outcome): only a failure of the
candidate is a rejection; an infrastructure failure is an ``error`` with its reason."""

from __future__ import annotations

import pytest

from stackyard.core.records import DeployFailure, FailureKind, GateOutcome
from stackyard.steps.gate import outcome, rejection

FAILED_TEST_RUN = {"passed": False, "output": "NAME: l3\nTEST SUITE:     l3-catalog-test\nLast Started: x\nPhase:          Failed\n"}


def failure(kind: FailureKind, **fields) -> DeployFailure:
    return DeployFailure(kind=kind, helm_error="Error: something", **fields)


@pytest.mark.parametrize("kind", [FailureKind.RENDER, FailureKind.NOT_READY])
def test_a_deploy_that_failed_for_the_candidate_is_a_rejection_naming_the_service(kind):
    reason, report = rejection(deploy_failure=failure(kind, service="catalog", objects=["Deployment/l3-catalog"]),
                               test_run=None, suite_failed=False)
    assert reason.startswith("deploy failed: ") and "in catalog (Deployment/l3-catalog): Error: something" in reason
    assert report.failure.kind is kind and report.failed_tests == []


@pytest.mark.parametrize("kind", [FailureKind.TRANSIENT, FailureKind.UNKNOWN, FailureKind.CONFLICT])
def test_a_deploy_that_failed_for_the_infrastructure_is_no_rejection(kind):
    assert rejection(deploy_failure=failure(kind), test_run=None, suite_failed=False) is None


def test_failed_tests_are_a_rejection_with_their_names_and_output():
    reason, report = rejection(deploy_failure=None, test_run=FAILED_TEST_RUN, suite_failed=False)
    assert reason == "system tests failed: l3-catalog-test"
    assert report.failed_tests == ["l3-catalog-test"] and "Phase:          Failed" in report.test_output


def test_tests_that_could_not_run_are_no_rejection():
    unreachable = {"passed": False, "output": 'Error: Kubernetes cluster unreachable: Get "https://k/version": dial tcp: connection refused'}
    assert rejection(deploy_failure=None, test_run=unreachable, suite_failed=False) is None


def test_a_test_pod_that_never_finished_is_a_failed_test():
    hung = {"passed": False, "output": "Error: timed out waiting for the condition"}
    reason, _ = rejection(deploy_failure=None, test_run=hung, suite_failed=False)
    assert reason.startswith("system tests failed: workloads did not become ready")


def test_the_suite_failing_after_passing_tests_is_a_rejection_and_nothing_failed_is_none():
    assert rejection(deploy_failure=None, test_run={"passed": True}, suite_failed=True)[0].startswith(
        "the system test suite failed")
    assert rejection(deploy_failure=None, test_run=None, suite_failed=False) is None


@pytest.mark.parametrize("facts, expected", [
    (dict(promoted=True, conflict=None, rejected=None, errors={"teardown": "x"}), (GateOutcome.PROMOTED, None)),
    (dict(promoted=False, conflict="L3 moved", rejected=None, errors={}), (GateOutcome.REQUEUED, "L3 moved")),
    (dict(promoted=False, conflict=None, rejected="system tests failed: t", errors={"system_tests": "failed"}),
     (GateOutcome.REJECTED, "system tests failed: t")),
    # The promote of the issue: the manifest store cannot be written. Tests passed; no rejection.
    (dict(promoted=False, conflict=None, rejected=None, errors={"promote": "[Errno 13] Permission denied"}),
     (GateOutcome.ERROR, "promote: [Errno 13] Permission denied")),
    # The first failed step in pipeline order is the reason, not a later consequence.
    (dict(promoted=False, conflict=None, rejected=None,
          errors={"teardown": "namespace busy", "deploy": "helm: etcd is on fire", "create_stack": "cluster down"}),
     (GateOutcome.ERROR, "create_stack: cluster down")),
    (dict(promoted=False, conflict=None, rejected=None, errors={}),
     (GateOutcome.ERROR, "the run failed before a verdict (see the failed task's log)")),
])
def test_outcome(facts, expected):
    assert outcome(**facts) == expected
