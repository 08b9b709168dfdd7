"""Readable runs: stack and rollout runs end with a note saying what they did (set by the
stackyard listener when the run ends), here through ``dag.test()`` on the kube sandbox."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import fresh_dag

pytestmark = pytest.mark.slow


def note_of(run) -> str | None:
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.scalars(select(DagRun).where(DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id)).one()
        return found.note


def test_stack_runs_say_what_they_did(local_stack, dagbag):
    seeded = local_stack.seed()
    local_stack.publish("orders", "0.9.0")
    created = fresh_dag(dagbag, "stack_create").test(run_conf={
        "name": "note-dev", "owner": "alice", "ttl_days": 3, "manifest_version": None,
        "overrides": {"orders": "0.9.0"}, "profile": "ephemeral"})
    assert created.state == "success"
    assert note_of(created) == (f"note-dev created: L3 v{seeded.version} + orders 1.0.0 → 0.9.0 "
                                f"(l3:{seeded.version}.0.0-overrides-" ) + note_of(created).split("-overrides-")[1]
    touched = fresh_dag(dagbag, "stack_touch").test(run_conf={"name": "note-dev", "ttl_days": 5})
    assert note_of(touched) == "note-dev touched: TTL 5d"
    destroyed = fresh_dag(dagbag, "stack_destroy").test(run_conf={"name": "note-dev"})
    assert note_of(destroyed) == "note-dev destroyed (releases: note-dev)"
    refused = fresh_dag(dagbag, "stack_destroy").test(run_conf={"name": "note-dev"})
    assert refused.state == "failed" and note_of(refused) == "failed at check"


def test_gate_runs_say_what_they_gated_and_how_they_ended(local_stack, dagbag):
    seeded = local_stack.seed()
    local_stack.publish("orders", "1.1.0")
    local_stack.publish("catalog", "1.1.0", failing_test=True)
    promoted = fresh_dag(dagbag, "l3_gate").test(run_conf={"service": "orders", "chart_version": "1.1.0"})
    assert promoted.state == "success"
    assert note_of(promoted) == f"orders 1.1.0 → promoted, L3 v{seeded.version + 1}"
    rejected = fresh_dag(dagbag, "l3_gate").test(run_conf={"service": "catalog", "chart_version": "1.1.0"})
    assert rejected.state == "failed"
    assert note_of(rejected).startswith("catalog 1.1.0 → rejected: system tests failed: ")
    refused = fresh_dag(dagbag, "l3_gate").test(run_conf={"service": "orders", "chart_version": "9.9.9"})
    assert note_of(refused).startswith("orders 9.9.9 → refused: chart_version: orders 9.9.9 is not in the registry")
