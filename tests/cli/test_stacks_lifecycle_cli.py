"""``stackyard stacks create|touch|destroy`` against a small stand-in for Airflow's REST API v2:
the conf each DAG gets, and the exit codes (0 done, 1 refused, 2 could not ask or failed)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stackyard.cli import main

# Per stack name: the run's final state and its task states.
SCENARIOS = {
    "alice-dev": ("success", {"validate": "success", "deploy": "success", "ready": "success"}),
    "taken": ("failed", {"validate": "failed", "deploy": "upstream_failed"}),
    "broken": ("failed", {"validate": "success", "build_umbrella": "success", "deploy": "failed"}),
    "not-mine": ("failed", {"check": "failed", "destroy": "upstream_failed"}),
}


class FakeAirflow:
    def __init__(self):
        self.triggered: list[tuple[str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/auth/token":
                    ok = body == {"username": "u", "password": "p"}
                    return self.reply(201 if ok else 401, {"access_token": "jwt"} if ok else {"detail": "bad"})
                dag = re.match(r"/api/v2/dags/([^/]+)/dagRuns$", self.path)[1]
                if body["conf"]["name"] == "Bad_Name":
                    return self.reply(400, {"detail": "Invalid input for param name: 'Bad_Name' does not match"})
                outer.triggered.append((dag, body["conf"]))
                self.reply(200, {"dag_run_id": f"manual__{body['conf']['name']}"})

            def do_GET(self):
                match = re.match(r"/api/v2/dags/([^/]+)/dagRuns/manual__([^/]+)(/taskInstances.*)?$", self.path.split("?")[0])
                state, tasks = SCENARIOS[match[2]]
                rest = match[3] or ""
                if not rest:
                    return self.reply(200, {"state": state})
                if rest == "/taskInstances":
                    return self.reply(200, {"task_instances": [{"task_id": t, "state": s} for t, s in tasks.items()]})
                if rest.endswith("/logs/1"):
                    return self.reply(200, {"content": [{"error_detail": [{"exc_value": "name: a namespace 'taken' already exists"}]}]})
                return self.reply(200, {"try_number": 1})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def airflow(monkeypatch):
    fake = FakeAirflow()
    monkeypatch.setenv("STACKYARD_API_URL", fake.url)
    monkeypatch.setenv("STACKYARD_API_USER", "u")
    monkeypatch.setenv("STACKYARD_API_PASSWORD", "p")
    monkeypatch.setattr("stackyard.cli.gate.POLL_SECONDS", 0.01)
    yield fake
    fake.server.shutdown()


def test_create_sends_the_dags_conf_and_waits_for_ready(airflow, capsys):
    assert main(["stacks", "create", "alice-dev", "--owner", "alice", "--ttl-days", "3",
                 "--override", "orders=1.0.0", "--wait"]) == 0
    assert airflow.triggered == [("stack_create", {"name": "alice-dev", "owner": "alice", "ttl_days": 3,
                                                   "overrides": {"orders": "1.0.0"}})]
    assert "stack alice-dev is ready" in capsys.readouterr().out


@pytest.mark.parametrize("argv, code, says", [
    (["stacks", "create", "taken", "--owner", "a", "--wait"], 1, "REFUSED: name: a namespace 'taken' already exists"),
    (["stacks", "create", "broken", "--owner", "a", "--wait"], 2, "FAILED: deploy failed"),
    (["stacks", "destroy", "not-mine", "--wait"], 1, "REFUSED"),
    (["stacks", "touch", "alice-dev", "--ttl-days", "9", "--wait"], 0, "stack alice-dev touched"),
    (["stacks", "destroy", "alice-dev"], 0, "stack_destroy run manual__alice-dev queued"),  # no --wait
])
def test_exit_codes_say_done_refused_or_failed(airflow, capsys, argv, code, says):
    assert main(argv) == code
    captured = capsys.readouterr()
    assert says in captured.out + captured.err


def test_bad_input_is_refused_before_asking_and_an_unreachable_api_is_2(airflow, capsys, monkeypatch):
    assert main(["stacks", "create", "alice-dev", "--owner", "a", "--override", "orders=latest"]) == 1
    assert main(["stacks", "touch", "alice-dev", "--ttl-days", "0"]) == 1
    assert main(["stacks", "create", "Bad_Name", "--owner", "a"]) == 1
    assert airflow.triggered == []
    monkeypatch.setenv("STACKYARD_API_PASSWORD", "wrong")
    assert main(["stacks", "destroy", "alice-dev"]) == 2
    monkeypatch.setenv("STACKYARD_API_URL", "http://127.0.0.1:9")
    assert main(["stacks", "destroy", "alice-dev"]) == 2
    assert "cannot reach the Airflow API" in capsys.readouterr().err
