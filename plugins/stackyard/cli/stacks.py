"""``stackyard stacks list|status``: the Stacks view for terminals and CI logs; and
``stackyard stacks create|touch|destroy``: personal stacks through Airflow's REST API.

``list``/``status``: the same data as the UI's JSON API (``--json`` prints exactly that), read with
the caller's ``KUBECONFIG`` and the configured stores. Exit 1 if a source was unreachable (the
output says which) or the stack is unknown; the rest of the data is still printed.

``create``/``touch``/``destroy`` trigger ``stack_create``/``stack_touch``/``stack_destroy`` like
``stackyard gate`` does (``STACKYARD_API_URL``, ``STACKYARD_API_USER``, ``STACKYARD_API_PASSWORD``)
and, with ``--wait``, follow the run. Exit codes: 0 done (or queued, without ``--wait``); 1 the
request was refused (bad parameters, a name taken, not an ephemeral stack: the reason is printed);
2 could not ask or the run failed for another reason (API unreachable, credentials refused,
time-out, a deploy that failed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from stackyard.cli._common import cli_helm
from stackyard.core.fleet import seconds_text
from stackyard.core.ephemeral import validate_stack_name
from stackyard.exceptions import InputError
from stackyard.steps.fleet import Fleet, kube_cluster_reader, kube_namespace_reader
from stackyard.settings import Settings
from stackyard.adapters.manifest_store import open_manifest_store
from stackyard.adapters.record_store import open_record_store


def register(sub: argparse._SubParsersAction) -> None:
    stacks = sub.add_parser("stacks", help="what is deployed where").add_subparsers(dest="stacks_command", required=True)
    listing = stacks.add_parser("list", help="every stack: type, owner, services behind L3, last rollout, time left")
    listing.add_argument("--json", action="store_true", help="the UI API's overview document")
    listing.set_defaults(func=list_command)
    status = stacks.add_parser("status", help="one stack: each service's version against L3, recent rollouts")
    status.add_argument("stack")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=status_command)
    create = stacks.add_parser("create", help="create a personal stack (the stack_create DAG)")
    create.add_argument("name", help="namespace name (DNS-1123 label), e.g. alice-dev")
    create.add_argument("--owner", help="who it belongs to (default: $STACKYARD_API_USER; Airflow records the "
                                          "signed-in user as the owner)")
    create.add_argument("--ttl-days", type=int, help="removed after this many days without activity (default 7)")
    create.add_argument("--manifest-version", type=int, help="the L3 manifest to start from (default: the latest)")
    create.add_argument("--override", action="append", default=[], metavar="SERVICE=VERSION",
                        help="run this published chart version instead of L3's (repeatable)")
    create.add_argument("--profile", help="the charts' profile (default: ephemeral)")
    touch = stacks.add_parser("touch", help="keep a personal stack alive (the stack_touch DAG)")
    touch.add_argument("name")
    touch.add_argument("--ttl-days", type=int, help="a new TTL in days")
    destroy = stacks.add_parser("destroy", help="remove a personal stack now (the stack_destroy DAG)")
    destroy.add_argument("name")
    for parser, func in ((create, create_command), (touch, touch_command), (destroy, destroy_command)):
        parser.add_argument("--wait", action="store_true", help="follow the run and exit with its outcome")
        parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait with --wait (default 1800)")
        parser.add_argument("--api", help="Airflow URL (default: $STACKYARD_API_URL or http://localhost:8080)")
        parser.set_defaults(func=func)


def cli_fleet(settings: Settings) -> Fleet:
    """The stores from settings; the cluster of ``KUBECONFIG`` (none configured: reported)."""
    kubeconfig = os.environ.get("KUBECONFIG")

    def core_v1():
        from kubernetes import client, config

        return client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig.split(os.pathsep)[0]))

    return Fleet(
        manifest_store=open_manifest_store(settings.manifest_store_url),
        record_store=open_record_store(settings.records_url),
        cluster=kube_cluster_reader(core_v1, lambda: cli_helm(settings)) if kubeconfig else None,
        stacks_file=settings.stacks_file,
        dag_states=_api_dag_states(),
        namespace_reader=kube_namespace_reader(core_v1) if kubeconfig else None,
    )


def _api_dag_states():
    """Whether rollout DAGs are paused, from Airflow's REST API when its credentials are set
    (``STACKYARD_API_URL``/``_USER``/``_PASSWORD``, as for ``stackyard gate``); else not asked."""
    user, password = os.environ.get("STACKYARD_API_USER"), os.environ.get("STACKYARD_API_PASSWORD")
    if not (user and password):
        return None
    from stackyard.cli.gate import DEFAULT_API, AirflowApi

    api = AirflowApi(os.environ.get("STACKYARD_API_URL") or DEFAULT_API, user, password)
    return api.paused


def _print_sources(sources: dict[str, Any]) -> bool:
    ok = True
    for name, status in sources.items():
        if not status["ok"]:
            ok = False
            print(f"! {name} unreachable: {status['error']} (its data is not shown)")
    return ok


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def list_command(args: argparse.Namespace, settings: Settings) -> int:
    overview = cli_fleet(settings).overview()
    if args.json:
        print(json.dumps(overview, indent=2))
        return 0 if all(s["ok"] for s in overview["sources"].values()) else 1
    ok = _print_sources(overview["sources"])
    matrix = overview["matrix"]
    print(f"L3: v{matrix['l3_version']}" if matrix["l3_version"] else "L3: none (the manifest store is empty)")
    ephemeral = {s["name"]: s for s in overview["ephemeral"]["stacks"]}
    persistent = {s["name"]: s for s in overview["persistent"]}
    rows = [["STACK", "TYPE", "OWNER", "HEALTH", "SAME", "BEHIND", "FAILED", "LAST ROLLOUT / REAPED IN"]]
    for index, column in enumerate(matrix["columns"][1:], start=1):
        states = [row["cells"][index]["state"] for row in matrix["rows"]]
        name = column["name"]
        if name in persistent and persistent[name].get("last_rollout"):
            last = persistent[name]["last_rollout"]
            extra = f"{last.get('service', '')} {last.get('version', '')} {last.get('outcome', '')} {last.get('at', '')}"
        elif name in ephemeral:
            extra = f"reaped in {ephemeral[name].get('note') or seconds_text(ephemeral[name].get('seconds_left'))}"
        else:
            extra = "-"
        rows.append([name, column["type"], column.get("owner") or "-", column.get("health") or "-", str(states.count("same")),
                     str(states.count("behind")), str(states.count("failed")), extra.strip()])
    if len(rows) > 1:
        _table(rows)
    else:
        print("no stacks")
    return 0 if ok else 1


def status_command(args: argparse.Namespace, settings: Settings) -> int:
    validate_stack_name(args.stack)
    status = cli_fleet(settings).stack(args.stack)
    if status is None:
        raise InputError(f"no source knows a stack named {args.stack!r} (cluster, records, include/stacks.yaml)")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if all(s["ok"] for s in status["sources"].values()) else 1
    ok = _print_sources(status["sources"])
    stack = status["stack"]
    print(f"{stack['name']} ({stack['type']}{', owner ' + stack['owner'] if stack.get('owner') else ''}); "
          f"L3 v{status['l3_version'] or '-'}")
    print(f"health: {status.get('health', 'unknown')}; drift: {status.get('drift', 'unknown')}")
    rows = [["SERVICE", "DEPLOYED", "L3", "STATE", "HEALTH", "DRIFT", "LAST ROLLOUT"]]
    for entry in status["services"]:
        state = entry["state"] + (f" by {entry['behind']}" if entry.get("behind") else "")
        last = entry.get("last_rollout") or {}
        version = entry.get("version") or "-"
        if entry.get("override"):
            version += " (override)"
        health = entry.get("health", "unknown")
        detail = entry.get("health_detail") or {}
        if detail.get("reason"):
            health += f": {detail['reason']}"
        rows.append([entry["name"], version, entry.get("l3") or "-", state, health, entry.get("drift", "unknown"),
                     f"{last.get('outcome', '')} {last.get('version', '')} {last.get('at', '')}".strip() or "-"])
    if len(rows) > 1:
        _table(rows)
    else:
        print("nothing deployed")
    for entry in status["services"]:
        for diff in entry.get("drift_detail") or ():
            what = "missing (deleted by hand?)" if diff.get("missing") else ", ".join(diff.get("fields", ()))
            print(f"drift: {entry['name']}: {diff['object']}: {what}")
        for pod in (entry.get("health_detail") or {}).get("failing", ()):
            print(f"failing: {entry['name']}: pod {pod['pod']}: {pod['reason']}")
    for warning in (status.get("warnings") or [])[:5]:
        print(f"warning: {warning.get('at')} {warning.get('object')} {warning.get('reason')}: {warning.get('message')}")
    for revision in (status.get("revisions") or [])[:10]:
        print(f"helm: {revision['release']} r{revision['revision']} {revision['chart']} {revision['status']} "
              f"{revision.get('updated', '')}")
    details = status.get("details") or {}
    if "seconds_left" in details or "note" in details:
        print(f"reaped in: {details.get('note') or seconds_text(details.get('seconds_left'))} (TTL {details.get('ttl')})")
    if details.get("paused"):
        print(f"next rollout: none, its rollout DAG is paused; window {details['window']} ({details['window_state']})")
    elif "next_rollout" in details:
        print(f"next rollout: {details['next_rollout']}; window {details['window']} ({details['window_state']})")
    for event in status["events"][:5]:
        print(f"event: {event.get('at')} {event.get('event')} by {event.get('who', '-')}")
    for line in canary_lines(status.get("rollouts") or []):
        print(line)
    return 0 if ok else 1


#: Canaries shown by ``stacks status`` (the newest rollout of each canaried service).
CANARIES_SHOWN = 3


def canary_lines(rollouts: list[dict[str, Any]]) -> list[str]:
    """The weight history of the newest canary rollouts: one line per weight change or analysis."""
    lines, seen = [], set()
    for rollout in rollouts:  # newest first
        canary = rollout.get("canary") or {}
        if not canary.get("history") or rollout.get("service") in seen or len(seen) >= CANARIES_SHOWN:
            continue
        seen.add(rollout.get("service"))
        lines.append(f"canary: {rollout.get('service')} {rollout.get('version')} via {canary.get('provider', '?')}: "
                     f"{rollout.get('outcome')}, weight now {canary.get('weight', 0)} %")
        for step in canary["history"]:
            checks = ", ".join(
                f"{c['name']} {'ok' if c['passed'] else 'FAILED'}"
                + (f" {c['value']:g}" if c.get("value") is not None else "")
                + (f" (threshold {c['threshold']:g})" if c.get("threshold") is not None else "")
                for c in step.get("checks") or ())
            what = {"weight": f"weight {step['weight']} %", "check": f"checks at {step['weight']} %: {checks or 'none'}",
                    "promote": "promote", "abort": "abort", "finished": "finished"}.get(step["kind"], step["kind"])
            reason = f" — {step['reason']}" if step.get("reason") and step["kind"] != "check" else ""
            lines.append(f"  {step['at']} {what}{reason}")
    return lines



# --- create / touch / destroy through the REST API -------------------------------------------------

OK, REFUSED, ERROR = 0, 1, 2
#: The task of each DAG that checks the request: its failure is a refusal, not an error.
CHECK_TASKS = {"stack_create": ("validate", "build_umbrella"), "stack_touch": ("check",), "stack_destroy": ("check",)}


def _overrides(items: list[str]) -> dict[str, str]:
    from stackyard.core.manifest import validate_service_name
    from stackyard.core.versions import is_semver

    out = {}
    for item in items:
        service, _, version = item.partition("=")
        if not version:
            raise InputError(f"--override {item!r}: expected SERVICE=VERSION, e.g. orders=1.3.0-pr.42")
        validate_service_name(service, "--override")
        if not is_semver(version):
            raise InputError(f"--override {item!r}: {version!r} is not a semantic version like 1.4.2")
        out[service] = version
    return out


def _ttl(days: int | None) -> int | None:
    from stackyard.core.ephemeral import ttl_from_days

    if days is not None:
        ttl_from_days(days)  # the DAG's own bounds, checked here first
    return days


def create_command(args: argparse.Namespace, settings: Settings) -> int:
    validate_stack_name(args.name)
    # stack_create makes the signed-in user (the API user) the owner whatever the form says; the
    # parameter is still required, so send who will be recorded.
    owner = args.owner or os.environ.get("STACKYARD_API_USER") or os.environ.get("USER")
    if not owner:
        raise InputError("--owner: say who the stack belongs to (no $STACKYARD_API_USER or $USER either)")
    conf: dict[str, Any] = {"name": args.name, "owner": owner, "overrides": _overrides(args.override)}
    if args.ttl_days is not None:
        conf["ttl_days"] = _ttl(args.ttl_days)
    if args.manifest_version is not None:
        if args.manifest_version < 1:
            raise InputError(f"--manifest-version: expected a version >= 1, got {args.manifest_version}")
        conf["manifest_version"] = args.manifest_version
    if args.profile:
        conf["profile"] = args.profile
    return _run("stack_create", conf, args, done=lambda r: f"stack {args.name} is ready: kubectl -n {args.name} get pods")


def touch_command(args: argparse.Namespace, settings: Settings) -> int:
    validate_stack_name(args.name)
    conf: dict[str, Any] = {"name": args.name}
    if args.ttl_days is not None:
        conf["ttl_days"] = _ttl(args.ttl_days)
    return _run("stack_touch", conf, args, done=lambda r: f"stack {args.name} touched")


def destroy_command(args: argparse.Namespace, settings: Settings) -> int:
    validate_stack_name(args.name)
    return _run("stack_destroy", {"name": args.name}, args, done=lambda r: f"stack {args.name} destroyed")


def _run(dag_id: str, conf: dict[str, Any], args: argparse.Namespace, *, done) -> int:
    from stackyard.cli.gate import DEFAULT_API, AirflowApi, AirflowApiError, follow

    user, password = os.environ.get("STACKYARD_API_USER"), os.environ.get("STACKYARD_API_PASSWORD")
    if not user or not password:  # nothing was asked: "could not ask" (exit 2), as for stackyard gate
        missing = " and ".join(k for k, v in (("STACKYARD_API_USER", user), ("STACKYARD_API_PASSWORD", password)) if not v)
        print(f"stackyard: {missing} not set: set STACKYARD_API_USER and STACKYARD_API_PASSWORD "
              "to an Airflow user allowed to trigger DAGs", file=sys.stderr)
        return ERROR
    if args.timeout <= 0:
        raise InputError(f"--timeout: expected a positive number of seconds, got {args.timeout:g}")
    api = AirflowApi(args.api or os.environ.get("STACKYARD_API_URL") or DEFAULT_API, user, password, dag_id=dag_id)
    try:
        run = api.trigger(conf)
        run_id = run["dag_run_id"]
        print(f"{dag_id} run {run_id} queued: {api.ui_url(run_id)}", flush=True)
        if not args.wait:
            return OK
        state = follow(api, run_id, time.monotonic() + args.timeout)
        if state is None:
            print(f"timed out after {args.timeout:g}s; the run goes on: {api.ui_url(run_id)}", flush=True)
            return ERROR
        if state == "success":
            print(done(run), flush=True)
            return OK
        states = api.task_states(run_id)
        for task in CHECK_TASKS[dag_id]:
            if states.get(task) == "failed":
                print(f"REFUSED: {api.task_error(run_id, task) or f'see the {task} task log'}", flush=True)
                return REFUSED
        failed = [task for task, state in states.items() if state in ("failed", "upstream_failed")]
        print(f"FAILED: {', '.join(failed) or 'the run'} failed; see {api.ui_url(run_id)}", flush=True)
        return ERROR
    except AirflowApiError as exc:
        if exc.status in (400, 409, 422):  # the DAG's params (or Airflow) refused the request
            print(f"REFUSED: {exc}", file=sys.stderr)
            return REFUSED
        print(f"stackyard: {exc}", file=sys.stderr)
        return ERROR
