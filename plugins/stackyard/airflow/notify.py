"""Failure and warning notifications through webhook connections: the owner's own
(``stackyard_webhook_<owner>``, see :func:`owner_conn_id`) when it exists, else ``stackyard_webhook``.

Call one builder and :func:`send` (it never raises: a chat outage must not fail a deployment)::

    from stackyard.airflow import notify
    notify.send(notify.gate_rejected(candidate, reason, failed_tests, run_id=...))
    notify.send(notify.gate_error("orders", "1.4.0", "promote: manifest store not writable", candidate=..., run_id=...))
    notify.send(notify.rollout_failed("qa1", "orders", "1.4.0", from_version="1.3.2", rolled_back=True,
                                      reason="deployment orders not ready", dag_id="rollout_qa1", run_id=...))
    notify.send(notify.reaper_failed(report))  # a core.records.ReaperReport: it names its run
    notify.send(notify.stack_expiring("alice-demo", owner="alice", seconds_left=20 * 3600))

The body is Slack's incoming-webhook JSON (``text`` plus ``blocks``) unless the connection's
extra ``format`` is ``json`` (then it is :meth:`Notification.to_dict`). Every text passes through
the secret registry's redaction before it leaves the process; builders only take names,
versions, reasons and run ids, never values or tool output.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any
from urllib.parse import quote

from stackyard.core.fleet import seconds_text
from stackyard.core.manifest import Manifest
from stackyard.core.records import ReaperEntry, ReaperReport
from stackyard.core.secrets import SECRETS

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "stackyard_webhook"
#: ``stack_expiring`` is meant for stacks the reaper will take within this long.
EXPIRY_WARNING = timedelta(days=1)


class Kind(str, Enum):
    GATE_REJECTED = "gate_rejected"
    GATE_ERROR = "gate_error"  # the gate could not reach a verdict: infrastructure failed
    ROLLOUT_FAILED = "rollout_failed"
    REAPER_FAILED = "reaper_failed"
    STACK_EXPIRING = "stack_expiring"


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Notification:
    kind: Kind
    severity: Severity
    title: str
    text: str
    fields: Mapping[str, str] = field(default_factory=dict)
    dag_id: str | None = None
    run_id: str | None = None
    owner: str | None = None  # who it is for (a stack's owner); shown, and in the JSON body

    def to_dict(self, run_url: str | None = None) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "severity": self.severity.value, "title": self.title, "text": self.text,
            "fields": dict(self.fields), "dag_id": self.dag_id, "run_id": self.run_id, "owner": self.owner,
            "run_url": run_url,
        }


# --- builders -------------------------------------------------------------------------------------


def gate_rejected(candidate: Manifest, reason: str, failed_tests: Iterable[str] = (), *,
                  run_id: str | None = None, dag_id: str = "l3_gate") -> Notification:
    change = str(candidate.change) if candidate.change else f"candidate {candidate.candidate_id}"
    tests = list(failed_tests)
    fields = {"L3 stays": f"v{candidate.parent}", "candidate": candidate.candidate_id[:12]}
    if tests:
        fields["failed tests"] = ", ".join(tests)
    if candidate.provenance.requested_by:
        fields["requested by"] = candidate.provenance.requested_by
    return Notification(Kind.GATE_REJECTED, Severity.ERROR, f"L3 gate rejected {change}", reason, fields,
                        dag_id, run_id or candidate.provenance.dag_run_id, candidate.provenance.requested_by)


def gate_error(service: str | None, version: str | None, reason: str, *, candidate: Manifest | None = None,
               run_id: str | None = None, dag_id: str = "l3_gate") -> Notification:
    """The gate ended without a verdict (store, registry, cluster or KMS failed): nothing was
    rejected and L3 is unchanged; the request should be retried once the failure is fixed."""
    what = f"{service} {version}" if service and version else "a candidate"
    fields = {"outcome": "error (no verdict on the chart)"}
    if candidate is not None:
        fields["L3 stays"] = f"v{candidate.parent}"
        fields["candidate"] = candidate.candidate_id[:12]
        if candidate.provenance.requested_by:
            fields["requested by"] = candidate.provenance.requested_by
    return Notification(Kind.GATE_ERROR, Severity.ERROR, f"L3 gate error: {what} was not tested to the end", reason,
                        fields, dag_id, run_id or (candidate.provenance.dag_run_id if candidate else None),
                        candidate.provenance.requested_by if candidate else None)


def rollout_failed(stack: str, service: str, version: str, *, from_version: str | None = None,
                   rolled_back: bool = False, reason: str = "", dag_id: str | None = None,
                   run_id: str | None = None, owner: str | None = None) -> Notification:
    after = f"rolled back to {from_version}" if rolled_back and from_version else ("rolled back" if rolled_back else "not rolled back")
    fields = {"stack": stack, "service": service, "version": version, "after failure": after}
    return Notification(Kind.ROLLOUT_FAILED, Severity.ERROR, f"Rollout of {service} {version} to {stack} failed",
                        reason or "see the run's log", fields, dag_id, run_id, owner)


def reaper_failed(report: ReaperReport) -> Notification:
    """From a reaper run report: its ``error`` and its ``failed`` entries (name, detail), linked to its run."""
    lines = [f"{item.name}: {item.detail or item.reason or 'failed'}" for item in report.failed]
    text = "; ".join(filter(None, [report.error, *lines])) or "the reaper run failed"
    return Notification(Kind.REAPER_FAILED, Severity.ERROR, f"Stack reaper failed ({len(report.failed)} stack(s) not removed)",
                        text, {"failed": str(len(report.failed))}, report.dag_id, report.run_id)


def stack_expiring(stack: str, *, owner: str | None, seconds_left: int, ttl: str | None = None,
                   dag_id: str | None = None, run_id: str | None = None) -> Notification:
    """The warning the day before the reaper takes an ephemeral stack, addressed to its owner."""
    who = f"@{owner}: " if owner else ""
    text = (f"{who}stack {stack} has been idle and will be removed by the reaper in about "
            f"{seconds_text(seconds_left)}. Touch it (stack_touch) to keep it.")
    fields = {"stack": stack, "time left": seconds_text(seconds_left)}
    if ttl:
        fields["TTL"] = ttl
    return Notification(Kind.STACK_EXPIRING, Severity.WARNING, f"Stack {stack} expires soon", text, fields,
                        dag_id, run_id, owner)


def expiring(entries: Iterable[ReaperEntry], within: timedelta = EXPIRY_WARNING) -> list[ReaperEntry]:
    """The reaper report's ``kept`` entries whose time left is under ``within``."""
    limit = within.total_seconds()
    return [e for e in entries if e.time_left_seconds is not None and e.time_left_seconds < limit]


# --- bodies and sending ---------------------------------------------------------------------------


def slack_body(note: Notification, run_url: str | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (fallback) and ``blocks``."""
    icon = ":red_circle:" if note.severity is Severity.ERROR else ":warning:"
    fallback = f"{icon} {note.title}: {note.text}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{_slack_escape(note.title)}*\n{_slack_escape(note.text)}"}},
    ]
    if note.fields:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"} for k, v in list(note.fields.items())[:10]
        ]})
    if run_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{run_url}|Airflow run {_slack_escape(note.run_id or '')}>"}]})
    return {"text": fallback, "blocks": blocks}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_url(dag_id: str | None, run_id: str | None, base_url: str | None = None) -> str | None:
    """The Airflow UI page of a run (``[api] base_url``/dags/<dag>/runs/<run>)."""
    if not dag_id or not run_id:
        return None
    if base_url is None:
        try:
            from airflow.configuration import conf

            base_url = conf.get("api", "base_url", fallback="") or ""
        except Exception:  # outside Airflow: no link
            base_url = ""
    if not base_url:
        return None
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return SECRETS.redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def body_for(note: Notification, fmt: str, base_url: str | None = None) -> dict[str, Any]:
    link = run_url(note.dag_id, note.run_id, base_url)
    body = slack_body(note, link) if fmt == "slack" else note.to_dict(link)
    return _redacted(body)


def owner_conn_id(owner: str) -> str:
    """The webhook connection of one owner: ``stackyard_webhook_<owner>`` with every character
    that is not a letter or digit made ``_`` and lower-cased (``team-qa`` → ``stackyard_webhook_team_qa``,
    ``alice@example.com`` → ``stackyard_webhook_alice_example_com``)."""
    return f"{DEFAULT_CONN_ID}_{re.sub(r'[^a-z0-9]+', '_', owner.lower()).strip('_')}"


def send(note: Notification, conn_id: str | None = None) -> bool:
    """Post ``note`` to the webhook of ``conn_id``; by default to its owner's connection
    (:func:`owner_conn_id`) when the owner has one, else to ``stackyard_webhook``. True if
    delivered; False (logged) if no connection is configured or the webhook failed. Never raises."""
    if conn_id is not None:
        return _send(note, conn_id, last=True)
    candidates = ([owner_conn_id(note.owner)] if note.owner and owner_conn_id(note.owner) != DEFAULT_CONN_ID else [])
    candidates.append(DEFAULT_CONN_ID)
    for index, candidate in enumerate(candidates):
        outcome = _send(note, candidate, last=index == len(candidates) - 1)
        if outcome is not None:
            return outcome
    return False


def _send(note: Notification, conn_id: str, *, last: bool) -> bool | None:
    """True delivered, False failed; None: no such connection and another one is to be tried."""
    from stackyard.airflow.hooks.webhook import WebhookHook

    try:
        hook = WebhookHook(conn_id)
        fmt = hook.format
        hook.post(body_for(note, fmt))
    except Exception as exc:  # notifications are best effort by design
        if type(exc).__name__ == "AirflowNotFoundException":
            if not last:
                return None
            log.info("notification not sent (no %s connection): %s", conn_id, note.title)
        else:
            log.warning("notification not sent: %s (%s)", note.title, SECRETS.redact(str(exc)))
        return False
    log.info("notification sent (%s via %s): %s", note.kind.value, conn_id, note.title)
    _count(note)
    return True


def _count(note: Notification) -> None:
    from stackyard.adapters import metrics

    metrics.notification_sent(note.kind.value)
