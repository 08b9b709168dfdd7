"""The api-server middleware for POST …/dagRuns: logical_date optional, param refusals in one line."""

from __future__ import annotations

import asyncio
import json

from stackyard.ui.trigger_api import TriggerRequests, one_line_detail, with_logical_date

SCHEMA_TAIL = "\n\nFailed validating 'pattern' in schema:\n    {'type': 'string', 'pattern': '^x$'}\n\nOn instance:\n    'Bad!'"


def test_logical_date_is_added_only_when_missing():
    assert json.loads(with_logical_date(b'{"conf": {"a": 1}}')) == {"conf": {"a": 1}, "logical_date": None}
    given = b'{"conf": {}, "logical_date": "2026-01-01T00:00:00Z"}'
    assert with_logical_date(given) == given
    assert with_logical_date(b"not json") == b"not json"
    assert with_logical_date(b"[1, 2]") == b"[1, 2]"


def test_a_param_refusal_keeps_its_first_line_with_the_pattern_in_words():
    from stackyard.core.manifest import SERVICE_NAME_PATTERN

    detail = f"Invalid input for param service: 'Bad!' does not match {SERVICE_NAME_PATTERN!r}" + SCHEMA_TAIL
    answer = json.loads(one_line_detail(json.dumps({"detail": detail}).encode()))
    assert answer["detail"] == ("Invalid input for param service: 'Bad!' is not a service name "
                                "(a DNS-1123 label: lowercase letters, digits and '-')")
    other = json.dumps({"detail": "DAG with dag_id: 'x' not found"}).encode()
    assert one_line_detail(other) == other


def run(app, path: str, body: bytes, method: str = "POST"):
    sent, seen = [], {}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    async def main():
        scope = {"type": "http", "method": method, "path": path, "headers": [(b"content-length", str(len(body)).encode())]}
        await TriggerRequests(app(seen))(scope, receive, send)

    asyncio.run(main())
    return seen, sent


def echo_app(status: int, answer: bytes):
    def factory(seen):
        async def app(scope, receive, send):
            message = await receive()
            seen["body"], seen["headers"] = message["body"], dict(scope["headers"])
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer, "more_body": False})
        return app
    return factory


def test_the_middleware_rewrites_trigger_requests_and_their_refusals():
    refusal = json.dumps({"detail": "Invalid input for param x: 'Bad!' does not match '^x$'" + SCHEMA_TAIL}).encode()
    seen, sent = run(echo_app(400, refusal), "/api/v2/dags/l3_gate/dagRuns", b'{"conf": {"service": "Bad!"}}')
    assert json.loads(seen["body"])["logical_date"] is None
    assert int(seen["headers"][b"content-length"]) == len(seen["body"])
    start, body = sent
    assert start["status"] == 400 and int(dict(start["headers"])[b"content-length"]) == len(body["body"])
    assert json.loads(body["body"])["detail"] == "Invalid input for param x: 'Bad!' does not match '^x$'"


def test_other_requests_pass_untouched():
    seen, sent = run(echo_app(200, b"{}"), "/api/v2/dags/l3_gate", b'{"is_paused": false}', method="PATCH")
    assert seen["body"] == b'{"is_paused": false}'
    seen, sent = run(echo_app(200, b'{"ok": 1}'), "/api/v2/dags/l3_gate/dagRuns", b'{"logical_date": null}')
    assert seen["body"] == b'{"logical_date": null}' and sent[1]["body"] == b'{"ok": 1}'
