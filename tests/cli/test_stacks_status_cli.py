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


def canary_record(status: str, history: list[dict], weight: int) -> dict:
    return {"stack": "shop", "type": "production", "dag_id": "rollout_shop", "namespace": "shop", "profile": "production",
            "service": "orders", "from_version": "1.0.0", "to_version": "1.1.0", "action": "upgrade",
            "manifest_version": 3, "run_id": "manual__1", "status": status, "started": "2026-12-01T10:00:00Z",
            "finished": "2026-12-01T10:05:00Z", "reason": history[-1]["reason"],
            "canary": {"release": "shop-orders-canary", "weight": weight, "check": "errors", "provider": "gateway-api",
                       "state": "aborted" if status == "canary_aborted" else "running", "history": history}}


def test_stacks_status_shows_the_canary_weight_history(local_stack, capsys):
    from stackyard.adapters.record_store import open_record_store
    from stackyard.core.records import RolloutRecord

    records = open_record_store(local_stack.settings.records_url)
    check = {"name": "errors", "passed": False, "value": 0.4, "threshold": 0.05, "message": "0.4 is above max 0.05"}
    history = [{"time": "2026-12-01T10:00:00Z", "kind": "weight", "weight": 10, "run_id": "manual__1#1", "reason": "step 1 of 2: weight 10"}]
    records.write(RolloutRecord.from_json(canary_record("canary_running", history, 10)))
    history += [{"time": "2026-12-01T10:01:00Z", "kind": "check", "weight": 10, "run_id": "manual__1#1", "checks": [check],
                 "reason": "weight 10 observed for 60 s"},
                {"time": "2026-12-01T10:01:01Z", "kind": "abort", "weight": 0, "run_id": "manual__1#1",
                 "reason": "1 failed check(s) of 1 allowed: errors (value 0.4, threshold 0.05)"},
                {"time": "2026-12-01T10:01:02Z", "kind": "finished", "weight": 0, "run_id": "manual__1#1", "reason": "aborted"}]
    records.write(RolloutRecord.from_json(canary_record("canary_aborted", history, 0)))

    main(["stacks", "status", "shop", "--json"])
    page = json.loads(capsys.readouterr().out)
    newest = page["rollouts"][0]["canary"]
    assert newest["provider"] == "gateway-api" and newest["weight"] == 0
    assert [(h["kind"], h["weight"]) for h in newest["history"]] == [("weight", 10), ("check", 10), ("abort", 0), ("finished", 0)]
    assert newest["history"][1]["checks"][0] == check

    main(["stacks", "status", "shop"])
    out = capsys.readouterr().out
    assert "canary: orders 1.1.0 via gateway-api: canary_aborted, weight now 0 %" in out
    assert "2026-12-01T10:00:00Z weight 10 % — step 1 of 2: weight 10" in out
    assert "checks at 10 %: errors FAILED 0.4 (threshold 0.05)" in out
    assert "abort — 1 failed check(s) of 1 allowed: errors (value 0.4, threshold 0.05)" in out
    assert out.count("canary: orders") == 1  # the newest rollout of each service, not every WAL line
