"""The gate queue and the one-at-a-time rules hold under a real scheduler with several executor slots.

The gate tests queued changes at once (its speculative queue) and decides them in queue order,
each on exactly the combination it was tested with; the rollouts' "one service at a time"
(``max_active_tis_per_dagrun=1``, plus one run per stack) are DAG-level limits that Airflow's
scheduler enforces whatever the executor and however many workers it has (Celery workers in
compose, pods under the KubernetesExecutor). ``dag.test()`` runs one run at a time, so this runs
``airflow standalone`` with LocalExecutor parallelism 4 — four task slots, as four single-slot
workers would give — triggers several runs at once through the REST API, and checks the
recorded start and end times and the queue's log.
"""

from __future__ import annotations

import time
import urllib.error
import uuid
from datetime import datetime

import pytest
import yaml

from tests.e2e.airflow_server import ServedStack, served_stack

pytestmark = pytest.mark.slow

SLOTS = 4
STACK = f"limits-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory, sandbox, helm_bin, image_mirror):
    root = tmp_path_factory.mktemp("limits")
    registry = root / "stacks.yaml"
    registry.write_text(yaml.safe_dump({"stacks": {STACK: {
        "owner": "team-qa", "type": "persistent", "profile": "qa1", "namespace": STACK,
        "schedule": None, "source": "l3", "services": "all",
    }}}))
    server, stack = served_stack(root, sandbox, helm_bin, image_mirror, parallelism=SLOTS,
                                 extra_env={"STACKYARD_STACKS": str(registry)})
    with server:
        yield ServedStack(server, stack)


class Api:
    def __init__(self, served: ServedStack) -> None:
        self.server = served.server
        self.token = self.server.token()

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """One API call; a read that times out on a loaded machine is asked again (writes are not)."""
        for attempt in range(5):
            try:
                return self.server._request(method, path, self.token, body)
            except (TimeoutError, urllib.error.URLError) as exc:
                if method != "GET" or attempt == 4 or isinstance(exc, urllib.error.HTTPError):
                    raise
                time.sleep(2)

    def trigger(self, dag_id: str, conf: dict) -> str:
        run = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def wait(self, dag_id: str, run_ids: list[str], timeout: float = 900) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        while True:
            runs = {rid: self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{rid}") for rid in run_ids}
            if all(run["state"] in ("success", "failed") for run in runs.values()):
                return runs
            assert time.monotonic() < deadline, {rid: run["state"] for rid, run in runs.items()}
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]

    def unpause(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.server._get(f"/api/v2/dags/{dag_id}", self.token) is None:
            assert time.monotonic() < deadline, f"{dag_id} was never parsed"
            time.sleep(1)
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})


def interval(items: list[dict]) -> tuple[datetime, datetime]:
    """From the first start to the last end of ``items`` (runs or task instances)."""
    starts = [datetime.fromisoformat(i["start_date"]) for i in items if i.get("start_date")]
    ends = [datetime.fromisoformat(i["end_date"]) for i in items if i.get("end_date")]
    return min(starts), max(ends)


def assert_no_overlap(named: dict[str, tuple[datetime, datetime]]) -> None:
    ordered = sorted(named.items(), key=lambda item: item[1][0])
    for (a, (_, a_end)), (b, (b_start, _)) in zip(ordered, ordered[1:]):
        assert a_end <= b_start, f"{a} (until {a_end}) overlapped {b} (from {b_start})"


def test_gate_runs_triggered_together_are_tested_at_once_and_promoted_in_queue_order(busy_server):
    from stackyard.adapters.gate_queue_store import GateQueueStore

    api, stack = Api(busy_server), busy_server.stack
    before = stack.store.latest()
    bumps = {"orders": "1.1.0", "catalog": "1.1.0", "storefront": "1.1.0"}
    for service, version in bumps.items():
        stack.publish(service, version)

    run_ids = [api.trigger("l3_gate", {"service": s, "chart_version": v, "requested_by": "limits"})
               for s, v in bumps.items()]
    runs = api.wait("l3_gate", run_ids)

    assert {rid: run["state"] for rid, run in runs.items()} == dict.fromkeys(run_ids, "success")
    tests = {rid: interval([ti for ti in api.task_instances("l3_gate", rid) if ti["task_id"] == "system_tests"])
             for rid in run_ids}
    spans = sorted(tests.values())
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans  # tested at once
    queue = GateQueueStore(stack.store.backend)
    queued = [queue.queued(seq) for seq in queue.seqs()]
    history = [m for m in reversed(stack.store.history()) if m.version > before.version]
    assert [m.change.service for m in history] == [q.service for q in queued]  # promoted in queue order
    for parent, child in zip([before, *history], history):  # one change each, exactly as tested
        assert child.parent == parent.version
        tested = [a.services for q in queued for a in queue.attempts(q.seq) if queue.result(q.seq, a.number)]
        assert {n: p.chart_version for n, p in child.services.items()} in tested
    assert {s: history[-1].services[s].chart_version for s in bumps} == bumps


def test_rollout_upgrades_one_service_at_a_time_and_one_run_per_stack(busy_server):
    api = Api(busy_server)
    dag_id = f"rollout_{STACK}"
    api.unpause(dag_id)

    run_ids = [api.trigger(dag_id, {}), api.trigger(dag_id, {})]
    runs = api.wait(dag_id, run_ids)

    assert [runs[rid]["state"] for rid in run_ids] == ["success", "success"]
    assert_no_overlap({rid: interval([run]) for rid, run in runs.items()})
    upgrades = [ti for ti in api.task_instances(dag_id, run_ids[0]) if ti["task_id"] == "upgrade"]
    services = busy_server.stack.store.latest().services
    assert sorted(ti["rendered_map_index"] for ti in upgrades) == sorted(services)  # the whole stack, first run
    assert all(ti["state"] == "success" for ti in upgrades)
    assert_no_overlap({ti["rendered_map_index"]: interval([ti]) for ti in upgrades})
