"""The fleet's cluster read on the kube sandbox: one list per kind, health per service, drift."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

from stackyard.core.ephemeral import LABEL_MANAGED_BY, LABEL_STACK_TYPE
from stackyard.steps.fleet import LISTED_KINDS, Fleet, kube_cluster_reader

pytestmark = pytest.mark.slow
OUTCOME = "sandbox.stackyard.io/outcome"  # the sandbox's rule: a pod template with it crash-loops


def make_namespace(local_stack, name):
    from kubernetes.client import V1Namespace, V1ObjectMeta

    local_stack.core_v1().create_namespace(V1Namespace(metadata=V1ObjectMeta(
        name=name, labels={LABEL_MANAGED_BY: "stackyard", LABEL_STACK_TYPE: "persistent"})))


@pytest.fixture
def qa(local_stack):
    """Namespace qa-h with orders and catalog 1.0.0 as their own releases; catalog then broken by hand."""
    local_stack.seed()
    make_namespace(local_stack, "qa-h")
    for service in ("orders", "catalog"):
        local_stack.helm.upgrade_install(service, local_stack.registry.fetch(service, "1.0.0"), namespace="qa-h",
                                         timeout="2m0s")
    from kubernetes import client, config

    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(local_stack.kubeconfig)))
    apps.patch_namespaced_deployment("catalog", "qa-h", {"spec": {"template": {"metadata": {"annotations": {OUTCOME: "fail"}}}}})
    return local_stack


def fleet_for(stack):
    @contextmanager
    def helm():
        yield stack.helm

    reader = kube_cluster_reader(stack.core_v1, helm)
    return Fleet(manifest_store=stack.store, record_store=None, cluster=reader, stacks_file=None), reader


def test_one_list_per_kind_and_health_per_service(qa):
    fleet, reader = fleet_for(qa)
    deadline = time.monotonic() + 20
    while True:
        state = reader()
        matrix = fleet.matrix()
        column = next(i for i, c in enumerate(matrix["columns"]) if c["name"] == "qa-h")
        cells = {row["service"]: row["cells"][column] for row in matrix["rows"]}
        if cells["catalog"].get("health") == "degraded" and cells["orders"].get("health") == "healthy":
            break
        assert time.monotonic() < deadline, cells
        time.sleep(0.2)
    assert state.api_calls == {"Namespace": 1, "helm list": 1, **{kind: 1 for kind in LISTED_KINDS}, "Event": 1}
    assert state.errors == {}
    assert "CrashLoopBackOff" in cells["catalog"]["health_reason"]
    assert matrix["columns"][column]["health"] == "degraded"
    assert matrix["sources"]["cluster"]["api_calls"]["Pod"] == 1
