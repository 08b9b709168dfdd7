"""Deploy failures classified from helm's own words. Every text below is what helm 4.1.4 printed
against the kube sandbox (charts with a template error, an unknown field, a never-ready
Deployment via the sandbox's ``sandbox.stackyard.io/outcome: fail``, a 500/503 via ``sb.faults``),
except where a case says it is the API server's text the sandbox does not produce."""

from __future__ import annotations

import pytest

from stackyard.core.deploy_errors import classify, describe, helm_error
from stackyard.core.records import FailureKind

SERVICES = {"orders", "catalog", "storefront"}

NIL_POINTER = """Release "l3" does not exist. Installing it now.
Error: l3/charts/orders/templates/cm.yaml:6:15
  executing "l3/charts/orders/templates/cm.yaml" at <.Values.db.host>:
    nil pointer evaluating interface {}.host
"""
PARSE_ERROR = """Release "l3" does not exist. Installing it now.
Error: parse error at (l3/charts/catalog/templates/cm.yaml:7): unclosed action started at l3/charts/catalog/templates/cm.yaml:6
"""
FAIL_CALL = """Release "l3" does not exist. Installing it now.
Error: execution error at (l3/charts/orders/templates/cm.yaml:1:3): orders: database.url is required
"""
YAML_ERROR = """Release "l3" does not exist. Installing it now.
Error: YAML parse error on l3/charts/storefront/templates/cm.yaml: error converting YAML to JSON: yaml: line 4: did not find expected key
"""
UNKNOWN_FIELD = """Release "l3" does not exist. Installing it now.
Error: release l3 failed, and has been uninstalled due to rollback-on-failure being set: strict decoding error: unknown field "spec.replicaz"
"""
UNKNOWN_FIELD_UPGRADE = """level=WARN msg="upgrade failed" name=l3 error="strict decoding error: unknown field \\"spec.replicaz\\""
Error: UPGRADE FAILED: release l3 failed, and has been rolled back due to rollback-on-failure being set: strict decoding error: unknown field "spec.replicaz"
"""
# The API server's answer to a wrongly typed field (the sandbox accepts it, so not produced here).
INVALID_VALUE = """Error: UPGRADE FAILED: Deployment.apps "l3-orders" is invalid: spec.minReadySeconds: Invalid value: "lots": spec.minReadySeconds in body must be of type integer: "string"
"""
NOT_READY = """Release "l3" does not exist. Installing it now.
Error: release l3 failed, and has been uninstalled due to rollback-on-failure being set: resource Deployment/l3-3f2a9c/l3-catalog not ready. status: Failed, message: Progress deadline exceeded
"""
NOT_READY_UPGRADE = """level=WARN msg="upgrade failed" name=l3 error="resource Deployment/u1/l3-catalog not ready. status: Failed, message: Progress deadline exceeded"
Error: UPGRADE FAILED: release l3 failed, and has been rolled back due to rollback-on-failure being set: resource Deployment/u1/l3-catalog not ready. status: Failed, message: Progress deadline exceeded
"""
API_500 = """Release "l3" does not exist. Installing it now.
Error: release l3 failed, and has been uninstalled due to rollback-on-failure being set: etcd is on fire
"""
API_500_ROLLBACK = """level=WARN msg="upgrade failed" name=l3 error="kube-sandbox injected fault on patch deployments"
level=WARN msg="Rollback \\"l3\\" failed: kube-sandbox injected fault on patch deployments"
Error: UPGRADE FAILED: an error occurred while rolling back the release. original upgrade error: kube-sandbox injected fault on patch deployments: kube-sandbox injected fault on patch deployments
"""
API_503_GET = """Release "l3" does not exist. Installing it now.
Error: unable to continue with install: could not get information about the resource Deployment "l3-orders" in namespace "c9": kube-sandbox injected fault on get deployments
"""
# Issue 12's CRD left by another release (the API server's and helm's words).
CONFLICT = """Error: Unable to continue with install: CustomResourceDefinition "challenges.acme.cert-manager.io" in namespace "" exists and cannot be imported into the current release: invalid ownership metadata; annotation validation error: key "meta.helm.sh/release-name" must equal "l3-0b6502da": current value is "l3-5241766b"
"""


@pytest.mark.parametrize("text, kind, service, objects", [
    pytest.param(NIL_POINTER, FailureKind.RENDER, "orders", [], id="template-nil-pointer"),
    pytest.param(PARSE_ERROR, FailureKind.RENDER, "catalog", [], id="template-parse-error"),
    pytest.param(FAIL_CALL, FailureKind.RENDER, "orders", [], id="template-fail-call"),
    pytest.param(YAML_ERROR, FailureKind.RENDER, "storefront", [], id="rendered-yaml-invalid"),
    pytest.param(UNKNOWN_FIELD, FailureKind.RENDER, None, [], id="strict-field-validation"),
    pytest.param(UNKNOWN_FIELD_UPGRADE, FailureKind.RENDER, None, [], id="strict-field-validation-on-upgrade"),
    pytest.param(INVALID_VALUE, FailureKind.RENDER, "orders", ["Deployment/l3-orders"], id="api-server-invalid"),
    pytest.param(NOT_READY, FailureKind.NOT_READY, "catalog", ["Deployment/l3-catalog"], id="never-ready"),
    pytest.param(NOT_READY_UPGRADE, FailureKind.NOT_READY, "catalog", ["Deployment/l3-catalog"], id="never-ready-upgrade"),
    pytest.param(API_500, FailureKind.UNKNOWN, None, [], id="500-with-a-bare-message"),
    pytest.param(API_500_ROLLBACK, FailureKind.UNKNOWN, None, [], id="500-during-rollback"),
    pytest.param(API_503_GET, FailureKind.TRANSIENT, "orders", ["Deployment/l3-orders"], id="503-reading-an-object"),
    pytest.param(CONFLICT, FailureKind.CONFLICT, None, ["CustomResourceDefinition/challenges.acme.cert-manager.io"],
                 id="object-owned-by-another-release"),
    pytest.param("Error: Kubernetes cluster unreachable: Get \"https://10.0.0.1/version\": dial tcp 10.0.0.1:443: "
                 "connect: connection refused\n", FailureKind.TRANSIENT, None, [], id="cluster-unreachable"),
])
def test_helm_errors_are_classified_by_what_failed(text, kind, service, objects):
    failure = classify(text, release="l3", services=SERVICES)
    assert (failure.kind, failure.service, failure.objects) == (kind, service, objects)
    assert failure.helm_error.startswith("Error:")


@pytest.mark.parametrize("kind, rejects", [(FailureKind.RENDER, True), (FailureKind.NOT_READY, True),
                                           (FailureKind.CONFLICT, False), (FailureKind.TRANSIENT, False),
                                           (FailureKind.UNKNOWN, False)])
def test_only_a_failure_of_the_candidate_is_a_rejection(kind, rejects):
    assert kind.rejects is rejects


def test_the_failing_service_may_not_be_the_one_gated():
    # Gating orders; catalog (already in L3) is what never became ready.
    failure = classify(NOT_READY, release="l3", services=SERVICES)
    assert failure.service == "catalog"
    assert describe(failure) == ("workloads did not become ready in catalog (Deployment/l3-catalog): Error: release l3 "
                                 "failed, and has been uninstalled due to rollback-on-failure being set: resource "
                                 "Deployment/l3-3f2a9c/l3-catalog not ready. status: Failed, message: Progress deadline exceeded")


def test_the_longest_service_name_wins_and_unknown_names_are_not_guessed():
    text = "Error: resource Deployment/ns/l3-orders-api not ready. status: Failed, message: x\n"
    assert classify(text, release="l3", services={"orders", "orders-api"}).service == "orders-api"
    assert classify(text, release="l3", services={"catalog"}).service is None
    assert classify(text, release="stack", services={"orders"}).service is None  # another release's naming


def test_helm_error_quotes_helms_own_lines_and_is_bounded():
    assert helm_error(UNKNOWN_FIELD_UPGRADE).startswith("Error: UPGRADE FAILED:")  # its log lines dropped
    assert helm_error(NIL_POINTER).splitlines() == [
        "Error: l3/charts/orders/templates/cm.yaml:6:15",
        '  executing "l3/charts/orders/templates/cm.yaml" at <.Values.db.host>:',
        "    nil pointer evaluating interface {}.host"]
    long = "Error: " + "x" * 5000 + "\n" + "\n".join(f"line {i}" for i in range(50))
    quoted = helm_error(long)
    assert len(quoted) <= 1500 and quoted.endswith("…")
    assert len(helm_error("Error: a\n" + "\n".join(f"line {i}" for i in range(50))).splitlines()) == 6
    assert helm_error("") == "" and classify("", release="l3").kind is FailureKind.UNKNOWN
