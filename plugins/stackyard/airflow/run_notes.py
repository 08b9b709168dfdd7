"""Readable runs: each stackyard run ends with a DagRun note saying what it did.

Tasks call :func:`record_note` (an XCom under :data:`NOTE_XCOM_KEY`; the task SDK has no call
that sets the run's note). An Airflow listener (registered by ``plugins/stackyard_ui.py``) runs in
the scheduler when a run succeeds or fails, reads the run's latest note XCom and sets it as the
run's note, in the scheduler's own session (so nothing waits on a second writer, SQLite
included; a detached run, as ``dag.test()`` passes, gets a session of its own). A run that failed before any task recorded a note gets ``failed at <tasks>``. A note a
person already wrote is never overwritten; DAGs that are not stackyard's are left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from stackyard.core.run_notes import bounded, failed_note

log = logging.getLogger(__name__)

NOTE_XCOM_KEY = "stackyard_note"
#: Whose runs get a note: the DAGs stackyard ships (rollout DAGs are ``rollout_<stack>``).
DAG_IDS = frozenset({"l3_gate", "stack_create", "stack_touch", "stack_destroy", "ephemeral_reaper"})
DAG_PREFIXES = ("rollout_",)


def record_note(context: Any, text: str) -> str:
    """Say what this run did; the run's note once it ends (the last recorded wins)."""
    text = bounded(text)
    context["ti"].xcom_push(key=NOTE_XCOM_KEY, value=text)
    print(f"run note: {text}")
    return text


def ours(dag_id: str) -> bool:
    return dag_id in DAG_IDS or dag_id.startswith(DAG_PREFIXES)


def note_for(dag_run: Any, session: Any, *, failed: bool) -> str | None:
    """The note for a finished run: its latest recorded note, else for a failed run the tasks
    that failed; None when there is nothing to say."""
    from sqlalchemy import select

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    query = (XComModel.get_many(run_id=dag_run.run_id, key=NOTE_XCOM_KEY, dag_ids=dag_run.dag_id)
             .order_by(XComModel.timestamp.desc()).limit(1))
    row = session.scalars(query).first()
    text = XComModel.deserialize_value(row) if row is not None else None
    if isinstance(text, str) and text:
        return text
    if not failed:
        return None
    tasks = session.scalars(select(TaskInstance.task_id).where(
        TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id,
        TaskInstance.state == "failed")).all()
    return failed_note(None, set(tasks))


def _set_note(dag_run: Any, *, failed: bool) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    if not ours(dag_run.dag_id):
        return
    session = object_session(dag_run)
    if session is not None:  # the scheduler: its own session, flushed with the state change
        if not dag_run.note:
            text = note_for(dag_run, session, failed=failed)
            if text:
                dag_run.note = text
        return
    # A detached run (``dag.test()`` hands the listener one): set it in a session of our own.
    with create_session() as own:
        run = own.scalars(select(DagRun).where(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id)).first()
        if run is not None and not run.note:
            text = note_for(run, own, failed=failed)
            if text:
                run.note = text


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    try:
        _set_note(dag_run, failed=False)
    except Exception:  # a note must never disturb the scheduler
        log.exception("stackyard: could not set the note of %s", getattr(dag_run, "run_id", "?"))


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    try:
        _set_note(dag_run, failed=True)
    except Exception:
        log.exception("stackyard: could not set the note of %s", getattr(dag_run, "run_id", "?"))
