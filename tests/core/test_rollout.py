"""Rollout decisions: plans, deployment windows, the production quality level, the canary machine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stackyard.core.records import RolloutRecord
from stackyard.core.rollout import (
    Deployed, PlanStep, RolloutStatus, Target, canary_release, canary_values,
    deployed_services, failed_before, make_plan, qualified_targets, release_service, rollout_record,
    service_release,
    window_decision,
)
from stackyard.core.stack_registry import HealthySource, parse_stack
from stackyard.exceptions import InputError

QA = parse_stack("qa1", {"owner": "team-qa", "type": "persistent", "profile": "qa1"})
LISTED = parse_stack("qa2", {"owner": "team-qa", "type": "persistent", "profile": "qa1",
                             "services": ["storefront", {"name": "orders", "canary": True}]})
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)  # a Thursday


def deployed(service: str, version: str, status: str = "deployed", chart: str | None = None) -> Deployed:
    return Deployed(service, chart or service, version, 3, status)


def targets(**versions: str) -> dict[str, Target]:
    return {name: Target(version, 7) for name, version in versions.items()}


# --- plans -------------------------------------------------------------------------------------------


def test_all_services_are_planned_alphabetically_one_step_each():
    plan = make_plan(QA, targets(orders="1.1.0", catalog="1.2.0", storefront="1.0.0"),
                     {"orders": deployed("orders", "1.0.0"), "storefront": deployed("storefront", "1.0.0")})
    assert [(s.service, s.from_version, s.to_version, s.action) for s in plan.steps] == [
        ("catalog", None, "1.2.0", "install"), ("orders", "1.0.0", "1.1.0", "upgrade")]
    assert plan.steps[0].manifest_version == 7


def test_a_listed_stack_follows_its_list_order_and_canary_flags():
    plan = make_plan(LISTED, targets(orders="2.0.0", storefront="2.0.0", catalog="9.0.0"), {})
    assert [(s.service, s.canary) for s in plan.steps] == [("storefront", False), ("orders", True)]


def test_up_to_date_is_an_empty_plan_that_says_so():
    plan = make_plan(QA, targets(orders="1.0.0"), {"orders": deployed("orders", "1.0.0")})
    assert plan.steps == ()
    assert plan.summary().startswith("stack qa1 is up to date with the latest L3 manifest")


def test_a_failed_release_at_the_target_version_is_repaired():
    plan = make_plan(QA, targets(orders="1.0.0"), {"orders": deployed("orders", "1.0.0", status="failed")})
    assert [s.action for s in plan.steps] == ["repair"]


def test_downgrades_follow_l3_but_are_held_when_not_allowed():
    state = {"orders": deployed("orders", "1.2.0")}
    assert [s.action for s in make_plan(QA, targets(orders="1.1.0"), state).steps] == ["downgrade"]
    held = make_plan(QA, targets(orders="1.1.0"), state, allow_downgrade=False)
    assert held.steps == () and "not downgraded automatically" in dict(held.held)["orders"]


def test_services_missing_from_the_source_are_held_and_unknown_releases_left_alone():
    plan = make_plan(LISTED, targets(storefront="1.0.0"), {"legacy-billing": deployed("legacy-billing", "0.9.0")})
    assert dict(plan.held) == {"orders": "not in the source"}
    assert plan.unmanaged == ("legacy-billing",)
    assert "left as they are (not in the source): legacy-billing" in plan.summary()


def test_canary_releases_are_not_services():
    releases = [deployed("orders", "1.0.0"), deployed("orders-canary", "1.1.0", chart="orders")]
    assert list(deployed_services(releases)) == ["orders"]


def test_plan_steps_round_trip_through_xcom_dicts():
    step = PlanStep("orders", "1.0.0", "1.1.0", "upgrade", True, 4)
    assert PlanStep.from_dict(step.to_dict()) == step
    assert step.to_dict()["chart_ref"] == "orders:1.1.0"


# --- windows -----------------------------------------------------------------------------------------


def windows(**spec):
    return parse_stack("w", {"owner": "o", "type": "persistent", "profile": "qa1", "windows": spec}).windows


BERLIN_OFFICE = windows(timezone="Europe/Berlin", allow=[{"days": ["mon", "tue", "wed", "thu"], "hours": "09:00-16:00"}],
                        freeze=["2026-12-18..2027-01-06", "2027-03-31"])


@pytest.mark.parametrize(
    "moment, is_open, words",
    [
        (datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc), True, "inside the deployment window mon,tue,wed,thu 09:00-16:00"),
        # 08:30 UTC is 09:30 in Berlin (CET, UTC+1): the time zone decides, not UTC.
        (datetime(2026, 11, 26, 8, 30, tzinfo=timezone.utc), True, "Thu 2026-11-26 09:30 Europe/Berlin"),
        (datetime(2026, 11, 26, 7, 59, tzinfo=timezone.utc), False, "outside the deployment windows"),
        (datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc), False, "now is Thu 2026-11-26 16:00 Europe/Berlin"),
        (datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc), False, "now is Fri 2026-11-27 11:00"),
        # Summer time: 07:30 UTC is 09:30 CEST.
        (datetime(2026, 6, 4, 7, 30, tzinfo=timezone.utc), True, "09:30 Europe/Berlin"),
        (datetime(2026, 12, 22, 10, 0, tzinfo=timezone.utc), False, "freeze 2026-12-18..2027-01-06"),
        (datetime(2027, 3, 31, 10, 0, tzinfo=timezone.utc), False, "freeze 2027-03-31"),
        # 23:30 UTC on 30 March is already 31 March in Berlin: frozen.
        (datetime(2027, 3, 30, 23, 30, tzinfo=timezone.utc), False, "freeze 2027-03-31"),
    ],
)
def test_deployment_window(moment, is_open, words):
    decision = window_decision(BERLIN_OFFICE, moment)
    assert decision.open is is_open
    assert words in decision.reason


@pytest.mark.parametrize(
    "moment, is_open",
    [
        (datetime(2026, 11, 27, 23, 0, tzinfo=timezone.utc), True),   # Friday 23:00
        (datetime(2026, 11, 28, 1, 59, tzinfo=timezone.utc), True),   # Saturday 01:59 belongs to Friday's window
        (datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc), False),
        (datetime(2026, 11, 28, 23, 0, tzinfo=timezone.utc), False),  # Saturday night is not Friday
        (datetime(2026, 11, 27, 21, 59, tzinfo=timezone.utc), False),
    ],
)
def test_a_window_past_midnight_belongs_to_the_day_it_opens(moment, is_open):
    night = windows(timezone="UTC", allow=[{"days": ["fri"], "hours": "22:00-02:00"}])
    assert window_decision(night, moment).open is is_open


def test_no_windows_is_always_open_and_freeze_only_is_open_outside_freezes():
    assert window_decision(None, NOW).open
    freeze_only = windows(timezone="UTC", freeze=["2026-11-26"])
    assert not window_decision(freeze_only, NOW).open
    assert window_decision(freeze_only, NOW + timedelta(days=1)).open


def test_window_needs_an_aware_time():
    with pytest.raises(InputError, match="timezone-aware"):
        window_decision(BERLIN_OFFICE, datetime(2026, 11, 26, 12, 0))


# --- production quality level ------------------------------------------------------------------------

STAGE_24H = HealthySource("stage", 24)


def record(service: str, version: str, finished: datetime, status: str = "succeeded", manifest: int = 1) -> RolloutRecord:
    return RolloutRecord(stack="stage", type="persistent", dag_id="rollout_stage", namespace="stage", profile="stage",
                         service=service, from_version=None, to_version=version, action="upgrade",
                         manifest_version=manifest, run_id="r", status=status, started=finished, finished=finished)


def test_a_version_running_long_enough_qualifies():
    found, held = qualified_targets([record("orders", "1.1.0", NOW - timedelta(hours=25), manifest=5)], STAGE_24H, now=NOW)
    assert found == {"orders": Target("1.1.0", 5)} and held == {}


def test_a_version_too_young_is_held_and_the_previous_one_that_ran_long_enough_qualifies():
    records = [record("orders", "1.0.0", NOW - timedelta(days=5)), record("orders", "1.1.0", NOW - timedelta(hours=3))]
    found, _ = qualified_targets(records, STAGE_24H, now=NOW)
    assert found["orders"].version == "1.0.0"
    found, held = qualified_targets(records[1:], STAGE_24H, now=NOW)
    assert found == {} and held["orders"].startswith("1.1.0 has run on stage for 3.0 h of the required 24 h")


def test_a_version_replaced_before_n_hours_never_qualifies():
    records = [record("orders", "1.1.0", NOW - timedelta(hours=40)), record("orders", "1.2.0", NOW - timedelta(hours=30))]
    # 1.1.0 ran 10 h, 1.2.0 has run 30 h
    assert qualified_targets(records, STAGE_24H, now=NOW)[0]["orders"].version == "1.2.0"
    assert qualified_targets(records, HealthySource("stage", 35), now=NOW)[0] == {}


def test_failed_and_rolled_back_attempts_do_not_reset_the_running_version():
    records = [record("orders", "1.0.0", NOW - timedelta(hours=30)),
               record("orders", "1.1.0", NOW - timedelta(hours=2), status="rolled_back"),
               record("orders", "1.1.0", NOW - timedelta(hours=1), status="canary_aborted")]
    assert qualified_targets(records, STAGE_24H, now=NOW)[0]["orders"].version == "1.0.0"


def test_a_repair_of_the_running_version_keeps_its_start():
    records = [record("orders", "1.0.0", NOW - timedelta(hours=30)), record("orders", "1.0.0", NOW - timedelta(hours=1))]
    assert qualified_targets(records, STAGE_24H, now=NOW)[0]["orders"].version == "1.0.0"


def test_services_never_rolled_out_on_stage_are_held():
    found, held = qualified_targets([], STAGE_24H, now=NOW, services=["orders"])
    assert found == {} and held == {"orders": "no successful rollout recorded on stage"}


def test_zero_hours_means_deployed_on_stage_is_enough():
    found, _ = qualified_targets([record("orders", "1.1.0", NOW)], HealthySource("stage", 0), now=NOW)
    assert found["orders"].version == "1.1.0"


# --- canary ------------------------------------------------------------------------------------------


def test_canary_release_and_values_contract():
    assert canary_release("orders") == "orders-canary"
    assert canary_values(10) == {"canary": {"enabled": True, "weight": 10}, "replicaCount": 0}
    with pytest.raises(InputError, match="longer than helm's 53"):
        canary_release("x" * 50)


# --- records and sequencing --------------------------------------------------------------------------


def test_rollout_record_holds_the_contract_fields_and_no_values():
    step = PlanStep("orders", "1.0.0", "1.1.0", "upgrade", False, 4)
    data = rollout_record(stack=QA, step=step, status=RolloutStatus.ROLLED_BACK, run_id="manual__1", started=NOW,
                          finished=NOW + timedelta(seconds=5), values_digest="sha256:" + "0" * 64, revision=3,
                          reason="tests failed").to_json()
    assert {k: data[k] for k in ("stack", "service", "from_version", "to_version", "manifest_version", "run_id", "status")} == {
        "stack": "qa1", "service": "orders", "from_version": "1.0.0", "to_version": "1.1.0", "manifest_version": 4,
        "run_id": "manual__1", "status": "rolled_back"}
    assert data["started"] == "2026-11-26T12:00:00Z" and data["finished"] == "2026-11-26T12:00:05Z"
    assert data["dag_id"] == "rollout_qa1" and data["values_digest"].startswith("sha256:")


@pytest.mark.parametrize(
    "outcomes, why",
    [
        ([], None),
        ([{"service": "a", "status": "succeeded"}], None),
        ([{"service": "a", "status": "succeeded"}, {"service": "b", "status": "rolled_back"}], "b rolled_back earlier in this run"),
        ([None], "an earlier service has not finished"),
    ],
)
def test_a_step_starts_only_after_every_earlier_one_succeeded(outcomes, why):
    assert failed_before(outcomes) == why


# --- release names: one per stack and service ------------------------------------------------------


def test_each_stack_has_its_own_release_of_a_service_within_helms_limit():
    assert service_release("qa1", "orders") == "qa1-orders"
    long_a, long_b = service_release("n" * 40, "orders-service"), service_release("n" * 40, "orders-servicf")
    assert long_a != long_b and max(len(long_a), len(long_b)) + len("-canary") <= 53
    assert canary_release(service_release("qa1", "orders")) == "qa1-orders-canary"


@pytest.mark.parametrize("release, chart, service", [
    ("qa1-orders", "orders", "orders"),
    ("orders", "orders", "orders"),                          # deployed before releases were per stack
    ("qa1-orders-canary", "orders", "orders-canary"),
    ("orders-canary", "orders", "orders-canary"),
    ("legacy-billing", "billing", "legacy-billing"),         # not stackyard's: left alone
], ids=["per stack", "old name", "canary", "old canary", "someone else's"])
def test_what_a_release_of_the_stack_runs(release, chart, service):
    assert release_service("qa1", release, chart) == service


def test_new_services_get_the_stacks_release_and_existing_ones_keep_theirs():
    state = {"orders": Deployed("orders", "orders", "1.0.0", 3, "deployed", "orders")}
    plan = make_plan(QA, targets(orders="1.1.0", catalog="1.0.0"), state)
    releases = {step.service: step.release for step in plan.steps}
    assert releases == {"orders": "orders", "catalog": f"{QA.namespace}-catalog"}
    assert all(PlanStep.from_dict(step.to_dict()) == step for step in plan.steps)
    old_xcom = {k: v for k, v in plan.steps[0].to_dict().items() if k != "release"}
    assert PlanStep.from_dict(old_xcom).release == old_xcom["service"]
