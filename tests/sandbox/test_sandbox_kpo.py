"""A KubernetesPodOperator task run in ``dag.test()`` against the sandbox: success and failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("airflow.providers.cncf.kubernetes")

pytestmark = pytest.mark.slow
DAGS = Path(__file__).with_name("dags")
DAG_SCRIPT = DAGS / "sandbox_kpo.py"


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> dict:
    """A throwaway AIRFLOW_HOME with its own migrated DB; returns the env to run Airflow with.

    Its own DB, never the session's: a second Airflow process writing the session's SQLite file
    while this one holds it open corrupted it ("database disk image is malformed")."""
    from tests.conftest import ROOT, _local_env_module

    home = _local_env_module().fresh_airflow_home(ROOT, tmp_path_factory.mktemp("kpo") / "airflow")
    return {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "AIRFLOW__CORE__UNIT_TEST_MODE": "False"}


@pytest.fixture(scope="module")
def kpo_runs(airflow_home, tmp_path_factory):
    """Both outcomes in one Airflow process (imports cost seconds); yields (results, output, sandbox)."""
    from kube_sandbox import Sandbox

    with Sandbox(ready_delay=0.2) as sb:
        conn = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(sb.kubeconfig_path)}}
        env = {**airflow_home, "AIRFLOW_CONN_SANDBOX_K8S": json.dumps(conn)}
        proc = subprocess.run([sys.executable, str(DAG_SCRIPT), "pass", "fail"], env=env, capture_output=True,
                              text=True, timeout=300)
        out = proc.stdout + proc.stderr
        results = {r["outcome"]: r["state"] for r in
                   (json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines()
                    if line.startswith("KPO-RESULT "))}
        pods = [p["metadata"]["name"] for p in json.loads(
            sb.api.list_raw(sb.registry.get("", "v1", "pods"), None, {}))["items"]]
        yield results, out, pods


def test_kpo_task_succeeds_with_pod_logs(kpo_runs):
    results, out, _ = kpo_runs
    assert results.get("pass") == "success", out[-4000:]
    assert "hello from kpo" in out and "outcome=pass" in out


def test_kpo_task_fails_when_pod_fails(kpo_runs):
    results, out, _ = kpo_runs
    assert results.get("fail") == "failed", out[-4000:]
    assert "outcome=fail" in out


def test_kpo_deletes_its_pods(kpo_runs):
    assert kpo_runs[2] == []
