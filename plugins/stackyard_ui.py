"""Airflow plugin: the Stacks view (what is deployed where) in Airflow's UI.

Lives directly in ``plugins/`` because Airflow's plugin scanner ignores the ``stackyard`` package
(``plugins/.airflowignore``). The app is mounted at ``/stacks``; the nav entry (Browse → Stacks)
shows it inside the UI at ``/plugin/stacks``. Every route requires an authenticated user who can
read DAGs (see :mod:`stackyard.ui.app`). A root middleware makes triggering through the REST API
as plain as the form (:mod:`stackyard.ui.trigger_api`).
"""

from __future__ import annotations

import threading

from airflow.plugins_manager import AirflowPlugin

from stackyard.ui.trigger_api import TriggerRequests

URL_PREFIX = "/stacks"


class _LazyApp:
    """An ASGI app built on its first request. Every Airflow process imports plugins (workers,
    the scheduler, the DAG processor); only the api-server ever serves this app, so only it pays
    for building it (~1.5 s of imports)."""

    def __init__(self) -> None:
        self._app = None
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from stackyard.ui.app import create_app

                    self._app = create_app()
        await self._app(scope, receive, send)


def _run_notes():
    from stackyard.airflow import run_notes

    return run_notes


class StackyardUIPlugin(AirflowPlugin):
    name = "stackyard_ui"
    # Sets each stackyard run's note when it ends (in the scheduler): stackyard.airflow.run_notes.
    listeners = [_run_notes()]
    fastapi_apps = [{"app": _LazyApp(), "url_prefix": URL_PREFIX, "name": "stackyard Stacks view"}]
    # logical_date optional and param refusals in one line for POST …/dagRuns (stackyard.ui.trigger_api)
    fastapi_root_middlewares = [{"middleware": TriggerRequests, "args": [], "kwargs": {},
                                 "name": "stackyard trigger requests"}]
    external_views = [{
        "name": "Stacks",
        "href": f"{URL_PREFIX}/",
        "url_route": "stacks",
        "destination": "nav",
        "category": "browse",
    }]
