"""Notifications against a local HTTP receiver on 127.0.0.1: body formats, the connection's URL
forms, redaction, failures that never raise, and metrics over StatsD UDP."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone

import pytest

from stackyard.airflow import notify
from stackyard.core.ephemeral import Action, Outcome, Verdict, reaper_report
from stackyard.core.records import ReaperEntry
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose
from stackyard.core.secrets import SECRETS

from tests.support.webhook import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


def use_connection(monkeypatch, **conn) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_WEBHOOK", json.dumps({"conn_type": "http", **conn}))


def candidate() -> Manifest:
    now = datetime.now(timezone.utc)
    seed = Manifest.initial({"catalog": ServicePin("1.0.0")}, now, Provenance(None, "t", None))
    return propose(seed, "catalog", "1.1.0", None, now, Provenance("manual__g1", "alice", None))


def test_gate_rejection_posts_slack_json_with_the_secret_path_from_the_password(receiver, monkeypatch):
    use_connection(monkeypatch, host=f"http://127.0.0.1:{receiver.port}/services", password="T000/B000/XXXXsecret")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080")
    assert notify.send(notify.gate_rejected(candidate(), "system tests failed: l3-catalog-test", ["l3-catalog-test"])) is True
    [(path, headers, body)] = receiver.requests
    assert path == "/services/T000/B000/XXXXsecret" and headers["Content-Type"] == "application/json"
    assert body["text"].startswith(":red_circle: L3 gate rejected catalog 1.0.0 -> 1.1.0")
    fields = " ".join(f["text"] for f in body["blocks"][1]["fields"])
    assert "l3-catalog-test" in fields and "v1" in fields and "alice" in fields
    assert "<http://airflow.example:8080/dags/l3_gate/runs/manual__g1|" in body["blocks"][-1]["elements"][0]["text"]


def test_json_format_host_and_schema_forms_and_expiry_warning_to_the_owner(receiver, monkeypatch):
    use_connection(monkeypatch, host="127.0.0.1", port=receiver.port, schema="hooks/stackyard", extra={"format": "json"})
    note = notify.stack_expiring("alice-demo", owner="alice", seconds_left=20 * 3600, ttl="7d")
    assert notify.send(note) is True
    [(path, _, body)] = receiver.requests
    assert path == "/hooks/stackyard"
    assert body["kind"] == "stack_expiring" and body["severity"] == "warning" and body["owner"] == "alice"
    assert "@alice" in body["text"] and "20h0m" in body["text"]


def test_rollout_and_reaper_builders(receiver, monkeypatch):
    use_connection(monkeypatch, host=f"http://127.0.0.1:{receiver.port}", extra={"format": "json"})
    assert notify.send(notify.rollout_failed("qa1", "orders", "1.4.0", from_version="1.3.2", rolled_back=True,
                                             reason="deployment not ready", dag_id="rollout_qa1", run_id="r1"))
    report = reaper_report([Verdict("bob-x", Action.DELETE, "idle")], {"bob-x": (Outcome.FAILED, "403 forbidden")},
                           now=datetime.now(timezone.utc), dry_run=False, max_deletions=5, dag_id="ephemeral_reaper",
                           run_id="r2")
    assert notify.send(notify.reaper_failed(report))
    rollout, reaper = (body for _, _, body in receiver.requests)
    assert rollout["fields"]["after failure"] == "rolled back to 1.3.2" and rollout["run_id"] == "r1"
    assert reaper["text"] == "bob-x: 403 forbidden" and reaper["run_id"] == "r2"
    assert reaper["dag_id"] == "ephemeral_reaper"  # the report's own DAG, never a guess
    soon, later = (ReaperEntry(name=name, action="keep", reason="", time_left_seconds=left)
                   for name, left in (("a", 3600), ("b", 200000)))
    assert notify.expiring([soon, later]) == [soon]


def test_registered_secrets_are_redacted_before_they_leave(receiver, monkeypatch):
    use_connection(monkeypatch, host=f"http://127.0.0.1:{receiver.port}")
    SECRETS.add(["hunter2-very-secret"])
    assert notify.send(notify.rollout_failed("qa1", "orders", "1.4.0", reason="db password hunter2-very-secret refused"))
    [(_, _, body)] = receiver.requests
    assert "hunter2-very-secret" not in json.dumps(body) and "***" in body["text"]


def test_failures_are_logged_never_raised_and_never_log_the_url(monkeypatch, caplog):
    assert notify.send(notify.stack_expiring("s", owner=None, seconds_left=60)) is False  # no connection
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    use_connection(monkeypatch, host=f"http://127.0.0.1:{port}", password="TOPSECRETPATH")
    assert notify.send(notify.stack_expiring("s", owner=None, seconds_left=60)) is False
    assert "TOPSECRETPATH" not in caplog.text and f"127.0.0.1:{port}" in caplog.text
    failing = Receiver(status=500)
    use_connection(monkeypatch, host=f"http://127.0.0.1:{failing.port}")
    assert notify.send(notify.stack_expiring("s", owner=None, seconds_left=60)) is False
    assert "HTTP 500" in caplog.text
    failing.server.shutdown()
    use_connection(monkeypatch, host=f"http://127.0.0.1:{port}", extra={"format": "xml"})
    assert notify.send(notify.stack_expiring("s", owner=None, seconds_left=60)) is False
    assert "format 'xml' is not one of slack, json" in caplog.text


def test_metrics_go_out_through_airflows_statsd_configuration(monkeypatch):
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    from stackyard.adapters import metrics

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(sock.getsockname()[1]))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "af")
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    try:
        metrics.gate_finished("rejected", 12.5)
        metrics.rollout_finished("qa1", "rolled_back")
        metrics.live_ephemeral_stacks(3)
        metrics.stacks_reaped(2)
        packets = set()
        while len(packets) < 5:
            packets.add(sock.recv(1000).decode())
    finally:
        monkeypatch.undo()
        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
        sock.close()
    assert packets == {"af.stackyard.gate.rejected:1|c", "af.stackyard.gate.duration:12500.000000|ms",
                       "af.stackyard.rollout.qa1.rolled_back:1|c", "af.stackyard.stacks.ephemeral.live:3|g",
                       "af.stackyard.stacks.reaped:2|c"}


@pytest.mark.parametrize("owner, conn_id", [
    ("team-qa", "stackyard_webhook_team_qa"),
    ("alice@example.com", "stackyard_webhook_alice_example_com"),
    ("Payments Team", "stackyard_webhook_payments_team"),
])
def test_an_owners_webhook_connection_id(owner, conn_id):
    assert notify.owner_conn_id(owner) == conn_id


def test_alerts_go_to_the_owners_webhook_and_fall_back_to_the_shared_one(receiver, monkeypatch):
    shared = Receiver()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_WEBHOOK_TEAM_QA", json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{receiver.port}/team-qa", "extra": {"format": "json"}}))
        monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_WEBHOOK", json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{shared.port}/shared", "extra": {"format": "json"}}))
        assert notify.send(notify.rollout_failed("qa1", "orders", "1.4.0", owner="team-qa")) is True
        assert notify.send(notify.rollout_failed("qa2", "orders", "1.4.0", owner="team-payments")) is True
        assert notify.send(notify.gate_rejected(candidate(), "deploy failed")) is True  # owner alice: none of hers
        assert [path for path, _, _ in receiver.requests] == ["/team-qa"]
        assert [path for path, _, _ in shared.requests] == ["/shared", "/shared"]
    finally:
        shared.server.shutdown()
