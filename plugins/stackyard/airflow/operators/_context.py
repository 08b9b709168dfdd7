"""What stackyard's Python tasks share: the clock (:func:`stackyard.core.times.utc_now`) and the
current run's XCom."""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context

from stackyard.core.times import utc_now

__all__ = ["pulled", "utc_now"]


def pulled(task_id: str, key: str = "return_value") -> Any:
    """What ``task_id`` pushed under ``key`` in this run (None if it pushed nothing)."""
    return get_current_context()["ti"].xcom_pull(task_ids=task_id, key=key)
