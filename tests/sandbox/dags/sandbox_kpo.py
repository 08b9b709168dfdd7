"""A KubernetesPodOperator DAG run with ``dag.test()`` against the kube sandbox.

This folder is the DAGs folder of that run (``dag.test()`` needs the DAG serialized from its
bundle).  Run as a script in a subprocess (so its AIRFLOW_HOME never leaks into the test
process): ``python sandbox_kpo.py pass fail`` prints one JSON line ``{"run_id": ..., "state": ...}`` per outcome after
the task logs.  The connection ``sandbox_k8s`` comes from ``AIRFLOW_CONN_SANDBOX_K8S``.
"""

from __future__ import annotations

import json
import sys

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

OUTCOME = "sandbox.stackyard.io/outcome"


def build(outcome: str) -> DAG:
    with DAG(dag_id=f"sandbox_kpo_{outcome}", schedule=None, catchup=False, tags=["kube-sandbox"],
             doc_md="KubernetesPodOperator against the kube sandbox.") as dag:
        KubernetesPodOperator(
            task_id="run_pod", kubernetes_conn_id="sandbox_k8s", namespace="default", name=f"kpo-{outcome}",
            image="busybox:1.36", cmds=["sh", "-c"], arguments=[f"echo hello from kpo; echo outcome={outcome}"],
            annotations={OUTCOME: outcome}, get_logs=True, on_finish_action="delete_pod",
            startup_check_interval_seconds=1, startup_timeout_seconds=60, poll_interval=1, retries=0,
            log_events_on_failure=False)
    return dag


DAGS = {outcome: build(outcome) for outcome in ("pass", "fail")}

if __name__ == "__main__":
    for outcome in sys.argv[1:] or ["pass", "fail"]:
        run = DAGS[outcome].test()
        print("KPO-RESULT " + json.dumps({"outcome": outcome, "state": str(run.state)}), flush=True)
