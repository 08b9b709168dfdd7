"""stackyard.steps.fleet: the Stacks view's reads (stores, Airflow's DAG state), on local stores."""

from __future__ import annotations

from datetime import datetime, timezone

import yaml

from stackyard.adapters.manifest_store import open_manifest_store
from stackyard.adapters.record_store import open_record_store
from stackyard.core.manifest import Manifest, Provenance, ServicePin
from stackyard.steps.fleet import Fleet

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)
REGISTRY = {"stacks": {name: {"owner": "team-qa", "type": "persistent", "profile": "qa1", "schedule": "0 6 * * *",
                              "source": "l3", "services": "all", "connection": "stackyard_kube"}
                       for name in ("qa1", "qa2")}}


def fleet(tmp_path, dag_states):
    store = open_manifest_store(f"file://{tmp_path / 'manifests'}")
    store.seed(Manifest.initial({"orders": ServicePin("1.0.0")}, NOW, Provenance(None, "t", None)))
    stacks = tmp_path / "stacks.yaml"
    stacks.write_text(yaml.safe_dump(REGISTRY))
    return Fleet(manifest_store=store, record_store=open_record_store(f"file://{tmp_path / 'records'}"),
                 cluster=None, stacks_file=stacks, clock=lambda: NOW, dag_states=dag_states)


def test_a_paused_rollout_dag_has_no_next_rollout(tmp_path):
    asked = []

    def dag_states(dag_ids):
        asked.append(dag_ids)
        return {"rollout_qa1": True, "rollout_qa2": False, "unrelated": True}

    view = fleet(tmp_path, dag_states).persistent()
    stacks = {s["name"]: s for s in view["stacks"]}
    assert asked == [["rollout_qa1", "rollout_qa2"]]  # one question for every stack
    assert stacks["qa1"]["paused"] is True and "next_rollout" not in stacks["qa1"]
    assert stacks["qa2"]["paused"] is False and stacks["qa2"]["next_rollout"] == "2026-03-05T06:00:00Z"
    assert view["sources"]["airflow"]["ok"] is True


def test_airflow_unreachable_is_reported_and_claims_no_pause_state(tmp_path):
    def dag_states(dag_ids):
        raise ConnectionError("database is locked")

    view = fleet(tmp_path, dag_states).persistent()
    assert view["sources"]["airflow"] == {"ok": False, "error": "ConnectionError: database is locked",
                                          "detail": "rollout DAGs paused or not"}
    assert all("paused" not in s and s["next_rollout"] for s in view["stacks"])


def test_the_history_shows_the_gate_queue_when_the_window_is_known(tmp_path):
    from stackyard.adapters.gate_queue_store import GateQueueStore

    view = fleet(tmp_path, None)
    assert view.history()["queue"] is None  # no window given: the queue is not shown
    view.gate_window = 2
    GateQueueStore(view.manifest_store.backend).enqueue("orders", "1.1.0", run_id="run-1",
                                                        pin=ServicePin("1.1.0").to_dict(), requested_by="ci")
    queue = view.history()["queue"]
    assert queue["window"] == 2
    assert [(c["service"], c["version"], c["state"], c["requested_by"]) for c in queue["changes"]] == [
        ("orders", "1.1.0", "starting", "ci")]
