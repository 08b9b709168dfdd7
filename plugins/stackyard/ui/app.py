"""The Stacks view's FastAPI app: the page and the JSON API beside it.

Airflow mounts it at ``/stacks`` (``plugins/stackyard_ui.py``). Plugin routes are open unless they
say otherwise, so every route here depends on Airflow's own authorization: the caller must be
allowed to read DAGs (the same JWT cookie or bearer token as the rest of the UI and API).

Routes (all GET):

- ``/``                      the page (shown inside Airflow's UI under Browse → Stacks)
- ``/api/overview``          matrix + ephemeral + persistent from one read of each source
- ``/api/fleet``             the fleet matrix
- ``/api/history?limit=N``   L3 versions and rejected candidates, newest first
- ``/api/stacks/ephemeral``  ephemeral stacks and the last reaper run
- ``/api/stacks/persistent`` persistent and production stacks
- ``/api/stacks/{name}``     one stack (404 if no source knows it)

Every JSON answer has ``sources``: which source was read when, or why it could not be.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse

from stackyard.core.ephemeral import validate_stack_name
from stackyard.exceptions import InputError
from stackyard.steps.fleet import HISTORY_LIMIT, Fleet

PAGE = Path(__file__).with_name("page.html")


def _base_path() -> str:
    """Airflow's own path prefix (``[api] base_url``), for links from the page into the UI."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def create_app(fleet_factory: Callable[[], Fleet] | None = None) -> FastAPI:
    """The app; ``fleet_factory`` defaults to the stores and cluster of Airflow's configuration."""
    from airflow.api_fastapi.core_api.security import requires_access_dag

    if fleet_factory is None:
        from stackyard.ui.sources import airflow_fleet as fleet_factory

    # Answers are JSONResponse (plain json.dumps): FastAPI's generic encoder costs ~0.5 s on a
    # 300 x 40 matrix. The documents are plain JSON already (stackyard.core.fleet builds them).
    app = FastAPI(
        title="stackyard Stacks view",
        description="What is deployed where: L3, persistent, production and ephemeral stacks.",
        dependencies=[Depends(requires_access_dag(method="GET"))],
    )
    lock = threading.Lock()
    holder: dict[str, Fleet] = {}

    def fleet() -> Fleet:
        # One Fleet per app: its cluster reader caches reads for a few seconds.
        with lock:
            if "fleet" not in holder:
                holder["fleet"] = fleet_factory()
            return holder["fleet"]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        html = PAGE.read_text().replace("__AIRFLOW_BASE__", _base_path())
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/api/overview")
    def overview() -> JSONResponse:
        return JSONResponse(fleet().overview())

    @app.get("/api/fleet")
    def matrix() -> JSONResponse:
        return JSONResponse(fleet().matrix())

    @app.get("/api/history")
    def history(limit: int = Query(HISTORY_LIMIT, ge=1, le=1000)) -> JSONResponse:
        return JSONResponse(fleet().history(limit=limit))

    @app.get("/api/stacks/ephemeral")
    def ephemeral() -> JSONResponse:
        return JSONResponse(fleet().ephemeral())

    @app.get("/api/stacks/persistent")
    def persistent() -> JSONResponse:
        return JSONResponse(fleet().persistent())

    @app.get("/api/stacks/{name}")
    def stack(name: str) -> JSONResponse:
        try:
            validate_stack_name(name)
        except InputError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        found = fleet().stack(name)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no source knows a stack named {name!r}")
        return JSONResponse(found)

    return app
