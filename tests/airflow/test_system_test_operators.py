"""The gate's test tasks: the DAG's shape around them, the parallelism setting, and the suite pod
run through the parallel runner against the kube sandbox (``execute`` called directly)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from stackyard.exceptions import InputError
from stackyard.settings import Settings

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def gate_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "l3_gate.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("l3_gate")


def test_system_tests_is_the_parallel_runner_told_the_changed_service(gate_dag):
    from stackyard.airflow.operators.gate import CandidateTestOperator

    task = gate_dag.get_task("system_tests")
    assert isinstance(task, CandidateTestOperator) and task.retries == 0
    assert "validate" in task.changed_service and "change" in task.changed_service


def test_package_and_namespace_are_made_side_by_side(gate_dag):
    assert gate_dag.get_task("build_candidate").upstream_task_ids == {"validate"}
    assert gate_dag.get_task("create_stack").upstream_task_ids == {"validate"}
    assert gate_dag.get_task("deploy").upstream_task_ids == {"build_candidate", "create_stack"}


def test_requeue_follows_promote_and_reject_and_comes_before_teardown(gate_dag):
    from stackyard.airflow.operators.gate import RequeueOperator

    requeue = gate_dag.get_task("requeue")
    assert isinstance(requeue, RequeueOperator) and requeue.upstream_task_ids == {"promote", "reject"}
    assert requeue.downstream_task_ids == {"teardown"} and requeue.trigger_rule == "all_done"
    assert "needs_retest" not in gate_dag.task_ids


def test_requeue_triggers_the_run_any_handing_over_step_named(gate_dag):
    from stackyard.steps.gate import HANDING_OVER

    template = gate_dag.get_task("requeue").trigger_run_id
    assert HANDING_OVER == ("system_tests", "promote", "reject")
    assert all(f"task_ids='{step}', key='requeue'" in template for step in HANDING_OVER)


class _TI:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def test_the_candidates_tests_record_a_failure_at_once_and_stop_when_a_change_ahead_failed(tmp_path, monkeypatch):
    """system_tests as the queue sees it: its first failed test is the attempt's result at once;
    once a change tested ahead of it failed, it stops and hands the change over (``requeue``)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from stackyard.adapters.gate_queue_store import GateQueueStore
    from stackyard.adapters.manifest_store import LocalManifestStore
    from stackyard.airflow.operators import gate
    from stackyard.airflow.operators.system_tests import ParallelHelmTestOperator
    from stackyard.core.manifest import Manifest, Provenance, ServicePin
    from stackyard.core.system_tests import Phase, TestResult
    from stackyard.steps import gate_queue as q
    from stackyard.steps.system_tests import Cancelled
    from tests.steps.test_gate_queue_steps import NOW

    store = LocalManifestStore(tmp_path / "store")
    store.seed(Manifest.initial({"orders": ServicePin("1.0.0"), "catalog": ServicePin("1.0.0")}, NOW, Provenance()))
    queue = GateQueueStore(store.backend)
    items = [q.join(queue, service=s, version="1.1.0", pin=ServicePin("1.1.0"), run_id=f"run-{s}")
             for s in ("orders", "catalog")]
    attempts = [q.start(queue, store, item, window=3, run_id=f"run-{item.service}", now=NOW,
                        provenance=Provenance()).attempt for item in items]
    current = {}
    monkeypatch.setattr(gate, "pulled", lambda task_id, key="return_value": current if key == gate.QUEUE_XCOM_KEY else None)
    monkeypatch.setattr(gate, "gate_queue_for", lambda settings: queue)
    monkeypatch.setattr(gate, "manifest_store_for", lambda settings: store)
    task = gate.CandidateTestOperator(task_id="system_tests", release="r", namespace="n")
    task._looked, task._failure_noted = 0.0, False
    failed = TestResult("orders-test", "orders", "Pod", 0, Phase.FAILED, 1.0, "exit 1", "")

    current.update(seq=items[1].seq, attempt=attempts[1])  # catalog, tested behind orders
    assert task.stop_reason({"run_id": "run-catalog"}) is None
    current.update(seq=items[0].seq, attempt=attempts[0])  # orders' own first failed test
    task.on_result({"run_id": "run-orders"}, failed)
    assert queue.result(items[0].seq, attempts[0]) is False

    current.update(seq=items[1].seq, attempt=attempts[1])
    task._looked = 0.0
    reason = task.stop_reason({"run_id": "run-catalog"})
    assert reason == "orders 1.1.0 (#1) ahead of it failed"
    monkeypatch.setattr(ParallelHelmTestOperator, "perform", lambda self, context: (_ for _ in ()).throw(
        Cancelled(reason, [])))
    ti = _TI()
    with pytest.raises(AirflowSkipException, match="tests it again"):
        task.perform({"run_id": "run-catalog", "ti": ti})
    assert ti.pushed["conflict"] == reason and ti.pushed["requeue"].startswith(f"requeue__{items[1].seq}__2__")
    assert queue.handover(items[1].seq, attempts[1]) == ti.pushed["requeue"]


@pytest.mark.parametrize("raw, expected", [(None, 3), ("1", 1), ("5", 5)])
def test_the_window_setting(raw, expected):
    env = {"STACKYARD_GATE_WINDOW": raw} if raw else {}
    assert Settings.from_env(env).gate_window == expected


@pytest.mark.parametrize("raw", ["0", "lots", "-2"])
def test_a_bad_window_fails_when_used_naming_the_variable(raw):
    settings = Settings.from_env({"STACKYARD_GATE_WINDOW": raw})
    with pytest.raises(InputError, match=rf"STACKYARD_GATE_WINDOW: '{raw}' is not a positive whole number of changes"):
        settings.gate_window


@pytest.mark.parametrize("raw, expected", [(None, 64), ("8", 8)])
def test_the_parallelism_setting(raw, expected):
    env = {"STACKYARD_GATE_TEST_PARALLELISM": raw} if raw else {}
    assert Settings.from_env(env).gate_test_parallelism == expected


def test_a_bad_parallelism_fails_when_used_naming_the_variable():
    settings = Settings.from_env({"STACKYARD_GATE_TEST_PARALLELISM": "lots"})  # parsing DAGs is unaffected
    with pytest.raises(InputError, match="STACKYARD_GATE_TEST_PARALLELISM"):
        settings.gate_test_parallelism


@pytest.mark.parametrize("fail", [False, True])
def test_the_suite_pod_runs_to_its_end_and_is_removed(monkeypatch, fail):
    from kubernetes import client, config

    from kube_sandbox import Sandbox
    from stackyard.airflow.operators.system_tests import SystemTestSuiteOperator

    annotations = {"sandbox.stackyard.io/outcome": "fail"} if fail else {}
    suite = SimpleNamespace(image="example/suite:1", cmds=["pytest"], arguments=["-q"], timeout_seconds=60,
                            annotations=annotations)
    with Sandbox(ready_delay=0.1) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_SUITE_KUBE", json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": str(sandbox.kubeconfig_path)}}))
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(sandbox.kubeconfig_path)))
        core.create_namespace({"metadata": {"name": "l3-abc"}})
        op = SystemTestSuiteOperator(task_id="system_test_suite", suite=suite, namespace="l3-abc",
                                     manifest_version="7", kubernetes_conn_id="suite_kube")
        if fail:
            with pytest.raises(RuntimeError, match="system test suite failed"):
                op.execute({})
        else:
            assert op.execute({})["passed"] is True
        assert core.list_namespaced_pod("l3-abc").items == []  # deleted after either outcome
