"""The Stacks view's sources inside Airflow: stores and the cluster from Airflow connections."""

from __future__ import annotations

import logging

from stackyard.exceptions import InputError
from stackyard.steps.fleet import CachedClusterReader, Fleet, kube_cluster_reader, kube_namespace_reader
from stackyard.core.fleet import GATE_DAG_ID
from stackyard.settings import Settings

log = logging.getLogger(__name__)

#: Cluster reads are reused this long (seconds); the page shows when they were made.
CLUSTER_CACHE_SECONDS = 15.0


def airflow_fleet(settings: Settings | None = None) -> Fleet:
    """A :class:`Fleet` over the configured stores and the ``stackyard_kube`` connection's cluster."""
    from stackyard.airflow.hooks.helm import HelmHook
    from stackyard.airflow.hooks.namespaces import StackHook
    from stackyard.airflow.stores import manifest_store_for, record_store_for

    settings = settings or Settings.from_env()
    conn_id = settings.kubernetes_conn_id
    reader = kube_cluster_reader(lambda: StackHook(conn_id).core, lambda: HelmHook(conn_id).helm())
    return Fleet(
        manifest_store=manifest_store_for(settings),
        record_store=record_store_for(settings),
        cluster=CachedClusterReader(reader, CLUSTER_CACHE_SECONDS),
        stacks_file=settings.stacks_file,
        dag_states=paused_dags,
        namespace_reader=kube_namespace_reader(lambda: StackHook(conn_id).core),
        gate_window=_gate_window(settings),
    )


def _gate_window(settings: Settings) -> int | None:
    try:
        return settings.gate_window
    except InputError as exc:  # the gate refuses to run with it too; the page still shows the rest
        log.warning("stacks view: the gate queue is not shown: %s", exc)
        return None


def paused_dags(dag_ids: list[str]) -> dict[str, bool]:
    """Whether each DAG is paused, from Airflow's metadata DB (the api-server serves this app and
    holds a session pool already: one indexed query, no HTTP round trip)."""
    from sqlalchemy import select

    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(select(DagModel.dag_id, DagModel.is_paused).where(DagModel.dag_id.in_(dag_ids)))
        return {dag_id: bool(is_paused) for dag_id, is_paused in rows}


def gate_queue_length() -> int:
    """L3 gate runs queued or running, from Airflow's metadata DB (one count query)."""
    from sqlalchemy import func, select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        return int(session.scalar(select(func.count()).select_from(DagRun).where(
            DagRun.dag_id == GATE_DAG_ID, DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING]))) or 0)
