"""Triggering a DAG through the REST API, made as plain as the form (a root middleware of the
api-server, registered by the ``stackyard_ui`` plugin).

``POST /api/v2/dags/{dag_id}/dagRuns``:

- ``logical_date`` may be left out: Airflow 3.3 answers 422 without it, although ``null`` (a
  manual run "now") is what every caller of a ``schedule=None`` DAG means. The middleware adds
  ``"logical_date": null`` to a JSON body that has none; a body that names one is untouched.
- A conf that the DAG's params refuse is answered 400 with Airflow's message, which goes on with
  the whole JSON schema; the middleware keeps its first line, with a known pattern said in words
  (:func:`stackyard.airflow.refusals.one_line`), e.g. ``Invalid input for param service: 'Bad!'
  is not a service name (…)``.

Every other request passes through untouched. Pure ASGI, no framework import: every Airflow
process imports plugins, only the api-server runs this.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stackyard.airflow.refusals import one_line

_TRIGGER = re.compile(r"^/api/v2/dags/[^/]+/dagRuns/?$")
_PARAM_REFUSAL = "Invalid input for param"


def with_logical_date(body: bytes) -> bytes:
    """The JSON body with ``"logical_date": null`` added when it has none; otherwise unchanged."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict) or "logical_date" in document:
        return body
    return json.dumps({**document, "logical_date": None}).encode()


def one_line_detail(body: bytes) -> bytes:
    """A 400 answer's ``detail`` cut to its clear first line when it is a param refusal."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    detail = document.get("detail") if isinstance(document, dict) else None
    if not isinstance(detail, str) or not detail.startswith(_PARAM_REFUSAL):
        return body
    return json.dumps({**document, "detail": one_line(ValueError(detail))}).encode()


class TriggerRequests:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _TRIGGER.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = with_logical_date(b"".join(chunks))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        request = {"type": "http.request", "body": body, "more_body": False}
        await self.app({**scope, "headers": headers}, _replay([request], receive), _Refusals(send))


def _replay(messages: list[dict], receive: Any) -> Any:
    async def replay() -> dict:
        return messages.pop(0) if messages else await receive()
    return replay


class _Refusals:
    """Passes a response on; a 400's body is held to its end and rewritten by one_line_detail."""

    def __init__(self, send: Any) -> None:
        self.send, self.start, self.chunks = send, None, []

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start" and message["status"] == 400:
            self.start = message
            return
        if message["type"] == "http.response.body" and self.start is not None:
            self.chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = one_line_detail(b"".join(self.chunks))
            headers = [(k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await self.send({**self.start, "headers": headers})
            await self.send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await self.send(message)
