"""The Stacks view's pure rules (stackyard.core.fleet), one named case per rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stackyard.core.charts import split_chart
from stackyard.core.fleet import (
    CellState, ClusterState, NamespaceRow, ReleaseRow, ServiceLineage, StackSpec, cell_state,
    UmbrellaVersion, deployed_services, ephemeral_view, fleet_matrix, lineages, persistent_view, stack_overrides,
    umbrella_manifest_version, rejection_text, l3_history, Rejection, stack_detail, stack_status,
)
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose
from stackyard.core.records import ReaperReport, RolloutRecord, StackEvent, Stored

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)  # a Wednesday


def history(*bumps: tuple[str, str]) -> list[Manifest]:
    seed = Manifest.initial({"catalog": ServicePin("1.0.0"), "orders": ServicePin("1.0.0")}, NOW, Provenance(None, "t", None))
    out = [seed]
    for index, (service, version) in enumerate(bumps):
        out.append(propose(out[-1], service, version, None, NOW + timedelta(minutes=index), Provenance(f"run-{index}", "bob", None)))
    return out


def rollout(service: str, to_version: str, status: str, *, dag_id: str = "rollout_qa1", run_id: str = "r1",
            at: datetime = NOW) -> Stored[RolloutRecord]:
    return Stored(at, RolloutRecord(
        stack="qa1", type="persistent", dag_id=dag_id, namespace="qa1", profile="qa1", service=service,
        from_version="1.0.0", to_version=to_version, action="upgrade", manifest_version=2, run_id=run_id,
        status=status, started=at, finished=at))


def reaper_run(run_id: str, *, deleted=(), failed=(), dag_id: str = "ephemeral_reaper") -> Stored[ReaperReport]:
    entries = {"deleted": [{"name": n, "action": "delete", "reason": r} for n, r in deleted],
               "failed": [{"name": n, "action": "delete", "reason": r, "detail": d} for n, r, d in failed]}
    return Stored(NOW, ReaperReport(
        dag_id=dag_id, run_id=run_id, at=NOW, dry_run=False, max_deletions=20, selector="x", **entries,
        counts={"deleted": len(deleted), "would_delete": 0, "kept": 0, "skipped": 0, "failed": len(failed)}))


LINE = ServiceLineage(("1.0.0", "1.1.0", "1.2.0"), "1.2.0", None)


@pytest.mark.parametrize("deployed, lineage, failed, known, expected", [
    ("1.2.0", LINE, False, False, (CellState.UNKNOWN, None)),      # unknown cluster beats everything
    ("1.2.0", LINE, True, True, (CellState.FAILED, None)),         # failed last rollout beats versions
    (None, LINE, False, True, (CellState.NOT_DEPLOYED, None)),
    ("1.0.0", None, False, True, (CellState.NOT_IN_L3, None)),
    ("1.2.0+build7", LINE, False, True, (CellState.SAME, None)),   # build metadata has no precedence
    ("1.0.0", LINE, False, True, (CellState.BEHIND, 2)),           # behind by the L3 versions in between
    ("1.1.5", LINE, False, True, (CellState.BEHIND, 1)),           # a version L3 never pinned
    ("2.0.0", LINE, False, True, (CellState.AHEAD, None)),
])
def test_cell_state_rules(deployed, lineage, failed, known, expected):
    assert cell_state(deployed, lineage, failed=failed, cluster_known=known) == expected


@pytest.mark.parametrize("chart, expected", [
    ("orders-1.2.0", ("orders", "1.2.0")),
    ("my-service-10.0.1", ("my-service", "10.0.1")),
    ("l3-6.0.0-candidate-ab12cd34ef56", ("l3", "6.0.0-candidate-ab12cd34ef56")),
    ("weird", ("weird", None)),
    ("svc-299-1.0.0", ("svc-299", "1.0.0")),  # a numeric name segment is not a short version
    ("orders-1.0.0-rc-1", ("orders", "1.0.0-rc-1")),
    ("app-v1.2", ("app", "v1.2")),  # a short version when nothing longer fits
])
def test_split_chart_handles_hyphens_in_names_and_versions(chart, expected):
    assert split_chart(chart) == expected


def test_lineage_counts_versions_and_remembers_who_introduced_the_pin():
    line = lineages(history(("orders", "1.1.0"), ("catalog", "1.1.0"), ("orders", "1.2.0")))
    assert line["orders"].versions == ("1.0.0", "1.1.0", "1.2.0")
    assert line["orders"].introduced_by == {"dag_id": "l3_gate", "run_id": "run-2"}
    assert line["catalog"].introduced_by == {"dag_id": "l3_gate", "run_id": "run-1"}


def test_umbrella_release_expands_to_the_pins_of_its_manifest_or_candidate():
    hist = history(("orders", "1.1.0"))
    candidate = propose(hist[-1], "catalog", "2.0.0", None, NOW, Provenance("r", None, None))
    releases = [
        ReleaseRow("l3", "a", "deployed", "l3-2.0.0"),
        ReleaseRow("l3", "b", "failed", f"l3-3.0.0-candidate-{candidate.candidate_id[:12]}"),
        ReleaseRow("orders", "a", "deployed", "orders-1.3.0"),  # a service's own release wins
    ]
    manifests = {m.version: m for m in hist}
    a = deployed_services([r for r in releases if r.namespace == "a"], manifests)
    b = deployed_services([r for r in releases if r.namespace == "b"], manifests, [candidate])
    assert a == {"catalog": {"version": "1.0.0", "status": "deployed", "release": "l3"},
                 "orders": {"version": "1.3.0", "status": "deployed", "release": "orders"}}
    assert b["catalog"] == {"version": "2.0.0", "status": "failed", "release": "l3"}


def ns(name, kind, **annotations):
    return NamespaceRow(name, {"app.kubernetes.io/managed-by": "stackyard", "stackyard.io/stack-type": kind,
                               "stackyard.io/owner": "alice"}, annotations)


def test_matrix_l3_column_first_then_production_persistent_ephemeral_and_failed_rollouts():
    hist = history(("orders", "1.1.0"))
    cluster = ClusterState(
        (ns("zz-eph", "ephemeral"), ns("qa1", "persistent"), ns("prod", "production")),
        (ReleaseRow("orders", "qa1", "deployed", "orders-1.0.0"), ReleaseRow("catalog", "prod", "deployed", "catalog-1.0.0")),
        NOW,
    )
    rollouts = {"qa1": [rollout("catalog", "1.1.0", "rolled_back", dag_id="rollout", run_id="r9")]}
    matrix = fleet_matrix(history=hist, cluster=cluster, rollouts=rollouts)
    assert [c["name"] for c in matrix["columns"]] == ["L3", "prod", "qa1", "zz-eph"]
    rows = {row["service"]: row["cells"] for row in matrix["rows"]}
    assert rows["orders"][0] == {"version": "1.1.0", "state": "same", "run": {"dag_id": "l3_gate", "run_id": "run-0"}}
    assert rows["orders"][2]["state"] == "behind" and rows["orders"][2]["behind"] == 1
    assert rows["catalog"][2]["state"] == "failed"
    assert rows["catalog"][2]["last_rollout"]["run"] == {"dag_id": "rollout", "run_id": "r9"}
    assert rows["catalog"][1]["state"] == "same" and rows["orders"][3]["state"] == "not-deployed"


def test_a_canary_still_running_is_not_a_failed_cell():
    cluster = ClusterState((ns("qa1", "persistent"),), (ReleaseRow("orders", "qa1", "deployed", "orders-1.0.0"),), NOW)
    matrix = fleet_matrix(history=history(("orders", "1.1.0")), cluster=cluster,
                          rollouts={"qa1": [rollout("orders", "1.1.0", "canary_running")]})
    cell = {row["service"]: row["cells"] for row in matrix["rows"]}["orders"][1]
    assert cell["state"] == "behind" and cell["last_rollout"]["outcome"] == "canary_running"
    assert cell["last_rollout"]["failed"] is False


def test_matrix_without_a_cluster_claims_nothing_about_stacks():
    matrix = fleet_matrix(history=history(), cluster=None, rollouts={}, specs=[StackSpec("qa1")])
    assert {cell["state"] for row in matrix["rows"] for cell in row["cells"][1:]} == {"unknown"}


def test_ephemeral_view_time_left_and_last_reaper_run():
    cluster = ClusterState((ns("alice-demo", "ephemeral", **{"stackyard.io/ttl": "1d", "stackyard.io/last-activity": "2026-03-04T04:00:00Z"}),
                            ns("bad-ttl", "ephemeral", **{"stackyard.io/ttl": "forever"})), (), NOW)
    reaper = [reaper_run("r1", deleted=[("old", "idle 8d0h")])]
    view = ephemeral_view(cluster, {}, reaper, NOW)
    stacks = {s["name"]: s for s in view["stacks"]}
    assert stacks["alice-demo"]["seconds_left"] == 18 * 3600
    assert "does not parse" in stacks["bad-ttl"]["note"] and "seconds_left" not in stacks["bad-ttl"]
    assert view["last_reaper_run"]["deleted"] == [{"name": "old", "reason": "idle 8d0h"}]  # only named fields
    assert view["last_reaper_run"]["run"] == {"dag_id": "ephemeral_reaper", "run_id": "r1"}  # the reaper's own DAG


REGISTRY = """
stacks:
  qa1:
    owner: qa-team
    type: persistent
    profile: qa1
    schedule: "0 6 * * *"
    windows:
      timezone: UTC
      allow: [{days: [mon, tue], hours: "06:00-08:00"}]
  prod:
    owner: release
    type: production
    profile: production
    schedule: null
    source: {healthy_on: qa1, for_hours: 24}
    triggerers: {roles: [release-managers]}
"""


def test_persistent_view_uses_the_rollouts_window_rule_and_next_cadence():
    from stackyard.core.stack_registry import load_registry

    registry = load_registry(REGISTRY)
    assert registry.errors == {}
    specs = [StackSpec(s.name, s.kind.value, s.owner, s.profile, s.schedule, windows=s.windows, declared=True)
             for s in registry.stacks.values()]
    undeclared = ClusterState((ns("legacy", "persistent"),), (), NOW)
    view = {s["name"]: s for s in persistent_view(specs, undeclared, {}, NOW)}
    assert view["qa1"]["next_rollout"] == "2026-03-05T06:00:00Z"
    assert view["qa1"]["window_state"] == "closed" and view["qa1"]["window_reason"]
    assert view["prod"]["window_state"] == "open" and "next_rollout" not in view["prod"]
    assert view["legacy"]["window_state"] == "unknown"  # on the cluster, not in the registry


# --- personal stacks with overrides (the umbrella l3-N.0.0-overrides-<hash>) ----------------------


def created_event(overrides, *, stack="alice-dev", at=NOW):
    return Stored(at, StackEvent(event="created", stack=stack, run_id="c1", dag_id="stack_create", at=at,
                                 owner="alice", manifest_version=2, overrides=overrides))


def test_an_overrides_umbrella_deploys_its_manifest_pins_with_the_recorded_overrides_marked():
    hist = history(("orders", "1.1.0"))
    cluster = ClusterState((ns("alice-dev", "ephemeral"),),
                           (ReleaseRow("l3", "alice-dev", "deployed", "l3-2.0.0-overrides-7dfaccb4669c"),), NOW)
    events = {"alice-dev": [created_event({"orders": {"from": "1.1.0", "to": "1.0.0"}})]}
    matrix = fleet_matrix(history=hist, cluster=cluster, rollouts={}, events=events)
    rows = {row["service"]: row["cells"][1] for row in matrix["rows"]}
    assert rows["orders"]["version"] == "1.0.0" and rows["orders"]["state"] == "behind"
    assert rows["orders"]["override"] == {"from": "1.1.0", "to": "1.0.0"}
    assert rows["catalog"]["version"] == "1.0.0" and rows["catalog"]["state"] == "same" and "override" not in rows["catalog"]
    view = ephemeral_view(cluster, events, [], NOW)
    assert view["stacks"][0]["overrides"] == {"orders": "1.0.0"}


def test_an_overrides_umbrella_without_its_created_record_claims_no_versions():
    hist = history(("orders", "1.1.0"))
    cluster = ClusterState((ns("alice-dev", "ephemeral"),),
                           (ReleaseRow("l3", "alice-dev", "deployed", "l3-2.0.0-overrides-7dfaccb4669c"),), NOW)
    matrix = fleet_matrix(history=hist, cluster=cluster, rollouts={})
    cells = [row["cells"][1] for row in matrix["rows"]]
    assert {c["state"] for c in cells} == {"unknown"} and all("version" not in c for c in cells)


@pytest.mark.parametrize("version, expected", [
    ("2.0.0", UmbrellaVersion(2)),
    ("3.0.0-candidate-ab12cd34ef56", UmbrellaVersion(3, candidate="ab12cd34ef56")),
    ("2.0.0-overrides-7dfaccb4669c", UmbrellaVersion(2, overrides="7dfaccb4669c")),
    ("2.1.0", None),
    ("2.0.0-rc1", None),
])
def test_umbrella_versions_the_gate_and_personal_stacks_publish(version, expected):
    assert umbrella_manifest_version(version) == expected


def test_a_stacks_overrides_are_its_latest_created_events():
    first = created_event({"orders": {"from": "1.1.0", "to": "1.0.0"}})
    again = created_event({"orders": {"from": None, "to": "0.9.0"}}, at=NOW + timedelta(hours=1))  # re-created
    touched = Stored(NOW + timedelta(hours=2), StackEvent(event="touched", stack="alice-dev", run_id="t1",
                                                          dag_id="stack_touch", at=NOW + timedelta(hours=2), ttl="1d"))
    assert stack_overrides([first, again, touched]) == {"orders": {"from": None, "to": "0.9.0"}}
    assert stack_overrides([created_event(None)]) is None and stack_overrides([touched]) is None


@pytest.mark.parametrize("paused, expected_next, expected_paused", [
    ({"qa1": True}, None, True),                        # a paused rollout DAG never fires: no next rollout
    ({"qa1": False}, "2026-03-05T06:00:00Z", False),
    (None, "2026-03-05T06:00:00Z", None),               # Airflow not asked: the cadence, nothing claimed
])
def test_next_rollout_is_not_shown_for_a_paused_rollout_dag(paused, expected_next, expected_paused):
    specs = [StackSpec("qa1", "persistent", "alice", cadence="0 6 * * *", declared=True)]
    view = persistent_view(specs, None, {}, NOW, paused=paused)[0]
    assert view.get("next_rollout") == expected_next and view.get("paused") == expected_paused


@pytest.mark.parametrize("reason, failed, expected", [
    ("system tests failed: l3-orders-test", ["l3-orders-test"], "system tests failed: l3-orders-test"),  # named once
    ("system tests failed: a, b", ["a", "b", "b"], "system tests failed: a, b"),
    ("deploy failed", ["l3-orders-test"], "deploy failed (l3-orders-test)"),  # a test the reason does not name
    ("system tests failed: l3-orders-test-slow", ["l3-orders-test"], "system tests failed: l3-orders-test-slow (l3-orders-test)"),
    (None, [], "rejected"),
])
def test_a_rejection_names_each_failed_test_once(reason, failed, expected):
    assert rejection_text(reason, failed) == expected


def test_l3_history_rejection_summary_does_not_repeat_the_failed_test():
    hist = history(("orders", "1.1.0"))
    candidate = propose(hist[-1], "catalog", "1.1.0", None, NOW, Provenance("gate-3", "carol", None))
    entries = l3_history(hist, {}, [Rejection(candidate, "system tests failed: l3-catalog-test", NOW + timedelta(hours=1),
                                              ("l3-catalog-test",))])
    assert entries[0]["kind"] == "rejected" and entries[0]["summary"].count("l3-catalog-test") == 1


def test_a_stack_page_without_the_cluster_claims_no_health_and_no_drift():
    matrix = fleet_matrix(history=history(), cluster=None, rollouts={"qa1": [rollout("orders", "1.0.0", "succeeded")]})
    status = stack_status("qa1", matrix, [], [])
    page = stack_detail(status, namespace="qa1", objects=None, warnings=[], deployed={}, releases=None, live=None,
                        compared_kinds=set())
    assert {(s["name"], s["health"], s["drift"]) for s in page["services"]} == {
        ("orders", "unknown", "unknown"), ("catalog", "unknown", "unknown")}
    assert page["health"] == "unknown" and page["drift"] == "unknown" and page["resources"] is None


def test_ephemeral_view_shows_each_override_as_the_version_the_stack_runs():
    cluster = ClusterState((ns("alice-demo", "ephemeral"),), (), NOW)
    created = StackEvent(event="created", stack="alice-demo", run_id="r", dag_id="stack_create", at=NOW,
                         overrides={"orders": {"from": "1.0.0", "to": "1.2.0"}, "search": {"from": None, "to": "0.1.0"}})
    view = ephemeral_view(cluster, {"alice-demo": [Stored(NOW, created)]}, [], NOW)
    assert view["stacks"][0]["overrides"] == {"orders": "1.2.0", "search": "0.1.0"}
