"""What stackyard's Python tasks share: the clock and the current run's XCom."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.sdk import get_current_context


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def pulled(task_id: str, key: str = "return_value") -> Any:
    """What ``task_id`` pushed under ``key`` in this run (None if it pushed nothing)."""
    return get_current_context()["ti"].xcom_pull(task_ids=task_id, key=key)
