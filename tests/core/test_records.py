"""The record models (stackyard.core.records): one writer, one reader, and old records stay readable.

``records_v0/`` holds records exactly as stackyard wrote them before records carried a
``schema_version`` (commit 0a471c2, through the real stores). Reading them must give the values
they were written with; writing a record must keep the same JSON fields (plus the version).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from stackyard.adapters.manifest_store import open_manifest_store
from stackyard.adapters.record_store import open_record_store
from stackyard.core.records import (
    SCHEMA_VERSION, EventKind, GateOutcome, GateReport, RecordKind, ReaperReport, RejectionReport, RolloutRecord,
    RolloutStatus, StackEvent,
)
from stackyard.exceptions import InputError

V0 = Path(__file__).with_name("records_v0")
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def v0(tmp_path: Path) -> Path:
    copy = tmp_path / "v0"
    shutil.copytree(V0, copy)
    return copy


def raw(path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(path.glob("*.json"))]


def test_unversioned_rollout_records_read_with_their_values(v0):
    records = open_record_store(str(v0 / "records"))
    canary, upgrade = [s.record for s in records.read("stacks/qa1/rollouts", RolloutRecord)]  # newest first
    assert upgrade.schema_version == SCHEMA_VERSION  # read into the current schema
    assert (upgrade.stack, upgrade.type, upgrade.dag_id, upgrade.namespace, upgrade.profile) == (
        "qa1", "persistent", "rollout_qa1", "qa1", "qa1")
    assert (upgrade.service, upgrade.from_version, upgrade.to_version, upgrade.action, upgrade.manifest_version) == (
        "orders", "1.0.0", "1.1.0", "upgrade", 4)
    assert upgrade.status is RolloutStatus.SUCCEEDED and not upgrade.failed
    assert upgrade.started == T0 and (upgrade.finished - T0).total_seconds() == 30
    assert (upgrade.values_digest, upgrade.revision, upgrade.triggered_by) == ("sha256:" + "a" * 64, 3, "alice")
    assert upgrade.reason == "deployed, ready and tested" and upgrade.canary is None
    assert canary.status is RolloutStatus.CANARY_ABORTED and canary.failed and canary.from_version is None
    assert canary.canary.release == "catalog-canary" and canary.canary.state == "aborted"


def test_unversioned_stack_events_read_with_their_details(v0):
    records = open_record_store(str(v0 / "records"))
    events = [s.record for s in reversed(records.read("stacks/alice-demo/events", StackEvent))]
    assert [e.event for e in events] == [EventKind.CREATED, EventKind.READY, EventKind.TOUCHED, EventKind.DESTROYED]
    created, ready, touched, destroyed = events
    assert (created.owner, created.manifest_version, created.profile, created.ttl) == ("alice", 3, "ephemeral", "7d")
    assert {s: (c.from_version, c.to) for s, c in created.overrides.items()} == {"orders": ("1.0.0", "1.2.0")}
    assert (created.run_id, created.dag_id, created.at) == ("manual__c1", "stack_create", T0.replace(minute=2))
    assert (ready.release, ready.revision, ready.chart_ref) == ("stack", 1, "l3:3.0.0-overrides-7dfaccb4669c")
    assert touched.ttl == "3d" and destroyed.releases == ["stack"]
    failed_create, = [s.record for s in records.read("stacks/bob-demo/events", StackEvent)]
    assert failed_create.reason == "stack_create failed (see its deploy log)" and failed_create.owner is None
    reaped, = [s.record for s in records.read("stacks/old-demo/events", StackEvent)]
    assert reaped.event is EventKind.REAPED and reaped.outcome == "deleted"


def test_an_unversioned_reaper_report_reads_and_links_to_the_reaper_dag(v0):
    records = open_record_store(str(v0 / "records"))
    report, = [s.record for s in records.read("reaper/runs", ReaperReport)]
    # Only ephemeral_reaper ever wrote reaper reports: a fact, so the old record links to it.
    assert (report.dag_id, report.run_id) == ("ephemeral_reaper", "scheduled__n1")
    assert report.counts.deleted == 1 and report.counts.failed == 1 and report.counts.kept == 1
    assert [e.name for e in report.deleted] == ["old-demo"] and report.deleted[0].outcome == "deleted"
    assert report.failed[0].detail == "403 Forbidden" and report.kept[0].time_left_seconds > 0


def test_unversioned_gate_reports_and_rejections_read_with_their_values(v0):
    store = open_manifest_store(str(v0 / "manifests"))
    promoted, = store.reports(2)
    assert promoted.kind is RecordKind.REPORT and isinstance(promoted.report, GateReport)
    report = promoted.report
    assert report.outcome is GateOutcome.PROMOTED and report.before.version == 1 and report.after.version == 2
    assert report.tests.passed is True and report.tests.failed == [] and report.reason is None
    assert report.change.service == "orders" and report.change.to_version == "1.1.0"
    assert report.teardown.action == "deleted" and report.duration_seconds == 95.2 and report.run_id == "manual__g1"
    rejection, = store.rejections()
    assert rejection.reason == "system tests failed: l3-catalog-test" and rejection.candidate.version == 3
    assert isinstance(rejection.report, RejectionReport)
    assert rejection.report.failed_tests == ["l3-catalog-test"] and "Phase:          Failed" in rejection.report.test_output
    rejected, = store.reports(rejection.candidate.candidate_id)
    assert rejected.report.outcome is GateOutcome.REJECTED and rejected.report.tests.failed == ["l3-catalog-test"]


@pytest.mark.parametrize("stream, model", [
    ("stacks/qa1/rollouts", RolloutRecord), ("stacks/alice-demo/events", StackEvent), ("reaper/runs", ReaperReport),
])
def test_the_writer_keeps_the_stored_fields_and_adds_only_the_schema_version(v0, stream, model):
    for data in raw(v0 / "records" / stream):
        written = model.from_json(data["data"]).to_json()
        if model is ReaperReport:
            assert written.pop("dag_id") == "ephemeral_reaper"  # the one field version 1 added
        assert written == {**data["data"], "schema_version": SCHEMA_VERSION}


def test_the_gate_writer_keeps_the_stored_fields(v0):
    for path in sorted((v0 / "manifests").glob("r*/**/*.json")):
        data = json.loads(path.read_text())
        model = GateReport if data["kind"] == "report" else RejectionReport
        assert model.from_json(data["report"]).to_json() == {**data["report"], "schema_version": SCHEMA_VERSION}


def test_a_newer_schema_version_is_refused_naming_the_record():
    with pytest.raises(InputError, match=r"stacks/x: schema_version 7 is not one this stackyard reads"):
        StackEvent.from_json({"schema_version": 7, "event": "created"}, "stacks/x")


def test_unknown_and_missing_fields_are_refused_by_name():
    good = {"event": "touched", "stack": "a", "run_id": "r", "dag_id": "stack_touch", "at": "2026-11-26T12:00:00Z"}
    assert StackEvent.from_json(good).event is EventKind.TOUCHED
    with pytest.raises(InputError, match=r"values: Extra inputs are not permitted"):
        StackEvent.from_json({**good, "values": {"password": "x"}})
    with pytest.raises(InputError, match=r"run_id: Field required"):
        StackEvent.from_json({k: v for k, v in good.items() if k != "run_id"})
    with pytest.raises(InputError, match=r"at: Input should have timezone info"):
        StackEvent.from_json({**good, "at": "2026-11-26T12:00:00"})


def test_a_typed_record_round_trips_through_the_record_store(tmp_path):
    records = open_record_store(str(tmp_path), clock=lambda: T0)
    event = StackEvent(event=EventKind.CREATED, stack="alice-demo", run_id="r", dag_id="stack_create", at=T0,
                       owner="alice", overrides={})
    stored = records.write(event)
    assert stored.key.startswith("stacks/alice-demo/events/")
    back, = records.read("stacks/alice-demo/events", StackEvent)
    assert back.record == event and back.recorded == T0
    assert json.loads((tmp_path / stored.key).read_text())["data"] == {
        "event": "created", "stack": "alice-demo", "run_id": "r", "dag_id": "stack_create",
        "at": "2026-11-26T12:00:00Z", "owner": "alice", "overrides": {}, "schema_version": 1}


def test_a_release_recovery_is_a_typed_stack_event_with_both_holders(tmp_path):
    # What ReleaseGuard records when it puts back a release an interrupted operation left pending.
    holder = {"dag_id": "rollout_qa1", "run_id": "r2", "task_id": "deploy", "try_number": 2, "pid": 7, "host": "w1"}
    event = StackEvent(event="release_recovered", stack="qa1", dag_id="rollout_qa1", run_id="r2", at=T0,
                       release="orders", namespace="qa1", before="upgrade", action="rollback", pending_revision=4,
                       pending_status="pending-upgrade", to_revision=3, reason="interrupted",
                       interrupted_by={**holder, "run_id": "r1", "try_number": 1}, recovered_by=holder)
    records = open_record_store(str(tmp_path), clock=lambda: T0)
    records.write(event)
    back, = records.read("stacks/qa1/events", StackEvent)
    assert back.record == event and back.record.event is EventKind.RELEASE_RECOVERED
    assert back.record.interrupted_by.run_id == "r1" and back.record.recovered_by.try_number == 2


def test_a_bad_record_is_reported_or_left_out_on_request(tmp_path):
    records = open_record_store(str(tmp_path))
    records.append("reaper/runs", {"run_id": "r1"})
    with pytest.raises(InputError, match=r"reaper/runs/.*\.json: not a valid ReaperReport: at: Field required"):
        records.read("reaper/runs", ReaperReport)
    seen = []
    assert records.read("reaper/runs", ReaperReport, on_invalid=lambda key, error: seen.append(key)) == []
    assert len(seen) == 1


def test_a_canary_record_of_the_first_form_and_one_with_a_weight_history_both_read():
    from stackyard.core.fleet import canary_summary

    base = {"stack": "prod", "type": "production", "dag_id": "rollout_prod", "namespace": "prod",
            "profile": "production", "service": "orders", "from_version": "1.0.0", "to_version": "1.1.0",
            "action": "upgrade", "manifest_version": 3, "run_id": "r1", "started": "2026-11-26T12:00:00Z",
            "finished": "2026-11-26T12:01:00Z", "schema_version": 1}
    old = RolloutRecord.from_json({**base, "status": "succeeded", "canary": {
        "release": "orders-canary", "weight": 10, "check": "none", "state": "promoted", "check_detail": "chart tests"}})
    assert old.canary.history == () and canary_summary(old.canary) == {
        "release": "orders-canary", "weight": 10, "state": "promoted"}
    line = {"time": "2026-11-26T12:00:10Z", "kind": "check", "weight": 25, "run_id": "r1#1", "reason": "observed",
            "checks": [{"name": "errors", "passed": True, "value": 0.01, "threshold": 0.05, "message": "ok"}]}
    new = RolloutRecord.from_json({**base, "status": "canary_running", "canary": {
        "release": "orders-canary", "weight": 25, "check": "errors", "provider": "gateway-api", "state": "running",
        "history": [line]}})
    assert new.to_json()["canary"]["history"] == [line]
    assert not new.failed and old.failed is False  # a running canary has not failed: stable still serves
    assert canary_summary(new.canary)["history"][0]["checks"][0]["value"] == 0.01
    with pytest.raises(InputError, match="canary.history.0.weight"):
        RolloutRecord.from_json({**base, "status": "canary_running", "canary": {
            "release": "orders-canary", "weight": 25, "check": "errors", "history": [{**line, "weight": 250}]}})
