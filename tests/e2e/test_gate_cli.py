"""``stackyard gate`` against a real Airflow API server (standalone, LocalExecutor) and the sandbox,
and ``make up``'s entry point (``python -m dev.local``) starting and stopping cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
    assert "REJECTED: system tests failed: l3-catalog-test" in result.stdout
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
