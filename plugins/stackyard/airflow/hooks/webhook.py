"""WebhookHook: where stackyard's notifications go (an ``http`` Airflow connection).

The connection (default id ``stackyard_webhook``) names one URL:

- ``host`` is a full URL (``https://hooks.slack.com/services``) or a host name; with a host name,
  ``schema`` (http/https, default https) and ``port`` complete it, and a ``schema`` that is not a
  protocol is taken as the path (what ``AIRFLOW_CONN_…='http://host:port/path'`` produces);
- ``password``, if set, is appended as the last path segment: put the secret part of a Slack
  incoming-webhook URL (``T000/B000/XXXX``) there, so Airflow masks it like any password;
- extras: ``format`` = ``slack`` (default: ``{"text", "blocks"}``) or ``json`` (the event as
  JSON), ``timeout`` seconds (default 5), ``headers`` (a JSON object of extra headers).

The URL is never logged: with the password in it, it is a credential.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from stackyard.exceptions import InputError, StackyardError

FORMATS = ("slack", "json")


class WebhookError(StackyardError):
    """The webhook did not accept a notification (the message names the host, never the URL)."""


class WebhookHook(BaseHook):
    conn_name_attr = "webhook_conn_id"
    default_conn_name = "stackyard_webhook"
    conn_type = "http"
    hook_name = "Notifications webhook (stackyard)"

    def __init__(self, webhook_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.webhook_conn_id = webhook_conn_id

    @cached_property
    def connection(self):
        return self.get_connection(self.webhook_conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        return dict(self.connection.extra_dejson or {})

    @property
    def format(self) -> str:
        value = self.extras.get("format", "slack")
        if value not in FORMATS:
            raise InputError(f"connection {self.webhook_conn_id}: format {value!r} is not one of {', '.join(FORMATS)}")
        return value

    def url(self) -> str:
        conn = self.connection
        host = (conn.host or "").strip()
        if not host:
            raise InputError(f"connection {self.webhook_conn_id}: host is empty (expected a URL or a host name)")
        schema = (conn.schema or "").strip()
        if "://" in host:
            base = host.rstrip("/")
        else:
            scheme = schema if schema in ("http", "https") else (conn.conn_type if conn.conn_type in ("http", "https") else "https")
            base = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}"
            if schema and schema not in ("http", "https"):
                base = f"{base}/{schema.strip('/')}"
        return f"{base}/{conn.password.strip('/')}" if conn.password else base

    def where(self) -> str:
        """The host only: safe to log."""
        from urllib.parse import urlsplit

        return urlsplit(self.url()).netloc

    def post(self, body: dict[str, Any]) -> int:
        """POST ``body`` as JSON; the HTTP status, or :class:`WebhookError`."""
        headers = {"Content-Type": "application/json", "User-Agent": "stackyard"}
        extra_headers = self.extras.get("headers") or {}
        if not isinstance(extra_headers, dict):
            raise InputError(f"connection {self.webhook_conn_id}: extra 'headers' must be a JSON object")
        headers.update({str(k): str(v) for k, v in extra_headers.items()})
        request = urllib.request.Request(self.url(), data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=float(self.extras.get("timeout", 5))) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            raise WebhookError(f"webhook at {self.where()} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WebhookError(f"webhook at {self.where()} unreachable: {reason}") from None
