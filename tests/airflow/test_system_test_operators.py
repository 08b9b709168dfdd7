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
    from stackyard.airflow.operators.system_tests import ParallelHelmTestOperator

    task = gate_dag.get_task("system_tests")
    assert isinstance(task, ParallelHelmTestOperator) and task.retries == 0
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
