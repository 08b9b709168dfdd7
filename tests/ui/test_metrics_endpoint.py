"""``/metrics`` beside the Stacks view: the fleet's gauges, behind Airflow's auth or the scrape token."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from stackyard.adapters.manifest_store import open_manifest_store
from stackyard.adapters.record_store import open_record_store
from stackyard.core.fleet import ClusterState, NamespaceRow, ReleaseRow
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose
from stackyard.steps.fleet import Fleet, NamespaceRead
from stackyard.ui.app import create_app

NOW = datetime.now(timezone.utc)
TOKEN = "scrape-token-0123456789"


def crashing_pod():
    return {"kind": "Pod", "metadata": {"name": "orders-1", "namespace": "qa1", "labels": {"app.kubernetes.io/name": "orders"}},
            "spec": {}, "status": {"phase": "Running", "containerStatuses": [
                {"name": "orders", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}


@pytest.fixture
def client(tmp_path):
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    store = open_manifest_store(f"file://{tmp_path / 'manifests'}")
    v1 = store.seed(Manifest.initial({"orders": ServicePin("1.0.0")}, NOW, Provenance(None, "t", None)))
    store.promote(propose(v1, "orders", "1.1.0", None, NOW, Provenance("g2", "bob", None)))
    managed = {"app.kubernetes.io/managed-by": "stackyard"}
    cluster = ClusterState(
        (NamespaceRow("qa1", {**managed, "stackyard.io/stack-type": "persistent"}),
         NamespaceRow("alice-dev", {**managed, "stackyard.io/stack-type": "ephemeral"},
                      {"stackyard.io/ttl": "1d", "stackyard.io/last-activity": NOW.isoformat()})),
        (ReleaseRow("orders", "qa1", "deployed", "orders-1.0.0"),), NOW,
        objects={"qa1": [crashing_pod()], "alice-dev": []}, api_calls={"Pod": 1, "Deployment": 1})
    reads = []

    def namespace_reader(namespace):
        reads.append(namespace)
        return NamespaceRead([], {}, {"Secret": 1})

    fleet = Fleet(manifest_store=store, record_store=open_record_store(f"file://{tmp_path / 'records'}"),
                  cluster=lambda: cluster, stacks_file=None, namespace_reader=namespace_reader)
    app = create_app(lambda: fleet, gate_queue=lambda: 2, metrics_token=lambda: TOKEN)
    viewer = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    test_client = TestClient(app)
    test_client.viewer, test_client.reads = viewer, reads
    return test_client


def samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_gauges_per_stack_and_service(client):
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    got = samples(answer.text)
    assert got[("stackyard_service_lag_versions", (("service", "orders"), ("stack", "qa1")))] == 1
    assert got[("stackyard_service_health", (("service", "orders"), ("stack", "qa1")))] == 4  # degraded
    assert got[("stackyard_stack_health", (("stack", "qa1"),))] == 4
    assert got[("stackyard_stack_services", (("health", "degraded"), ("stack", "qa1")))] == 1
    assert got[("stackyard_ephemeral_stacks_expiring", ())] == 1
    assert got[("stackyard_gate_queue_length", ())] == 2
    assert got[("stackyard_gate_last_outcome", (("outcome", "promoted"),))] == 1
    assert got[("stackyard_l3_version", ())] == 2
    assert got[("stackyard_cluster_api_calls", (("kind", "Pod"),))] == 1
    assert got[("stackyard_source_up", (("source", "cluster"),))] == 1
    client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert client.reads == ["qa1"]  # drift is read once per stack with releases, then cached


def test_metrics_take_airflows_auth_or_the_token_and_nothing_else(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code in (401, 403)
    assert client.get("/metrics", headers={"Authorization": f"Bearer {client.viewer}"}).status_code == 200
    # The token opens /metrics only: the JSON API still wants an Airflow user.
    assert client.get("/api/fleet", headers={"Authorization": f"Bearer {TOKEN}"}).status_code in (401, 403)
