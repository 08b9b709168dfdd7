"""The reaper warns owners the day before their stack goes, and alerts when a deletion fails."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from stackyard.airflow.stores import record_store_for
from stackyard.core import ephemeral as S
from stackyard.settings import Settings
from stackyard.steps.fleet import Fleet

from tests.e2e.conftest import run_dag
from tests.e2e.test_stacks import EPHEMERAL, made_by_stackyard, remove
from tests.support.webhook import Receiver

pytestmark = pytest.mark.slow


def stamp(**ago) -> str:
    return S.timestamp(datetime.now(timezone.utc) - timedelta(**ago))


@pytest.fixture
def receiver(monkeypatch):
    receiver = Receiver()
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": f"http://127.0.0.1:{receiver.port}", "extra": {"format": "json"}}))
    yield receiver
    receiver.server.shutdown()


def test_owner_is_warned_the_day_before_and_a_failed_deletion_is_alerted(local_stack, dagbag, receiver, sandbox):
    # Stacks stackyard provably made (a "created" record, then the namespace): only those are reaped.
    made_by_stackyard(local_stack, "w-soon", EPHEMERAL, {S.ANNOTATION_LAST_ACTIVITY: stamp(days=6, hours=12),
                                                         S.ANNOTATION_TTL: "7d", S.ANNOTATION_OWNER: "frank"})
    made_by_stackyard(local_stack, "w-later", EPHEMERAL, {S.ANNOTATION_LAST_ACTIVITY: stamp(days=1), S.ANNOTATION_TTL: "7d"})
    made_by_stackyard(local_stack, "w-stale", EPHEMERAL, {S.ANNOTATION_LAST_ACTIVITY: stamp(days=9), S.ANNOTATION_TTL: "7d"})
    sandbox.faults.fail(verb="delete", resource="namespaces", name="w-stale", status=500, times=10)
    try:
        state, _ = run_dag(dagbag, "ephemeral_reaper", {"dry_run": False, "max_deletions": 20})
    finally:
        sandbox.faults.clear()
        for name in ("w-soon", "w-later", "w-stale"):
            remove(local_stack, name)

    assert state == "failed"
    bodies = {body["kind"]: body for _, _, body in receiver.requests}
    assert set(bodies) == {"stack_expiring", "reaper_failed"}
    warning = bodies["stack_expiring"]
    assert warning["owner"] == "frank" and warning["fields"]["stack"] == "w-soon"
    assert "w-stale" in bodies["reaper_failed"]["text"] and bodies["reaper_failed"]["dag_id"] == "ephemeral_reaper"

    # The Stacks view links "last reaper run" to the run that wrote the report: a DAG that exists.
    view = Fleet(manifest_store=local_stack.store, record_store=record_store_for(Settings.from_env()),
                 cluster=None, stacks_file=None).ephemeral()
    link = view["last_reaper_run"]["run"]
    assert link["dag_id"] in dagbag.dag_ids and link["dag_id"] == "ephemeral_reaper" and link["run_id"]
