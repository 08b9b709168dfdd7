"""Who may trigger a stack's DAG: the registry's ``triggerers`` checked at run start.

The auth manager decides who may press "trigger" at all; this is the check that holds whichever
auth manager let the trigger through (the simple auth manager has no per-DAG permissions).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

#: A scheduled run that starts later than this after its slot (or after the next slot began, for
#: shorter cadences) is for a past slot: e.g. the one Airflow creates when a DAG is unpaused.
PAST_SLOT_AFTER = timedelta(hours=1)


def refused_trigger(*, user: str | None, roles: Collection[str] | None, allowed_roles: Collection[str],
                    allowed_users: Collection[str], owner: str | None = None) -> str | None:
    """Why ``user`` may not trigger the stack (None: allowed).

    ``user`` None: no signed-in user (a scheduled run, ``airflow dags test`` from a shell).
    ``roles`` None: the auth manager's roles are not readable from a task (FAB), which then has
    enforced the roles itself at trigger time through ``access_control``. An ``admin`` and the
    stack's ``owner`` are always allowed; with no triggerers listed, anyone who could trigger is.
    """
    if user is None or user in allowed_users or (owner and user == owner):
        return None
    if not allowed_roles and not allowed_users:
        return None
    if roles is None:
        if allowed_roles:
            return None
        return f"{user} is not among the users allowed to trigger it ({', '.join(sorted(allowed_users))})"
    if "admin" in roles or set(roles) & set(allowed_roles):
        return None
    allowed = [f"roles {', '.join(sorted(allowed_roles))}" if allowed_roles else "",
               f"users {', '.join(sorted(allowed_users))}" if allowed_users else ""]
    return (f"{user} (roles: {', '.join(sorted(roles)) or 'none'}) may not trigger it; allowed: "
            f"{'; '.join(a for a in allowed if a)}")


def past_slot(slot: datetime, next_slot: datetime, now: datetime) -> str | None:
    """Why a scheduled run for ``slot`` should not run now (None: it is the current slot)."""
    limit = min(next_slot - slot, PAST_SLOT_AFTER)
    late = now - slot
    if late <= limit:
        return None
    return (f"this scheduled run is for the slot {slot:%Y-%m-%d %H:%M} UTC, {_hours(late)} ago (more than "
            f"{_hours(limit)}): a past slot, as Airflow creates when a DAG is unpaused; changing nothing. "
            f"The next slot is {next_slot:%Y-%m-%d %H:%M} UTC")


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"
