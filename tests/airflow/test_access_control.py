"""Who may trigger a rollout: a real ``airflow api-server`` with the FAB auth manager.

The registry's ``triggerers.roles`` become the DAG's ``access_control``; under the FAB auth manager
a user whose roles do not include the production role is refused triggering ``rollout_production``
(403), while a member of that role is allowed. (The simple auth manager of ``make up`` ignores
``access_control``: see docs/rollouts.md.) No scheduler runs: triggered runs just stay queued.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
PASSWORD = "not-a-real-password-42"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _airflow(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"airflow {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _request(url: str, *, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def fab_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("fab")
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": FAB,
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "STACKYARD_STACKS": str(ROOT / "include" / "stacks.yaml"),
    }
    _airflow(env, "db", "migrate")
    _airflow(env, "fab-db", "migrate")
    # Every role the registry names must exist before the DAGs are serialized: FAB refuses an
    # access_control naming an unknown role, and that error is one for the whole factory file.
    _airflow(env, "roles", "create", "prod-deployers", "qa-deployers", "release-managers")
    for user, roles in (("dev", ["Viewer", "qa-deployers"]), ("releaser", ["Viewer", "prod-deployers"])):
        _airflow(env, "users", "create", "--username", user, "--password", PASSWORD, "--role", roles[0],
                 "--firstname", user, "--lastname", "test", "--email", f"{user}@example.com")
        _airflow(env, "users", "add-role", "--username", user, "--role", roles[1])
    _airflow(env, "dags", "reserialize")  # writes the DAGs and syncs their access_control to FAB roles
    log = (home / "api-server.log").open("w")
    process = subprocess.Popen(["airflow", "api-server", "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _request(f"{url}/api/v2/monitor/health")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (home / "api-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "api-server did not start in 120 s"
            time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def _token(url: str, user: str) -> str:
    status, body = _request(f"{url}/auth/token", body={"username": user, "password": PASSWORD})
    assert status in (200, 201), body
    return body["access_token"]


def _trigger(url: str, token: str, dag_id: str) -> int:
    status, body = _request(f"{url}/api/v2/dags/{dag_id}/dagRuns", body={"logical_date": None, "conf": {}}, token=token)
    assert status in (200, 403), body  # anything else (404: DAG not serialized) would make a 403 meaningless
    return status


def test_a_user_without_the_production_role_is_refused_triggering_production(fab_server):
    token = _token(fab_server, "dev")
    assert _trigger(fab_server, token, "rollout_production") == 403
    assert _trigger(fab_server, token, "rollout_qa1") == 200  # the same user may trigger the stack their role lists


def test_a_member_of_the_production_role_may_trigger_production(fab_server):
    token = _token(fab_server, "releaser")
    assert _trigger(fab_server, token, "rollout_production") == 200
    assert _trigger(fab_server, token, "rollout_qa1") == 403
