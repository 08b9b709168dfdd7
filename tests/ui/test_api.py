"""The Stacks view's JSON API and page, through Airflow's auth, on the kube sandbox.

Data: an L3 history (seed, one promotion, one rejection) in a private manifest store, a
persistent stack ``qa1`` running orders 1.0.0 as its own release, an ephemeral stack running the
L3 v2 umbrella, and rollout/event/reaper records; then the same API with the cluster unreachable
and with an empty manifest store. Every response is scanned for the example secrets' plaintext,
which the fixture plants in places the view must not copy (gate test output, extra record fields).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import yaml
from fastapi.testclient import TestClient

from stackyard.core import ephemeral as rules
from stackyard.core.manifest import Provenance, propose
from stackyard.core.records import GateReport, RejectionReport, RolloutRecord, StackEvent
from stackyard.core.ephemeral import Purpose, ephemeral_stack_metadata, LABEL_MANAGED_BY, LABEL_STACK_TYPE
from dev.local import free_port
from stackyard.steps.publishing import build_manifest_package, load_umbrella_template
from stackyard.settings import Settings
from stackyard.adapters.record_store import open_record_store
from stackyard.ui.app import create_app
from stackyard.ui.sources import airflow_fleet

from tests.ui.conftest import assert_no_secret

pytestmark = pytest.mark.slow

ENDPOINTS = ["/api/overview", "/api/fleet", "/api/history", "/api/stacks/ephemeral", "/api/stacks/persistent",
             "/api/stacks/qa1", "/"]


def now() -> datetime:
    return datetime.now(timezone.utc)


def namespace(local_stack, name: str, labels: dict, annotations: dict | None = None) -> None:
    from kubernetes.client import V1Namespace, V1ObjectMeta

    local_stack.core_v1().create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name, labels=labels, annotations=annotations)))


@pytest.fixture
def fleet_data(local_stack, monkeypatch, example_secrets):
    """The scenario in the module docstring; returns the record store."""
    monkeypatch.setenv("STACKYARD_RECORD_STORE", f"file://{local_stack.tmp / 'stackyard' / 'records'}")
    monkeypatch.setenv("STACKYARD_STACKS", str(local_stack.tmp / "stacks.yaml"))
    (local_stack.tmp / "stacks.yaml").write_text(yaml.safe_dump({"stacks": {"qa1": {
        "owner": "team-qa", "type": "persistent", "profile": "qa1", "namespace": "qa1", "schedule": "0 6 * * 1-5",
        "source": "l3", "services": "all", "connection": "stackyard_kube"}}}))
    secret = example_secrets[0]
    store = local_stack.store
    v1 = local_stack.seed()
    local_stack.publish("orders", "1.1.0")
    ref = local_stack.registry.resolve("orders", "1.1.0")
    v2 = store.promote(propose(v1, "orders", "1.1.0", ref.digest, now(), Provenance("manual__gate-v2", "bob", None)))
    store.record_report(2, GateReport(outcome="promoted", change=v2.change.to_dict(), before={"version": 1},
                                      after={"version": 2}, candidate_id=v2.candidate_id, duration_seconds=42.5,
                                      run_id="manual__gate-v2", reason=f"token={secret}"))
    local_stack.publish("catalog", "1.1.0")
    cref = local_stack.registry.resolve("catalog", "1.1.0")
    rejected = propose(v2, "catalog", "1.1.0", cref.digest, now(), Provenance("manual__gate-v3", "carol", None))
    store.record_rejection(rejected, "system tests failed: l3-catalog-test",
                           RejectionReport(failed_tests=["l3-catalog-test"], test_output=f"password: {secret}"))

    # The Airflow DB of the test session may hold a rollout_qa1 from other tests: say its state.
    monkeypatch.setattr("stackyard.ui.sources.paused_dags", lambda dag_ids: {"rollout_qa1": False})
    managed = {LABEL_MANAGED_BY: "stackyard"}
    namespace(local_stack, "qa1", {**managed, LABEL_STACK_TYPE: "persistent"})
    local_stack.helm.upgrade_install("orders", local_stack.registry.fetch("orders", "1.0.0"), namespace="qa1", timeout="2m0s")
    meta = ephemeral_stack_metadata(owner="alice@example.com", purpose=Purpose.PERSONAL, manifest_version=2,
                                    created=now(), created_by="stack_create/manual__alice")
    namespace(local_stack, "alice-demo", meta.labels, {**meta.annotations, "notes": secret})
    version, data = build_manifest_package(v2, registry=local_stack.registry,
                                           template=load_umbrella_template(Settings.from_env().umbrella_template_dir))
    package = local_stack.tmp / f"l3-{version}.tgz"
    package.write_bytes(data)
    local_stack.helm.upgrade_install("l3", package, namespace="alice-demo", timeout="2m0s")

    records = open_record_store(Settings.from_env().records_url)
    records.write(RolloutRecord(
        stack="qa1", type="persistent", dag_id="rollout_qa1", namespace="qa1", profile="qa1", service="catalog",
        from_version="1.0.0", to_version="1.1.0", action="upgrade", manifest_version=2, run_id="scheduled__r1",
        status="rolled_back", started=now(), finished=now(), reason="deploy failed"))
    records.write(StackEvent(event="created", stack="alice-demo", owner="alice", run_id="manual__alice",
                             dag_id="stack_create", at=now(),
                             overrides={"orders": {"from": "1.0.0", "to": "1.1.0"}}))
    records.write(rules.reaper_report([rules.Verdict("old-demo", rules.Action.DELETE, "idle 8d0h")],
                                      {"old-demo": (rules.Outcome.DELETED, "deleted")}, now=now(), dry_run=False,
                                      max_deletions=20, dag_id="ephemeral_reaper", run_id="scheduled__reap"))
    # Records carrying what no model names (here a secret) are left out, never shown.
    records.append("stacks/qa1/rollouts", {"service": "catalog", "to_version": "9.9.9", "status": "succeeded",
                                           "values": {"password": secret}})
    records.append("stacks/alice-demo/events", {"event": "created", "who": "alice", "run_id": "manual__alice",
                                                "overrides": {"orders": "1.1.0", "db_password": secret}})
    yield records
    for name in ("qa1", "alice-demo"):
        local_stack.core_v1().delete_namespace(name)


def client(airflow_api) -> TestClient:
    return TestClient(create_app(airflow_fleet))


def get(c: TestClient, path: str, token: str):
    return c.get(path, headers={"Authorization": f"Bearer {token}"})


def test_every_endpoint_shows_what_is_deployed_where_and_no_secret(airflow_api, fleet_data, example_secrets):
    c, token = client(airflow_api), airflow_api.token()
    bodies = {}
    for path in ENDPOINTS:
        response = get(c, path, token)
        assert response.status_code == 200, (path, response.text[:500])
        assert_no_secret(response.text, example_secrets)
        bodies[path] = response.json() if path != "/" else response.text
    fleet = bodies["/api/fleet"]
    assert all(s["ok"] for s in fleet["sources"].values()), fleet["sources"]
    assert fleet["l3_version"] == 2
    assert [c["name"] for c in fleet["columns"]] == ["L3", "qa1", "alice-demo"]
    rows = {row["service"]: row["cells"] for row in fleet["rows"]}
    assert rows["orders"][0] == {"version": "1.1.0", "state": "same", "run": {"dag_id": "l3_gate", "run_id": "manual__gate-v2"}}
    assert rows["orders"][1]["version"] == "1.0.0" and rows["orders"][1]["state"] == "behind" and rows["orders"][1]["behind"] == 1
    assert rows["catalog"][1]["state"] == "failed"  # last rollout rolled back
    assert rows["catalog"][1]["last_rollout"]["run"] == {"dag_id": "rollout_qa1", "run_id": "scheduled__r1"}
    assert rows["orders"][2] == {"version": "1.1.0", "state": "same", "health": "healthy", "run": {"dag_id": "stack_create", "run_id": "manual__alice"}}
    assert rows["storefront"][1]["state"] == "not-deployed"

    history = bodies["/api/history"]["entries"]
    assert [(e["kind"], e.get("version")) for e in history] == [("rejected", 3), ("promoted", 2), ("seeded", 1)]
    assert history[0]["failed_tests"] == ["l3-catalog-test"] and history[0]["requested_by"] == "carol"
    assert history[1]["duration_seconds"] == 42.5 and history[1]["requested_by"] == "bob"

    ephemeral = bodies["/api/stacks/ephemeral"]
    [demo] = ephemeral["stacks"]
    assert demo["owner"] == "alice@example.com" and demo["manifest_version"] == 2
    assert demo["overrides"] == {"orders": "1.1.0"}
    assert 6 * 86400 < demo["seconds_left"] <= 7 * 86400
    assert ephemeral["last_reaper_run"]["deleted"] == [{"name": "old-demo", "reason": "idle 8d0h", "detail": "deleted"}]
    assert ephemeral["last_reaper_run"]["run"] == {"dag_id": "ephemeral_reaper", "run_id": "scheduled__reap"}

    [qa1] = bodies["/api/stacks/persistent"]["stacks"]
    assert qa1["owner"] == "team-qa" and qa1["cadence"] == "0 6 * * 1-5" and qa1["next_rollout"]
    assert qa1["last_rollout"]["outcome"] == "rolled_back" and qa1["last_rollout"]["failed"] is True

    status = bodies["/api/stacks/qa1"]
    assert {s["service"]: s.get("version") for s in status["services"]} == {"catalog": None, "orders": "1.0.0"}
    assert "Stacks" in bodies["/"] and "api/overview" in bodies["/"]


def test_unauthenticated_and_bad_tokens_are_refused_by_the_mounted_plugin(airflow_api):
    c = TestClient(airflow_api.app)
    for path in ENDPOINTS:
        assert c.get(f"/stacks{path}").status_code == 401, path
        assert c.get(f"/stacks{path}", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403, path
    assert c.get("/stacks/api/history", headers={"Authorization": f"Bearer {airflow_api.token()}"}).status_code == 200


def test_unknown_and_invalid_stack_names(airflow_api, fleet_data):
    c, token = client(airflow_api), airflow_api.token()
    assert get(c, "/api/stacks/nope", token).status_code == 404
    response = get(c, "/api/stacks/Bad_Name", token)
    assert response.status_code == 400 and "DNS-1123" in response.json()["detail"]
    assert get(c, "/api/history?limit=0", token).status_code == 422


def test_unreachable_cluster_is_reported_and_no_stack_cell_claims_a_version(airflow_api, fleet_data, local_stack,
                                                                            monkeypatch, example_secrets):
    kubeconfig = yaml.safe_load(local_stack.kubeconfig.read_text())
    for cluster in kubeconfig["clusters"]:
        cluster["cluster"]["server"] = f"http://127.0.0.1:{free_port()}"
    dead = local_stack.tmp / "dead-kubeconfig"
    dead.write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_KUBE", json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(dead)}}))
    c, token = client(airflow_api), airflow_api.token()
    for path in ENDPOINTS:
        response = get(c, path, token)
        assert response.status_code == 200, path
        assert_no_secret(response.text, example_secrets)
    overview = get(c, "/api/overview", token).json()
    assert overview["sources"]["cluster"]["ok"] is False and overview["sources"]["cluster"]["error"]
    assert overview["sources"]["manifest_store"]["ok"] is True
    assert overview["matrix"]["l3_version"] == 2  # the store still answers
    stack_cells = [cell for row in overview["matrix"]["rows"] for cell in row["cells"][1:]]
    assert stack_cells and {cell["state"] for cell in stack_cells} == {"unknown"}
    assert all("version" not in cell for cell in stack_cells)
    assert overview["ephemeral"]["stacks"] == []  # not shown as if there were none: sources says why


def test_empty_manifest_store_and_no_records(airflow_api, local_stack, monkeypatch):
    monkeypatch.setenv("STACKYARD_RECORD_STORE", f"file://{local_stack.tmp / 'no-records'}")
    monkeypatch.setenv("STACKYARD_STACKS", str(local_stack.tmp / "missing.yaml"))
    c, token = client(airflow_api), airflow_api.token()
    for path in ENDPOINTS[:-2]:
        assert get(c, path, token).status_code == 200, path
    fleet = get(c, "/api/fleet", token).json()
    assert fleet["l3_version"] is None and fleet["rows"] == [] and [c["name"] for c in fleet["columns"]] == ["L3"]
    assert all(s["ok"] for s in fleet["sources"].values()), fleet["sources"]
    assert get(c, "/api/history", token).json()["entries"] == []
    assert get(c, "/api/stacks/qa1", token).status_code == 404


def test_cli_prints_the_same_documents(fleet_data, capsys):
    from stackyard.cli import main

    assert main(["stacks", "status", "qa1", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {s["service"]: s.get("version") for s in status["services"]} == {"catalog": None, "orders": "1.0.0"}
    assert main(["stacks", "list"]) == 0
    out = capsys.readouterr().out
    assert "L3: v2" in out and "alice-demo" in out and "rolled_back" in out
    assert main(["stacks", "status", "nope"]) == 1
