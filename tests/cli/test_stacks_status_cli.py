"""``stackyard stacks status``: per service version, health and drift, on the kube sandbox."""

from __future__ import annotations

import json

import pytest

from stackyard.cli import main
from stackyard.core.ephemeral import LABEL_MANAGED_BY, LABEL_STACK_TYPE

pytestmark = pytest.mark.slow


def test_stacks_status_json_and_text_carry_health_and_drift(local_stack, capsys):
    from kubernetes import client, config
    from kubernetes.client import V1Namespace, V1ObjectMeta

    local_stack.seed()
    core = local_stack.core_v1()
    core.create_namespace(V1Namespace(metadata=V1ObjectMeta(
        name="qa-cli", labels={LABEL_MANAGED_BY: "stackyard", LABEL_STACK_TYPE: "persistent"})))
    local_stack.helm.upgrade_install("orders", local_stack.registry.fetch("orders", "1.0.0"), namespace="qa-cli", timeout="2m0s")
    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(local_stack.kubeconfig)))
    apps.patch_namespaced_deployment("orders", "qa-cli", {"spec": {"replicas": 3}})

    assert main(["stacks", "status", "qa-cli", "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    entry = next(s for s in page["services"] if s["name"] == "orders")
    assert entry["version"] == "1.0.0" and entry["health"] in {"healthy", "progressing"}
    assert entry["drift"] == "drifted"
    assert {"object": "Deployment/orders", "fields": ["spec.replicas"]} in entry["drift_detail"]
    assert page["sources"]["cluster"]["api_calls"]["Pod"] == 1

    assert main(["stacks", "status", "qa-cli"]) == 0
    out = capsys.readouterr().out
    assert "HEALTH" in out and "DRIFT" in out and "drift: orders: Deployment/orders: spec.replicas" in out
    assert "helm: orders r1 orders-1.0.0 deployed" in out
