"""``stackyard stacks list|status|history``: the Stacks view for terminals and CI logs.

Same data as the UI's JSON API (``--json`` prints exactly that), read with the caller's
``KUBECONFIG`` and the configured stores. Exit 1 if a source was unreachable (the output says
which) or the stack is unknown; the rest of the data is still printed.
"""

from __future__ import annotations

import argparse
import json
import os
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
    rows = [["STACK", "TYPE", "OWNER", "SAME", "BEHIND", "FAILED", "LAST ROLLOUT / REAPED IN"]]
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
        rows.append([name, column["type"], column.get("owner") or "-", str(states.count("same")),
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
    return 0 if ok else 1

