"""The L3 gate's reject path posts to the webhook (a local receiver) and the run still ends as
before; a gate run with no webhook configured is unaffected (see tests/e2e/test_l3_gate.py)."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.conftest import run_dag
from tests.support.webhook import Receiver

pytestmark = pytest.mark.slow


def test_rejected_candidate_is_announced_on_the_webhook(local_stack, dagbag, monkeypatch):
    receiver = Receiver()
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": f"http://127.0.0.1:{receiver.port}", "extra": {"format": "json"}}))
    try:
        local_stack.seed()
        local_stack.publish("catalog", "1.1.0", failing_test=True)
        state, tasks = run_dag(dagbag, "l3_gate", {"service": "catalog", "chart_version": "1.1.0", "requested_by": "dora"})
    finally:
        receiver.server.shutdown()
    assert state == "failed" and tasks["reject"] == "success"
    [(_, _, body)] = receiver.requests
    assert body["kind"] == "gate_rejected" and body["title"] == "L3 gate rejected catalog 1.0.0 -> 1.1.0"
    # the test pod is named after the candidate's own release, l3-<candidate id>
    [failed] = re.fullmatch(r"system tests failed: (l3-[0-9a-f]{8}-catalog-test)", body["text"]).groups()
    assert body["fields"]["failed tests"] == failed and body["owner"] == "dora"
    assert body["dag_id"] == "l3_gate" and body["run_id"]
