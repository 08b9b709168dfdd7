"""Infrastructure faults around the stack DAGs: the record store, the cluster, and the kube
sandbox restarted mid-deploy. Each ends with nothing wrongly deleted, nothing orphaned, and a
retry (or the next run) that finishes the job.

(The L3 gate's registry, KMS and cluster faults are in test_gate_faults.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from stackyard.core import ephemeral as S

from tests.conftest import CHARTS, ROOT
from tests.e2e.test_stacks import EPHEMERAL, alive, events, made_by_stackyard, records, remove, run
from tests.support.task_process import helm_children

OLD = S.timestamp(datetime.now(timezone.utc) - timedelta(days=30))


@pytest.fixture(autouse=True)
def clear_faults(sandbox):
    sandbox.faults.clear()
    yield
    sandbox.faults.clear()


def test_stack_create_with_an_unwritable_record_store_creates_nothing(local_stack, dagbag, monkeypatch, tmp_path,
                                                                      capfd):
    local_stack.seed()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("STACKYARD_RECORD_STORE", f"file://{blocker / 'records'}")  # every write fails

    state, tasks = run(dagbag, "stack_create", {"name": "ro-store", "owner": "alice"})

    assert state == "failed" and tasks["create_namespace"] == "failed" and tasks["deploy"] == "upstream_failed"
    assert tasks["clean_up_failed"] == "skipped"  # nothing was made, so nothing to clean
    assert not alive(local_stack, "ro-store")
    assert "NotADirectoryError" in capfd.readouterr().out


def test_the_reaper_with_an_unreadable_record_store_deletes_nothing(local_stack, dagbag, monkeypatch, tmp_path, capfd):
    made_by_stackyard(local_stack, "stale-but-unproven", EPHEMERAL, {"last_activity": OLD, "ttl": "1h"})
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = os.environ["STACKYARD_RECORD_STORE"]
    monkeypatch.setenv("STACKYARD_RECORD_STORE", f"file://{blocker / 'records'}")
    try:
        state, tasks = run(dagbag, "ephemeral_reaper", {})
        assert alive(local_stack, "stale-but-unproven")
        out = capfd.readouterr().out
        assert "stale-but-unproven: not proven created by stackyard: its records could not be read" in out
        assert state == "failed" and tasks["report"] == "failed"  # the report itself cannot be kept

        monkeypatch.setenv("STACKYARD_RECORD_STORE", store)  # the store is back: the next run removes it
        state, _ = run(dagbag, "ephemeral_reaper", {})
        assert state == "success" and not alive(local_stack, "stale-but-unproven")
    finally:
        remove(local_stack, "stale-but-unproven")


def test_a_cluster_error_during_destroy_is_retried_and_the_stack_goes(local_stack, dagbag, sandbox):
    made_by_stackyard(local_stack, "flaky-destroy", EPHEMERAL, {"last_activity": OLD, "ttl": "7d"})
    rule = sandbox.faults.fail(verb="delete", resource="namespaces", name="flaky-destroy", status=500, times=1)
    try:
        state, tasks = run(dagbag, "stack_destroy", {"name": "flaky-destroy"})
        assert rule.hits == 1
        assert state == "success" and not alive(local_stack, "flaky-destroy")
        assert events(local_stack, "flaky-destroy") == ["created", "destroyed"]
    finally:
        remove(local_stack, "flaky-destroy")


def test_a_cluster_that_is_down_destroys_nothing_and_says_so(local_stack, dagbag, sandbox, capfd):
    made_by_stackyard(local_stack, "down-destroy", EPHEMERAL, {"last_activity": OLD, "ttl": "7d"})
    sandbox.faults.fail(verb="get", resource="namespaces", name="down-destroy", status=503, times=None)
    try:
        state, tasks = run(dagbag, "stack_destroy", {"name": "down-destroy"})
        assert state == "failed" and tasks == {"check": "failed", "destroy": "upstream_failed"}
        assert "503" in capfd.readouterr().out
        sandbox.faults.clear()
        assert alive(local_stack, "down-destroy") and events(local_stack, "down-destroy") == ["created"]
    finally:
        sandbox.faults.clear()
        remove(local_stack, "down-destroy")


# --- the sandbox restarted mid-deploy ---------------------------------------------------------


def _start_sandbox(port: int, tmp, snapshot) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "kube_sandbox", "--port", str(port), "--kubeconfig",
                             str(tmp / "kubeconfig"), "--snapshot", str(snapshot), "--ready-delay", "3"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "serving" in proc.stdout.readline()
    return proc


def test_a_sandbox_restarted_mid_deploy_leaves_a_release_the_retry_recovers(local_stack, monkeypatch, tmp_path):
    """The API server dies (SIGKILL) while helm upgrades and comes back from its snapshot (which
    may miss the last second of writes); whatever helm made of it, the next deploy through the
    guard succeeds and nothing stays pending."""
    from tests.support.oci_registry import free_port

    from stackyard.airflow.hooks.helm import HelmHook

    port, snapshot = free_port(), tmp_path / "snapshot.json"
    server = _start_sandbox(port, tmp_path, snapshot)
    kubeconfig = tmp_path / "kubeconfig"
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_KUBE", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}))
    chart = CHARTS / "orders"
    try:
        subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "create", "namespace", "restart"], check=True,
                       capture_output=True)
        with HelmHook().helm(stack="restart") as helm:
            helm.upgrade_install("orders", chart, namespace="restart", timeout="40s")
            outcome: list[object] = []

            def upgrade():
                try:
                    outcome.append(helm.upgrade_install("orders", chart, namespace="restart", timeout="40s",
                                                        values={"replicaCount": 3}))
                except Exception as exc:
                    outcome.append(exc)

            worker = threading.Thread(target=upgrade)
            worker.start()
            time.sleep(2.0)  # helm waits for the new pods (ready after 3 s): the release is pending
            server.kill()
            server.wait()
            server = _start_sandbox(port, tmp_path, snapshot)
            worker.join(90)
            assert outcome, "the interrupted upgrade never ended"
            release = helm.upgrade_install("orders", chart, namespace="restart", timeout="40s",
                                           values={"replicaCount": 3})
            rows = helm.history("orders", namespace="restart")
        assert release.status == "deployed", outcome
        assert not [r for r in rows if r["status"].startswith("pending-") and r["revision"] == rows[-1]["revision"]]
        assert helm_children(os.getpid()) == []
    finally:
        server.kill()
        server.wait()
