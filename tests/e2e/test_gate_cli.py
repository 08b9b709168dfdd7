"""``stackyard gate`` against a real Airflow API server (standalone, LocalExecutor) and the sandbox,
and ``make up``'s entry point (``python -m dev.local``) starting and stopping cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dev.local import free_port

from tests.e2e.airflow_server import airflow_server  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow

STACKYARD = str(Path(sys.executable).with_name("stackyard"))


def gate(served, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([STACKYARD, "gate", *args], env=served.cli_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


# First in the file: it runs its own standalone before the session's server starts (memory).
def test_make_up_prints_the_login_and_stops_cleanly_on_ctrl_c(tmp_path):
    home = tmp_path / "stackyard"
    port = free_port()
    env = {
        **os.environ,
        "STACKYARD_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
        "STACKYARD_REGISTRY": f"dir://{home / 'registry'}", "STACKYARD_MANIFEST_STORE": f"file://{home / 'manifests'}",
        "KUBECONFIG": str(home / "sandbox" / "kubeconfig"),
        "AIRFLOW_CONN_STACKYARD_KUBE": json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": str(home / "sandbox" / "kubeconfig")}}),
    }
    up = subprocess.Popen([sys.executable, "-m", "dev.local", "--port", str(port), "--sandbox-port", "0"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not any(line.startswith("Stop with Ctrl-C") for line in lines):
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line)
        output = "".join(lines)
        assert "Stop with Ctrl-C" in output, output
        password = json.loads((home / "airflow" / "simple_auth_manager_passwords.json").read_text())["admin"]
        assert f"password:  {password}" in output and "seeded L3 v1" in output
        token = json.load(urllib.request.urlopen(urllib.request.Request(
            f"http://localhost:{port}/auth/token", data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"})))["access_token"]
        def paused(dag_id):
            return json.load(urllib.request.urlopen(urllib.request.Request(
                f"http://localhost:{port}/api/v2/dags/{dag_id}", headers={"Authorization": f"Bearer {token}"})))["is_paused"]

        assert paused("l3_gate") is False and paused("stack_create") is False
    finally:
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=90)
    assert up.returncode == 0, rest
    assert "sandbox snapshot written" in rest
    assert (home / "sandbox" / "snapshot.json").is_file()


def test_good_bump_is_promoted_exit_0(airflow_server):
    stack = airflow_server.stack
    before = stack.store.latest()
    stack.publish("orders", "1.1.0")

    result = gate(airflow_server, "--service", "orders", "--version", "1.1.0", "--requested-by", "ci-bot",
                  "--ci-url", "https://ci.example/1", "--wait", "--timeout", "240")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{airflow_server.server.url}/dags/l3_gate/runs/" in result.stdout
    assert "validate: success" in result.stdout and "promote: success" in result.stdout
    assert f"PROMOTED: L3 v{before.version} → v{before.version + 1} (orders 1.0.0 -> 1.1.0)" in result.stdout
    after = stack.store.latest()
    assert after.services["orders"].chart_version == "1.1.0"
    assert (after.provenance.requested_by, after.provenance.ci_url) == ("ci-bot", "https://ci.example/1")


def test_failing_test_is_rejected_exit_1(airflow_server):
    stack = airflow_server.stack
    stack.publish("catalog", "1.1.0", failing_test=True)
    before = stack.store.latest()

    result = gate(airflow_server, "--service", "catalog", "--version", "1.1.0", "--wait", "--timeout", "240")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "system_tests: failed" in result.stdout
    assert re.search(r"REJECTED: system tests failed: l3-[0-9a-f]{8}-catalog-test", result.stdout)
    assert stack.store.latest() == before


def test_version_absent_from_the_registry_is_refused_in_validate_exit_1(airflow_server):
    before = airflow_server.stack.store.latest()

    result = gate(airflow_server, "--service", "orders", "--version", "9.9.9", "--wait", "--timeout", "120")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "validate: failed" in result.stdout
    assert "REFUSED: chart_version: orders 9.9.9 is not in the registry" in result.stdout
    assert airflow_server.stack.store.latest() == before


@pytest.mark.parametrize("args, message", [
    (["--service", "orders", "--version", "V1.0.0"], "chart_version: 'V1.0.0' is not a semantic version"),
    (["--service", "Orders!", "--version", "1.0.0"], "service"),
])
def test_malformed_input_is_refused_before_any_request_exit_1(airflow_server, args, message):
    result = gate(airflow_server, *args, "--wait", "--api", "http://127.0.0.1:9")  # nothing listens there

    assert result.returncode == 1
    assert message in result.stderr


def test_wrong_credentials_and_unreachable_api_exit_2(airflow_server):
    env = {**airflow_server.cli_env(), "STACKYARD_API_PASSWORD": "not-the-password"}
    wrong = subprocess.run([STACKYARD, "gate", "--service", "orders", "--version", "1.2.0"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    unreachable = gate(airflow_server, "--service", "orders", "--version", "1.2.0", "--api", "http://127.0.0.1:9")

    assert wrong.returncode == 2 and "refused the credentials of 'admin'" in wrong.stderr
    assert "not-the-password" not in wrong.stdout + wrong.stderr
    assert unreachable.returncode == 2 and "cannot reach the Airflow API at http://127.0.0.1:9" in unreachable.stderr


def test_the_rest_api_takes_a_run_without_logical_date_and_refuses_bad_conf_in_one_line(airflow_server):
    """Through the real api-server and the stackyard_ui plugin's middleware."""
    server = airflow_server.server
    token = server.token()

    def post(body: dict):
        request = urllib.request.Request(
            f"{server.url}/api/v2/dags/l3_gate/dagRuns", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    status, answer = post({"conf": {"service": "Bad!", "chart_version": "1.0.0"}})
    assert status == 400
    assert answer["detail"] == ("Invalid input for param service: 'Bad!' is not a service name "
                                "(a DNS-1123 label: lowercase letters, digits and '-')")
    status, answer = post({"conf": {"service": "orders", "chart_version": "9.9.8"}})  # no logical_date
    assert status == 200, answer
    assert answer["logical_date"] is None and answer["conf"]["service"] == "orders"


def test_rest_refuses_bad_values_with_400_and_undeclared_keys_at_the_first_task(airflow_server):
    """Through the REST API: a param that fails its pattern is a 400 (no run); an undeclared conf
    key (which Airflow accepts) fails ``validate`` naming it, and nothing changes."""
    from stackyard.cli.gate import AirflowApi, AirflowApiError

    server = airflow_server.server
    api = AirflowApi(server.url, server.user, server.password)
    before = airflow_server.stack.store.latest()
    for conf in ({"service": "evil\n", "chart_version": "1.0.0"},
                 {"service": "orders", "chart_version": "1.0.0", "ci_url": "javascript:alert(1)"}):
        with pytest.raises(AirflowApiError) as refused:
            api.trigger(conf)
        assert refused.value.status == 400

    run = api.trigger({"service": "orders", "chart_version": "1.0.0", "servce": "orders"})
    deadline = time.monotonic() + 180
    while api.run(run["dag_run_id"])["state"] not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(2)
    assert api.run(run["dag_run_id"])["state"] == "failed"
    assert api.task_states(run["dag_run_id"])["validate"] == "failed"
    error = api.task_error(run["dag_run_id"], "validate") or ""
    assert "l3_gate: unknown conf key(s) servce; it takes" in error and "nothing was done" in error
    assert airflow_server.stack.store.latest() == before


def test_queued_changes_are_tested_at_once_and_one_behind_a_failure_is_tested_again(airflow_server):
    """The speculative queue end to end: a failing change and one behind it, queued at once. The
    one behind is tested on L3 + the failing one, so it fails too; once the failing one is rejected
    at the head, the one behind is tested again on L3 alone (a requeued run) and promoted."""
    stack = airflow_server.stack
    stack.publish("catalog", "1.5.0", failing_test=True)
    stack.publish("storefront", "1.5.0")
    before = stack.store.latest()
    args = ("--wait", "--timeout", "600")
    first = subprocess.Popen([STACKYARD, "gate", "--service", "catalog", "--version", "1.5.0", *args],
                             env=airflow_server.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = first.stdout.readline()  # "l3_gate run … queued" (triggered)
    assert "queued" in line, line
    # The queue's order is the order validate queues changes, not the triggers': wait for the first.
    from stackyard.adapters.gate_queue_store import GateQueueStore

    queue, deadline = GateQueueStore(stack.store.backend), time.monotonic() + 120
    # The log keeps earlier tests' changes (catalog among them); entries() folds in only open ones.
    while ("catalog", "1.5.0") not in {(e.item.service, e.item.version) for e in queue.entries()}:
        assert time.monotonic() < deadline, "the first change was never queued"
        time.sleep(0.2)
    second = subprocess.run([STACKYARD, "gate", "--service", "storefront", "--version", "1.5.0", *args],
                            env=airflow_server.cli_env(), capture_output=True, text=True, timeout=900)
    first_out = line + first.communicate(timeout=600)[0]

    assert first.returncode == 1 and "REJECTED: system tests failed" in first_out, first_out
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert re.search(r"queue: 2 of 2 \(window \d+\): testing behind catalog 1\.5\.0", out), out
    # Said by its tests, stopped as soon as catalog failed, or by promote, once catalog was rejected.
    assert re.search(r"NOT DECIDED: catalog 1\.5\.0 \(#\d+\)(, tested ahead of it, left the queue: rejected| "
                     r"ahead of it failed)", out), out
    assert "following the new run requeue__" in out and "PROMOTED: " in out, out
    after = stack.store.latest()
    assert after.version == before.version + 1 and after.change.service == "storefront"
    assert after.services["catalog"] == before.services["catalog"]  # the failing change never got in
