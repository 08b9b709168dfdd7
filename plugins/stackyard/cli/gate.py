"""``stackyard gate``: trigger the L3 gate through Airflow's REST API (v2) and, with ``--wait``,
follow it to its outcome, showing its place in the gate queue while it waits. Meant for CI: exit 0
promoted, 1 rejected, refused or superseded (the verdict was no, the request itself is invalid, or
a newer version of the service replaced it in the queue), 2 could not ask (no credentials, API unreachable or refusing
them, time-out).

Credentials come from the environment only (a password on a command line ends up in shell
history and CI logs): ``STACKYARD_API_USER`` and ``STACKYARD_API_PASSWORD``; the API from
``--api``, else ``STACKYARD_API_URL``, else http://localhost:8080. The user needs a role that may
trigger DAG runs (``user`` or above).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from stackyard.exceptions import InputError, StackyardError
from stackyard.steps.gate import HANDING_OVER, STEPS as GATE_STEPS, GateRequest
from stackyard.settings import Settings

DAG_ID = "l3_gate"
DEFAULT_API = "http://localhost:8080"
POLL_SECONDS = 2.0
TERMINAL = {"success", "failed"}
#: The tasks that wait in the gate queue, and publish where their change stands (XCom queue_position).
QUEUE_TASKS = ("validate", "promote", "reject")

PROMOTED, REJECTED, ERROR = 0, 1, 2


class AirflowApiError(StackyardError):
    """The Airflow API refused or failed a request (not a gate outcome)."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        super().__init__(message)


class AirflowApi:
    """The few REST API v2 calls the gate needs, with a JWT from ``/auth/token``."""

    def __init__(self, url: str, user: str, password: str, *, timeout: float = 30.0, dag_id: str = DAG_ID) -> None:
        self.url = url.rstrip("/")
        self.dag_id = dag_id
        self._user, self._password, self._timeout = user, password, timeout
        self._token: str | None = None

    def _call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self._login()}"
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise AirflowApiError(exc.code, f"{method} {path}: HTTP {exc.code}: {_detail(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AirflowApiError(None, f"cannot reach the Airflow API at {self.url}: {reason}") from None

    def _login(self) -> str:
        if self._token is None:
            try:
                answer = self._call("POST", "/auth/token", {"username": self._user, "password": self._password}, auth=False)
            except AirflowApiError as exc:
                if exc.status in (401, 403):
                    raise AirflowApiError(exc.status, f"the Airflow API at {self.url} refused the credentials of "
                                          f"{self._user!r} (STACKYARD_API_USER/STACKYARD_API_PASSWORD)") from None
                raise
            self._token = answer["access_token"]
        return self._token

    def _run_path(self, run_id: str) -> str:
        return f"/api/v2/dags/{self.dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    def trigger(self, conf: dict[str, Any]) -> dict[str, Any]:
        # logical_date must be present (null: a manual run "now"); omitting it is a 422.
        return self._call("POST", f"/api/v2/dags/{self.dag_id}/dagRuns", {"logical_date": None, "conf": conf})

    def run(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", self._run_path(run_id))

    def task_states(self, run_id: str) -> dict[str, str | None]:
        answer = self._call("GET", f"{self._run_path(run_id)}/taskInstances?limit=100")
        return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}

    def task_instance(self, run_id: str, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"{self._run_path(run_id)}/taskInstances/{task_id}")

    def xcom(self, run_id: str, task_id: str, key: str = "return_value") -> Any:
        try:
            return self._call("GET", f"{self._run_path(run_id)}/taskInstances/{task_id}/xcomEntries/{key}")["value"]
        except AirflowApiError as exc:
            if exc.status == 404:
                return None
            raise

    def task_error(self, run_id: str, task_id: str) -> str | None:
        """The message of the exception the task's last try failed with (the log is masked)."""
        try_number = self.task_instance(run_id, task_id).get("try_number") or 1
        log = self._call("GET", f"{self._run_path(run_id)}/taskInstances/{task_id}/logs/{try_number}")
        for event in reversed(log.get("content") or []):
            for detail in (event.get("error_detail") or []) if isinstance(event, dict) else []:
                if detail.get("exc_value"):
                    return str(detail["exc_value"])
        return None

    def paused(self, dag_ids: list[str]) -> dict[str, bool]:
        """Whether each DAG is paused (one page of ``GET /api/v2/dags`` per 100 DAGs asked)."""
        wanted, out = set(dag_ids), {}
        for start in range(0, len(dag_ids), 100):
            chunk = dag_ids[start:start + 100]
            query = urllib.parse.urlencode([("dag_id_pattern", _common_prefix(chunk)), ("limit", "100")])
            offset = 0
            while True:
                answer = self._call("GET", f"/api/v2/dags?{query}&offset={offset}")
                for dag in answer.get("dags") or []:
                    if dag.get("dag_id") in wanted:
                        out[dag["dag_id"]] = bool(dag.get("is_paused"))
                offset += 100
                if offset >= int(answer.get("total_entries") or 0) or set(chunk) <= set(out):
                    break
        return out

    def ui_url(self, run_id: str) -> str:
        return f"{self.url}/dags/{self.dag_id}/runs/{urllib.parse.quote(run_id, safe='')}"


def _common_prefix(names: list[str]) -> str:
    prefix = names[0] if names else ""
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.load(exc).get("detail")
    except (ValueError, AttributeError):
        return exc.reason
    if isinstance(detail, str):
        return detail.split("\n", 1)[0]  # param errors append the whole JSON schema
    return json.dumps(detail)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "gate", help="trigger the L3 gate for a published chart version (CI)",
        description="Trigger the l3_gate DAG through Airflow's REST API. Credentials: STACKYARD_API_USER "
                    "and STACKYARD_API_PASSWORD. With --wait it shows the run's place in the gate queue. Exit "
                    "codes: 0 promoted (queued, without --wait), 1 rejected, refused or superseded by a newer "
                    "version, 2 could not ask (credentials, API, time-out).",
    )
    parser.add_argument("--service", required=True, help="service chart name")
    parser.add_argument("--version", required=True, dest="chart_version", help="published chart version (semver)")
    parser.add_argument("--requested-by", help="who asks (default: $GITLAB_USER_LOGIN/$GITHUB_ACTOR/$USER)")
    parser.add_argument("--ci-url", help="link to the CI build that published the chart")
    parser.add_argument("--wait", action="store_true", help="follow the run and exit with its outcome")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait with --wait (default 3600)")
    parser.add_argument("--api", help=f"Airflow URL (default: $STACKYARD_API_URL or {DEFAULT_API})")
    parser.set_defaults(func=gate_command)


def gate_command(args: argparse.Namespace, settings: Settings) -> int:
    # The same checks as the DAG's form, here first so CI gets the message without a round trip.
    requested_by = args.requested_by or next(
        (os.environ[k] for k in ("GITLAB_USER_LOGIN", "GITHUB_ACTOR", "USER") if os.environ.get(k)), None)
    request = GateRequest.from_params({
        "service": args.service, "chart_version": args.chart_version,
        "requested_by": requested_by, "ci_url": args.ci_url,
    })
    user, password = os.environ.get("STACKYARD_API_USER"), os.environ.get("STACKYARD_API_PASSWORD")
    if not user or not password:  # nothing was asked, so no verdict: "could not ask" (exit 2)
        missing = " and ".join(k for k, v in (("STACKYARD_API_USER", user), ("STACKYARD_API_PASSWORD", password)) if not v)
        raise AirflowApiError(None, f"{missing} not set: set STACKYARD_API_USER and STACKYARD_API_PASSWORD "
                                    "to an Airflow user allowed to trigger DAGs")
    if args.timeout <= 0:
        raise InputError(f"--timeout: expected a positive number of seconds, got {args.timeout:g}")
    api = AirflowApi(args.api or os.environ.get("STACKYARD_API_URL") or DEFAULT_API, user, password)
    conf = {"service": request.service, "chart_version": request.chart_version,
            "requested_by": request.requested_by, "ci_url": request.ci_url}
    try:
        run = api.trigger(conf)
    except AirflowApiError as exc:
        if exc.status in (400, 422):  # the DAG's params refused the request
            raise InputError(str(exc)) from None
        raise
    _say(f"l3_gate run {run['dag_run_id']} queued: {api.ui_url(run['dag_run_id'])}")
    if not args.wait:
        return 0
    deadline = time.monotonic() + args.timeout
    run_id = run["dag_run_id"]
    while True:
        state = follow(api, run_id, deadline)
        if state is None:
            _say(f"timed out after {args.timeout:g}s; the run goes on: {api.ui_url(run_id)}")
            return ERROR
        code, next_run = outcome(api, run_id, state)
        if next_run is None:
            return code
        run_id = next_run
        _say(f"following the new run {run_id}: {api.ui_url(run_id)}")


def follow(api: AirflowApi, run_id: str, deadline: float) -> str | None:
    """Print each task's state as it changes until the run ends; its final state, or None on time-out."""
    started, seen, last_state = time.monotonic(), {}, None
    while time.monotonic() < deadline:
        run_state = api.run(run_id)["state"]
        if run_state != last_state:  # a queued run has no task states yet: say it waits
            last_state = run_state
            _say(f"  [{time.monotonic() - started:6.1f}s] run: {run_state}")
        for task_id, state in api.task_states(run_id).items():
            changed = bool(state) and seen.get(task_id) != state
            if changed:
                seen[task_id] = state
                _say(f"  [{time.monotonic() - started:6.1f}s] {task_id}: {state}")
            # Where the change stands in the queue, as the task waiting in it last said.
            if api.dag_id == DAG_ID and task_id in QUEUE_TASKS and (changed or state in ("running", "up_for_reschedule")):
                position = api.xcom(run_id, task_id, "queue_position")
                if position and position != seen.get("queue_position"):
                    seen["queue_position"] = position
                    _say(f"  [{time.monotonic() - started:6.1f}s] {queue_line(position)}")
        if run_state in TERMINAL:
            return run_state
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    return None


def queue_line(position: dict[str, Any]) -> str:
    """``queue: 2 of 5 (window 3): testing behind orders 1.4.0``."""
    ahead = position.get("ahead") or []
    return (f"queue: {position.get('place')} of {position.get('queued')} (window {position.get('window')}): "
            f"{position.get('state')}{' behind ' + ', '.join(ahead) if ahead else ''}")


def outcome(api: AirflowApi, run_id: str, state: str) -> tuple[int, str | None]:
    """(exit code, run to follow next): L3 moved under a tested candidate → the requeued run."""
    if state == "success":
        report = api.xcom(run_id, "summary") or {}
        _say(f"PROMOTED: L3 v{report.get('before', {}).get('version')} → v{report.get('after', {}).get('version')}"
             f" ({_change(report)})")
        return PROMOTED, None
    states = api.task_states(run_id)
    superseded = next((note for task in QUEUE_TASKS if states.get(task) == "failed"
                       for note in [api.xcom(run_id, task, "superseded")] if note), None)
    if superseded:
        _say(f"SUPERSEDED: {superseded}")
        return REJECTED, None
    if states.get("validate") == "failed":
        note = api.xcom(run_id, "validate", "error") or {}
        if note and not note.get("refused"):  # the store or the registry failed: no verdict on the request
            _say(f"ERROR: validate: {note.get('reason')}; see {api.ui_url(run_id)}")
            return ERROR, None
        _say(f"REFUSED: {api.task_error(run_id, 'validate') or 'see the validate task log'}")
        return REJECTED, None
    if states.get("requeue") == "success":
        next_run = api.xcom(run_id, "requeue", "trigger_run_id")
        conflict = next(filter(None, (api.xcom(run_id, step, "conflict") for step in HANDING_OVER)), None)
        _say(f"NOT DECIDED: {conflict or 'L3 moved while this candidate was tested'}; tested again, keeping its place")
        if next_run:
            return ERROR, next_run
        _say("could not find the requeued run; see the requeue task log")
        return ERROR, None
    rejected = api.xcom(run_id, "reject") if states.get("reject") == "success" else None
    if rejected:
        _say(f"REJECTED: {rejected.get('reason')}")
        return REJECTED, None
    failed = sorted(t for t, s in states.items() if s == "failed")
    notes = ((task, api.xcom(run_id, task, "error")) for task in GATE_STEPS if states.get(task) == "failed")
    reason = next((f"{task}: {note.get('reason')}" for task, note in notes if note), None)
    _say(f"ERROR: the run failed without a verdict ({reason or 'failed tasks: ' + (', '.join(failed) or 'none')}); "
         f"see {api.ui_url(run_id)}")
    return ERROR, None


def _change(report: dict[str, Any]) -> str:
    change = report.get("change") or {}
    return f"{change.get('service')} {change.get('from_version') or '(new)'} -> {change.get('to_version')}"


def _say(text: str) -> None:
    print(text, flush=True)
    sys.stdout.flush()
