"""The fleet's cluster read on the kube sandbox: one list per kind, health per service, drift."""

from __future__ import annotations

import itertools
import json
import time
from contextlib import contextmanager

import pytest

from stackyard.core.ephemeral import LABEL_MANAGED_BY, LABEL_STACK_TYPE
from stackyard.steps.fleet import LISTED_KINDS, Fleet, kube_cluster_reader

pytestmark = pytest.mark.slow
COUNTER = itertools.count()
NS = "qa-h"
OUTCOME = "sandbox.stackyard.io/outcome"  # the sandbox's rule: a pod template with it crash-loops


def make_namespace(local_stack, name):
    from kubernetes.client import V1Namespace, V1ObjectMeta

    local_stack.core_v1().create_namespace(V1Namespace(metadata=V1ObjectMeta(
        name=name, labels={LABEL_MANAGED_BY: "stackyard", LABEL_STACK_TYPE: "persistent"})))


@pytest.fixture
def qa(local_stack):
    """A namespace with orders and catalog 1.0.0 as their own releases; catalog then broken by hand."""
    global NS
    NS = f"qa-h{next(COUNTER)}"
    local_stack.seed()
    make_namespace(local_stack, NS)
    values = local_stack.tmp / "secrets.yaml"
    values.write_text("secrets: {API_TOKEN: original-token-value}\n")
    for service in ("orders", "catalog"):
        local_stack.helm.upgrade_install(service, local_stack.registry.fetch(service, "1.0.0"), namespace=NS,
                                         values_files=[values] if service == "orders" else (), timeout="2m0s")
    from kubernetes import client, config

    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(local_stack.kubeconfig)))
    apps.patch_namespaced_deployment("catalog", NS, {"spec": {"template": {
        "metadata": {"annotations": {OUTCOME: "fail"}},  # not a field the chart sets: not drift
        "spec": {"containers": [{"name": "catalog", "image": "registry.example.com/hotfix:1"}]}}}})
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
        column = next(i for i, c in enumerate(matrix["columns"]) if c["name"] == NS)
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


def test_the_stack_page_names_drifted_fields_health_revisions_and_the_tree(qa):
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(qa.kubeconfig)))
    configmap = core.read_namespaced_config_map("orders", NS)
    key = sorted(configmap.data)[0]
    core.patch_namespaced_config_map("orders", NS, {"data": {key: "changed-by-hand"}})
    secret_value = "hand-edited-s3cret-value"
    core.patch_namespaced_secret("orders", NS, {"stringData": {"API_TOKEN": secret_value}})
    fleet, _ = fleet_for(qa)
    from stackyard.steps.fleet import kube_namespace_reader

    fleet.namespace_reader = kube_namespace_reader(qa.core_v1)
    deadline = time.monotonic() + 20
    while True:
        page = fleet.stack(NS)
        services = {s["name"]: s for s in page["services"]}
        if services["catalog"]["health"] == "degraded":
            break
        assert time.monotonic() < deadline, services
        time.sleep(0.2)
    assert services["catalog"]["drift"] == "drifted"
    catalog_drift = services["catalog"]["drift_detail"]
    assert {"object": "Deployment/catalog", "fields": ["spec.template.spec.containers[catalog].image"]} in catalog_drift
    orders = {d["object"]: d for d in services["orders"]["drift_detail"]}
    assert orders["ConfigMap/orders"]["fields"] == [f"data.{key}"]
    assert orders["Secret/orders"]["fields"] == ["data (contents differ; not shown)"]
    assert secret_value not in json.dumps(page) and "original-token-value" not in json.dumps(page)
    assert services["orders"]["health"] == "healthy" and services["orders"]["version"] == "1.0.0"
    assert page["health"] == "degraded" and page["drift"] == "drifted"
    assert {r["release"] for r in page["revisions"]} == {"orders", "catalog"}
    tree = page["resources"]["catalog"]["workloads"][0]
    assert tree["kind"] == "Deployment" and tree["pods"], tree
    assert page["resources"]["orders"]["services"][0]["name"] == "orders"
    # One list of the namespace's Secrets (release records too) and one per kind the releases render.
    assert page["sources"]["release_records"]["api_calls"] == {"Secret": 1, "ConfigMap": 1, "Deployment": 1, "Service": 1}
