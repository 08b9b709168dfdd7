"""What stackyard's Python tasks share: the clock (:func:`stackyard.core.times.utc_now`) and the
current run's XCom."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import get_current_context

from stackyard.core.times import utc_now

__all__ = ["is_admin", "past_slot_reason", "pulled", "record_event", "triggering_user", "user_roles", "utc_now"]


def pulled(task_id: str, key: str = "return_value") -> Any:
    """What ``task_id`` pushed under ``key`` in this run (None if it pushed nothing)."""
    return get_current_context()["ti"].xcom_pull(task_ids=task_id, key=key)


#: What ``dag.test()`` (``airflow dags test``) records as the triggering user: nobody signed in.
NO_SIGNED_IN_USER = frozenset({"dag_test"})


def triggering_user(context: Any) -> str | None:
    """The authenticated user who triggered this run by hand; None when none is known (a
    scheduled or asset-triggered run, ``airflow dags test`` by someone with shell access)."""
    run = context["dag_run"]
    if not str(getattr(run, "run_type", "")).endswith("manual"):
        return None
    user = getattr(run, "triggering_user_name", None)
    return None if not user or user in NO_SIGNED_IN_USER else str(user)


def user_roles(user: str | None) -> frozenset[str] | None:
    """The user's roles where the task can know them: under the simple auth manager, from its
    ``[core] simple_auth_manager_users`` (``name:role,…``). None under any other auth manager
    (FAB keeps roles in its database, which tasks cannot read; FAB enforces them at trigger)."""
    from airflow.configuration import conf

    manager = conf.get("core", "auth_manager", fallback="") or ""
    if "simple" not in manager.lower():
        return None
    if user is None:
        return frozenset()
    if conf.getboolean("core", "simple_auth_manager_all_admins", fallback=False):
        return frozenset({"admin"})
    roles = set()
    for entry in (conf.get("core", "simple_auth_manager_users", fallback="") or "").split(","):
        name, _, role = entry.strip().partition(":")
        if name == user and role:
            roles.add(role.strip().lower())
    return frozenset(roles)


def is_admin(user: str | None) -> bool:
    return "admin" in (user_roles(user) or ())


def record_event(stack: str, event: str, **details: Any) -> None:
    """One lifecycle record in ``stacks/<stack>/events`` (a :class:`~stackyard.core.records.StackEvent`):
    what happened, by which run, for whom. A "created" record is what later proves stackyard made
    the namespace (core.ephemeral)."""
    from stackyard.airflow.stores import record_store_for
    from stackyard.core.records import StackEvent
    from stackyard.settings import Settings

    context = get_current_context()
    record = StackEvent(event=event, stack=stack, run_id=context["run_id"], dag_id=context["dag"].dag_id,
                        at=utc_now(), **details)
    record_store_for(Settings.from_env()).write(record)


def past_slot_reason(context: Any, schedule: str | None) -> str | None:
    """Why this scheduled run is for a past slot (None: run it). Manual and asset-triggered runs
    always run. ``schedule`` is the DAG's cron expression (or preset such as ``@hourly``)."""
    from croniter import croniter

    from stackyard.core.access import past_slot

    run = context["dag_run"]
    if not schedule or not str(getattr(run, "run_type", "")).endswith("scheduled"):
        return None
    slot = getattr(run, "run_after", None) or context.get("data_interval_end")
    if slot is None:
        return None
    next_slot = croniter(schedule, slot).get_next(datetime)
    return past_slot(slot, next_slot, utc_now())
