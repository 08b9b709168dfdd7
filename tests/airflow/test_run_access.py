"""The run-start checks of the stack DAGs: triggering user, roles under the simple auth manager,
the rollout triggerers, and runs for past slots."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from stackyard.airflow.operators import _context
from stackyard.airflow.operators.rollouts import check_triggerer
from stackyard.core.stack_registry import load_registry

REGISTRY = load_registry("""
stacks:
  production:
    owner: team-release
    type: production
    profile: production
    source: {healthy_on: stage, for_hours: 24}
    services: all
    triggerers: {roles: [prod-deployers], users: [carol]}
  stage:
    owner: team-release
    type: persistent
    profile: stage
    source: l3
    services: all
""")


def context(user=None, run_type="manual", run_after=None):
    return {"dag_run": SimpleNamespace(run_type=run_type, triggering_user_name=user, run_after=run_after)}


@pytest.fixture
def simple_users(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                       "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,mallory:user,dave:prod-deployers")


def test_the_triggering_user_is_the_signed_in_one_only():
    assert _context.triggering_user(context("alice")) == "alice"
    assert _context.triggering_user(context("dag_test")) is None  # airflow dags test
    assert _context.triggering_user(context("alice", run_type="scheduled")) is None


def test_roles_come_from_the_simple_auth_manager_users(simple_users):
    assert _context.user_roles("mallory") == {"user"} and _context.is_admin("admin")
    assert _context.user_roles("stranger") == frozenset() and not _context.is_admin("mallory")


def test_roles_are_unknown_under_other_auth_managers(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager")
    assert _context.user_roles("mallory") is None


def test_a_rollout_run_checks_the_triggerers_at_start(simple_users):
    production = REGISTRY.stacks["production"]
    with pytest.raises(AirflowFailException, match=r"rollout_production: mallory \(roles: user\) may not trigger it"):
        check_triggerer(production, context("mallory"))
    for user in ("carol", "dave", "admin", "team-release", None):
        check_triggerer(production, context(user))
    check_triggerer(REGISTRY.stacks["stage"], context("mallory"))  # no triggerers listed


def test_a_scheduled_run_for_a_past_slot_is_recognised():
    now = datetime.now(timezone.utc)
    slot = (now - timedelta(days=1)).replace(hour=3, minute=0, second=0, microsecond=0)
    assert "past slot" in _context.past_slot_reason(context(run_type="scheduled", run_after=slot), "0 3 * * *")
    # A scheduled run's run_after is a slot itself: the latest */30 one is current, whatever the clock.
    fresh = now.replace(minute=now.minute // 30 * 30, second=0, microsecond=0)
    assert _context.past_slot_reason(context(run_type="scheduled", run_after=fresh), "*/30 * * * *") is None
    assert _context.past_slot_reason(context(run_type="manual", run_after=slot), "0 3 * * *") is None
