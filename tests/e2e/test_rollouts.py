"""Rollouts to persistent and production stacks on the kube sandbox, through dag.test().

Each test writes its own stack registry (STACKYARD_STACKS) with stacks in fresh namespaces,
parses rollout_stacks.py from it, and checks the cluster (helm releases), the rollout records
and the task states.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from stackyard.demo import chart_variant
from stackyard.domain.manifest import Manifest, Provenance, ServicePin, propose
from stackyard.domain.rollout import format_time, rollouts_stream
from stackyard.publishing import publish_chart
from stackyard.stores.records import open_record_store

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY, ROOT
from tests.e2e.conftest import run_dag

pytestmark = pytest.mark.slow

FACTORY = ROOT / "dags" / "rollout_stacks.py"


class Rollouts:
    def __init__(self, local_stack, tmp_path: Path, monkeypatch) -> None:
        self.ls, self.tmp, self.monkeypatch = local_stack, tmp_path, monkeypatch
        monkeypatch.setenv("STACKYARD_RECORD_STORE", f"file://{tmp_path / 'records'}")
        self.records = open_record_store(f"file://{tmp_path / 'records'}")

    def name(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:6]}"

    def dagbag(self, **stacks):
        from airflow.dag_processing.dagbag import DagBag

        path = self.tmp / "stacks.yaml"
        path.write_text(yaml.safe_dump({"stacks": stacks}))
        self.monkeypatch.setenv("STACKYARD_STACKS", str(path))
        bag = DagBag(dag_folder=str(FACTORY))
        assert bag.import_errors == {}
        return bag

    def bump(self, service: str, version: str, *, failing_test: bool = False, source: Path | None = None) -> Manifest:
        """Publish ``service`` ``version`` and make it the next L3 (what a passing gate run does)."""
        if source is None:
            ref = self.ls.publish(service, version, failing_test=failing_test)
        else:
            variant = chart_variant(source, self.tmp / "variants" / f"{service}-{version}", version=version, failing_test=failing_test)
            ref = publish_chart(variant, registry=self.ls.registry, helm=self.ls.helm)
        latest = self.ls.store.latest()
        candidate = propose(latest, service, version, ref.digest, datetime.now(timezone.utc), Provenance(None, "tests", None))
        return self.ls.store.promote(candidate)

    def releases(self, namespace: str) -> dict[str, str]:
        return {r.name: r.chart_version for r in self.ls.helm.list(namespace=namespace)}

    def history(self, release: str, namespace: str) -> list[dict]:
        return self.ls.helm.history(release, namespace=namespace)

    def rollouts(self, stack: str) -> list[dict]:
        """Oldest first."""
        return [r.data for r in reversed(self.records.list(rollouts_stream(stack)))]


@pytest.fixture
def rollouts(local_stack, tmp_path, monkeypatch) -> Rollouts:
    return Rollouts(local_stack, tmp_path, monkeypatch)


def qa(namespace: str, **fields) -> dict:
    return {"owner": "team-qa", "type": "persistent", "profile": "qa1", "namespace": namespace, **fields}


def apps_v1(local_stack):
    from kubernetes import client, config

    return client.AppsV1Api(config.new_client_from_config(config_file=str(local_stack.kubeconfig)))


def mapped_states(run) -> dict[str, str]:
    """State of each mapped ``upgrade`` instance, by the service it is named after."""
    return {ti.rendered_map_index: ti.state for ti in run.get_task_instances() if ti.task_id == "upgrade"}


def run(bag, dag_id: str, conf: dict | None = None):
    dag_run = bag.get_dag(dag_id).test(run_conf=conf or {})
    tasks = {ti.task_id: ti.state for ti in dag_run.get_task_instances() if ti.map_index < 0}
    return dag_run.state, tasks, mapped_states(dag_run)


# --- persistent stacks ---------------------------------------------------------------------------------


def test_qa_stack_catches_up_from_l3_v1_to_v3_one_service_at_a_time(local_stack, rollouts):
    local_stack.seed()
    stack = rollouts.name("qa")
    bag = rollouts.dagbag(**{stack: qa(stack)})
    dag_id = f"rollout_{stack}"

    state, tasks, upgrades = run(bag, dag_id)
    assert state == "success", (tasks, upgrades)
    assert upgrades == {"catalog": "success", "orders": "success", "storefront": "success"}
    assert rollouts.releases(stack) == {"catalog": "1.0.0", "orders": "1.0.0", "storefront": "1.0.0"}

    rollouts.bump("orders", "1.1.0")
    v3 = rollouts.bump("catalog", "1.1.0")
    state, tasks, upgrades = run(bag, dag_id)

    assert state == "success", (tasks, upgrades)
    assert list(upgrades) == ["catalog", "orders"]  # alphabetical, storefront unchanged
    assert rollouts.releases(stack) == {"catalog": "1.1.0", "orders": "1.1.0", "storefront": "1.0.0"}
    records = rollouts.rollouts(stack)
    assert [(r["service"], r["from_version"], r["to_version"], r["status"]) for r in records[3:]] == [
        ("catalog", "1.0.0", "1.1.0", "succeeded"), ("orders", "1.0.0", "1.1.0", "succeeded")]
    catalog, orders = records[3:]
    assert catalog["finished"] <= orders["started"]  # one at a time
    assert catalog["manifest_version"] == v3.version and catalog["values_digest"].startswith("sha256:")
    assert catalog["run_id"] == orders["run_id"] and catalog["profile"] == "qa1"
    # The values really came from the qa1 profile: orders' qa1 profile runs 2 replicas.
    assert apps_v1(local_stack).read_namespaced_deployment("orders", stack).spec.replicas == 2

    # Nothing left to do: the run succeeds as up to date and records nothing.
    state, tasks, upgrades = run(bag, dag_id)
    assert state == "success" and upgrades == {} or all(s == "skipped" for s in upgrades.values())
    assert len(rollouts.rollouts(stack)) == 5


def test_a_failing_upgrade_stops_the_run_and_rolls_back_only_that_service(local_stack, rollouts, capfd):
    local_stack.seed()
    stack = rollouts.name("qa")
    bag = rollouts.dagbag(**{stack: qa(stack, services=["catalog", "orders", "storefront"])})
    dag_id = f"rollout_{stack}"
    assert run(bag, dag_id)[0] == "success"
    revisions_before = {s: len(rollouts.history(s, stack)) for s in ("catalog", "orders", "storefront")}

    rollouts.bump("catalog", "1.1.0")
    rollouts.bump("orders", "1.1.0", failing_test=True)
    rollouts.bump("storefront", "1.1.0")
    state, tasks, upgrades = run(bag, dag_id)

    assert state == "failed"
    assert upgrades == {"catalog": "success", "orders": "failed", "storefront": "skipped"}
    assert tasks["summary"] == "failed"
    assert rollouts.releases(stack) == {"catalog": "1.1.0", "orders": "1.0.0", "storefront": "1.0.0"}
    orders_history = rollouts.history("orders", stack)
    assert orders_history[-1]["status"] == "deployed" and orders_history[-1]["chart"] == "orders-1.0.0"
    assert len(orders_history) == revisions_before["orders"] + 2  # the upgrade, then the rollback
    assert len(rollouts.history("storefront", stack)) == revisions_before["storefront"]  # never touched
    last = rollouts.rollouts(stack)[-1]
    assert (last["service"], last["status"]) == ("orders", "rolled_back")
    assert "chart tests failed; rolled back to revision 1 (1.0.0)" in last["reason"]
    out = capfd.readouterr().out
    assert f"rollout of {stack} stopped at orders (1.0.0 -> 1.1.0): rolled_back" in out
    assert "not attempted: storefront" in out


def test_plan_only_changes_nothing(local_stack, rollouts, capfd):
    local_stack.seed()
    stack = rollouts.name("qa")
    bag = rollouts.dagbag(**{stack: qa(stack)})
    state, _, _ = run(bag, f"rollout_{stack}", {"plan_only": True})
    assert state == "success"
    assert rollouts.releases(stack) == {} and rollouts.rollouts(stack) == []
    assert "3 service(s) to change, one at a time: catalog (new) -> 1.0.0 (install)" in capfd.readouterr().out
