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
- ``/api/stacks/{name}``     one stack: services with version, health, drift; resource tree,
                             warning events, helm revisions, the runs that changed it (404 if
                             no source knows it)
- ``/metrics``               the fleet's Prometheus gauges (docs/observability.md). Besides
                             Airflow's auth, it accepts ``Authorization: Bearer <token>`` where
                             the token is the password of the Airflow connection
                             ``stackyard_metrics`` (a scraper cannot renew Airflow's 24 h JWTs).

Every JSON answer has ``sources``: which source was read when, or why it could not be.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import hmac
import time

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from stackyard.core.ephemeral import validate_stack_name
from stackyard.exceptions import InputError
from stackyard.steps.fleet import HISTORY_LIMIT, Fleet

PAGE = Path(__file__).with_name("page.html")
METRICS_CONN_ID = "stackyard_metrics"
_TOKEN_CACHE_SECONDS = 60.0


def _metrics_token() -> str | None:
    """The scrape token: the password of the ``stackyard_metrics`` connection (None: not set)."""
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(METRICS_CONN_ID).password or None
    except Exception as exc:  # AirflowNotFoundException: no token configured
        if type(exc).__name__ != "AirflowNotFoundException":
            raise
        return None


def _base_path() -> str:
    """Airflow's own path prefix (``[api] base_url``), for links from the page into the UI."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def create_app(fleet_factory: Callable[[], Fleet] | None = None, *, gate_queue: Callable[[], int] | None = None,
               metrics_token: Callable[[], str | None] = _metrics_token) -> FastAPI:
    """The app; ``fleet_factory`` defaults to the stores and cluster of Airflow's configuration."""
    from airflow.api_fastapi.core_api.security import requires_access_dag

    if fleet_factory is None:
        from stackyard.ui.sources import airflow_fleet as fleet_factory
        from stackyard.ui.sources import gate_queue_length as gate_queue

    # Answers are JSONResponse (plain json.dumps): FastAPI's generic encoder costs ~0.5 s on a
    # 300 x 40 matrix. The documents are plain JSON already (stackyard.core.fleet builds them).
    app = FastAPI(
        title="stackyard Stacks view",
        description="What is deployed where: L3, persistent, production and ephemeral stacks.",
    )
    read_dags = requires_access_dag(method="GET")
    router = APIRouter(dependencies=[Depends(read_dags)])
    lock = threading.Lock()
    holder: dict[str, Fleet] = {}

    def fleet() -> Fleet:
        # One Fleet per app: its cluster reader caches reads for a few seconds.
        with lock:
            if "fleet" not in holder:
                holder["fleet"] = fleet_factory()
            return holder["fleet"]

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        html = PAGE.read_text().replace("__AIRFLOW_BASE__", _base_path())
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @router.get("/api/overview")
    def overview() -> JSONResponse:
        return JSONResponse(fleet().overview())

    @router.get("/api/fleet")
    def matrix() -> JSONResponse:
        return JSONResponse(fleet().matrix())

    @router.get("/api/history")
    def history(limit: int = Query(HISTORY_LIMIT, ge=1, le=1000)) -> JSONResponse:
        return JSONResponse(fleet().history(limit=limit))

    @router.get("/api/stacks/ephemeral")
    def ephemeral() -> JSONResponse:
        return JSONResponse(fleet().ephemeral())

    @router.get("/api/stacks/persistent")
    def persistent() -> JSONResponse:
        return JSONResponse(fleet().persistent())

    @router.get("/api/stacks/{name}")
    def stack(name: str) -> JSONResponse:
        try:
            validate_stack_name(name)
        except InputError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        found = fleet().stack(name)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no source knows a stack named {name!r}")
        return JSONResponse(found)

    app.include_router(router)
    token_cache: dict[str, tuple[float, str | None]] = {}

    def scrape_token() -> str | None:
        cached = token_cache.get("token")
        if cached is None or time.monotonic() - cached[0] > _TOKEN_CACHE_SECONDS:
            cached = token_cache["token"] = (time.monotonic(), metrics_token())
        return cached[1]

    async def metrics_access(request: Request) -> None:
        """The scrape token (constant-time compare), else Airflow's own auth as every route."""
        header = request.headers.get("authorization", "")
        token = scrape_token()
        if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
            return
        from fastapi.security import HTTPAuthorizationCredentials

        from airflow.api_fastapi.core_api.security import get_user

        scheme, _, value = header.partition(" ")
        credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=value) if value else None
        user = await get_user(request, None, credentials)  # raises 401 itself
        read_dags(request, user)

    from stackyard.ui.metrics import FleetCollector, metrics_text

    collector = FleetCollector(fleet, gate_queue)

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_access)])
    def metrics() -> Response:
        return Response(metrics_text(collector), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
