"""refused_trigger and past_slot: one case per rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stackyard.core.access import past_slot, refused_trigger

ROLES, USERS = ("release-managers",), ("carol",)


@pytest.mark.parametrize("user, roles, allowed", [
    (None, None, True),                       # scheduled run / dags test
    ("carol", {"user"}, True),                # listed user
    ("team-release", {"user"}, True),         # the stack's owner
    ("dave", {"release-managers"}, True),     # role listed
    ("root", {"admin"}, True),                # admin
    ("mallory", {"user"}, False),             # simple auth manager: role known, not allowed
    ("mallory", set(), False),
    ("mallory", None, True),                  # FAB: roles enforced at trigger by access_control
])
def test_who_may_trigger(user, roles, allowed):
    refused = refused_trigger(user=user, roles=roles, allowed_roles=ROLES, allowed_users=USERS, owner="team-release")
    assert (refused is None) is allowed
    if not allowed:
        assert user in refused and "release-managers" in refused


def test_users_only_lists_are_checked_even_when_roles_are_unknown():
    assert "not among the users" in refused_trigger(user="mallory", roles=None, allowed_roles=(), allowed_users=USERS)


def test_no_triggerers_means_whoever_could_trigger():
    assert refused_trigger(user="anyone", roles={"user"}, allowed_roles=(), allowed_users=()) is None


SLOT = datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc)


def test_the_current_slot_runs_even_when_the_scheduler_is_a_little_late():
    assert past_slot(SLOT, SLOT + timedelta(days=1), SLOT + timedelta(minutes=20)) is None


def test_the_slot_created_on_unpause_a_day_later_is_skipped():
    reason = past_slot(SLOT, SLOT + timedelta(days=4), SLOT + timedelta(days=1))
    assert "past slot" in reason and "2026-12-03 09:30" in reason and "2026-12-07 09:30" in reason


def test_for_short_cadences_the_limit_is_the_cadence():
    assert past_slot(SLOT, SLOT + timedelta(minutes=15), SLOT + timedelta(minutes=20)) is not None
    assert past_slot(SLOT, SLOT + timedelta(minutes=15), SLOT + timedelta(minutes=10)) is None
