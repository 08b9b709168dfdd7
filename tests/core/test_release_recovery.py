"""plan_recovery and holder_alive: one named case per rule of core/release_recovery.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stackyard.core.release_recovery import (
    Action, Holder, LeaseView, Revision, holder_alive, lease_name, parse_helm_time, plan_recovery,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
HOLDER = Holder("l3_gate", "manual__1", "deploy", 1, 4242, "worker-1")


def rev(n: int, status: str, minutes_ago: float = 10) -> Revision:
    return Revision(n, status, NOW - timedelta(minutes=minutes_ago))


def lease(*, held: bool, acquired_ago: float = 11, renewed_ago: float = 9) -> LeaseView:
    return LeaseView(HOLDER, held, NOW - timedelta(minutes=acquired_ago), NOW - timedelta(minutes=renewed_ago))


def test_no_release_or_nothing_pending_proceeds():
    assert plan_recovery([], None, now=NOW).action is Action.PROCEED
    assert plan_recovery([rev(1, "deployed"), rev(2, "failed")], None, now=NOW).action is Action.PROCEED


@pytest.mark.parametrize("status", ["pending-upgrade", "pending-rollback"])
def test_an_abandoned_pending_revision_of_ours_rolls_back_to_the_newest_deployed(status):
    plan = plan_recovery([rev(1, "superseded"), rev(2, "deployed"), rev(3, status)], lease(held=True), now=NOW)
    assert plan.action is Action.ROLLBACK and plan.to_revision == 2 and plan.pending.revision == 3
    assert "run manual__1" in plan.reason and "stopped renewing" in plan.reason


def test_a_superseded_revision_is_the_fallback_target():
    plan = plan_recovery([rev(1, "superseded"), rev(2, "failed"), rev(3, "pending-upgrade")], lease(held=False, renewed_ago=5),
                         now=NOW)
    assert plan.action is Action.ROLLBACK and plan.to_revision == 1


def test_an_abandoned_never_deployed_release_of_ours_is_uninstalled():
    plan = plan_recovery([rev(1, "pending-install")], lease(held=False, renewed_ago=5), now=NOW)
    assert plan.action is Action.UNINSTALL and "never deployed" in plan.reason


def test_a_pending_revision_without_any_lease_is_refused_while_recent():
    plan = plan_recovery([rev(1, "deployed"), rev(2, "pending-upgrade", minutes_ago=2)], None, now=NOW)
    assert plan.action is Action.REFUSE and "did not start" in plan.reason


def test_a_pending_revision_written_after_our_lease_was_released_is_not_ours():
    plan = plan_recovery([rev(1, "deployed"), rev(2, "pending-upgrade", minutes_ago=2)],
                         lease(held=False, acquired_ago=30, renewed_ago=20), now=NOW)
    assert plan.action is Action.REFUSE


def test_a_foreign_pending_revision_older_than_the_grace_is_rolled_back_but_never_uninstalled():
    old = plan_recovery([rev(1, "deployed"), rev(2, "pending-upgrade", minutes_ago=45)], None, now=NOW)
    assert old.action is Action.ROLLBACK and old.to_revision == 1
    never = plan_recovery([rev(1, "pending-install", minutes_ago=45)], None, now=NOW)
    assert never.action is Action.REFUSE and "helm uninstall" in never.reason


def test_a_holder_is_alive_by_its_process_on_its_host_else_by_renewals():
    fresh = LeaseView(HOLDER, True, NOW - timedelta(seconds=40), NOW - timedelta(seconds=10), 30)
    stale = LeaseView(HOLDER, True, NOW - timedelta(seconds=80), NOW - timedelta(seconds=31), 30)
    assert holder_alive(fresh, now=NOW, process_alive=None)
    assert not holder_alive(stale, now=NOW, process_alive=None)
    assert not holder_alive(fresh, now=NOW, process_alive=False)  # its process is gone: stale at once
    assert holder_alive(stale, now=NOW, process_alive=True)  # alive but slow to renew: never taken over
    released = LeaseView(HOLDER, False, fresh.acquired, fresh.renewed, 30)
    assert not holder_alive(released, now=NOW, process_alive=True)


def test_holder_identity_and_round_trip():
    assert HOLDER.identity == "l3_gate/manual__1/deploy/1/4242/worker-1"
    assert Holder.from_dict(HOLDER.to_dict()) == HOLDER
    assert lease_name("stack") == "stackyard-helm-stack"


def test_helm_timestamps_with_nanoseconds_are_read():
    assert parse_helm_time("2026-12-01T11:26:04.932041151Z") == datetime(2026, 12, 1, 11, 26, 4, 932041, tzinfo=timezone.utc)
    assert parse_helm_time("nonsense") is None and parse_helm_time(None) is None
