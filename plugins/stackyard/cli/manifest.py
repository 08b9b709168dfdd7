"""``stackyard manifest seed|show|history|diff``: the L3 manifest history."""

from __future__ import annotations

import argparse
import json
import os
from stackyard.core.times import utc_now

from stackyard.cli._common import cli_helm, print_manifest, registry_for_cli
from stackyard.core.manifest import Manifest, Provenance, diff
from stackyard.exceptions import InputError, StackyardError
from stackyard.steps.fleet import Fleet
from stackyard.steps.publishing import pin_of
from stackyard.settings import Settings
from stackyard.adapters.manifest_store import open_manifest_store


def register(sub: argparse._SubParsersAction) -> None:
    manifest = sub.add_parser("manifest", help="L3 manifests").add_subparsers(dest="manifest_command", required=True)
    seed = manifest.add_parser("seed", help="seed L3 v1 into an empty store from published charts")
    seed.add_argument("pins", nargs="+", metavar="SERVICE=VERSION")
    seed.add_argument("--requested-by", default=os.environ.get("USER"))
    seed.add_argument("--json", action="store_true")
    seed.set_defaults(func=seed_command)
    show = manifest.add_parser("show", help="a manifest (default: the latest L3)")
    show.add_argument("version", nargs="?", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_command)
    history = manifest.add_parser("history", help="every L3 version and every rejected candidate, newest first")
    history.add_argument("--limit", type=int)
    history.add_argument("--json", action="store_true",
                         help="the manifests as JSON (with --rejections: the Stacks view's history entries)")
    history.add_argument("--rejections", action="store_true", help="with --json: include rejected candidates")
    history.set_defaults(func=history_command)
    mdiff = manifest.add_parser("diff", help="what changed between two versions")
    mdiff.add_argument("a", type=int)
    mdiff.add_argument("b", type=int)
    mdiff.add_argument("--json", action="store_true")
    mdiff.set_defaults(func=diff_command)


def seed_command(args: argparse.Namespace, settings: Settings) -> int:
    pins = {}
    with cli_helm(settings) as helm:
        registry = registry_for_cli(settings, helm)
        for item in args.pins:
            service, _, version = item.partition("=")
            if not version:
                raise InputError(f"{item!r}: expected SERVICE=VERSION")
            pins[service] = pin_of(registry, registry.resolve(service, version))
    manifest = Manifest.initial(
        pins, created=utc_now(),
        provenance=Provenance(dag_run_id=None, requested_by=args.requested_by, ci_url=None),
    )
    print_manifest(open_manifest_store(settings.manifest_store_url).seed(manifest), as_json=args.json)
    return 0


def show_command(args: argparse.Namespace, settings: Settings) -> int:
    store = open_manifest_store(settings.manifest_store_url)
    manifest = store.get(args.version) if args.version else store.latest()
    if manifest is None:
        raise InputError(f"the manifest store {settings.manifest_store_url} is empty; seed L3 v1 first")
    print_manifest(manifest, as_json=args.json)
    return 0


def history_command(args: argparse.Namespace, settings: Settings) -> int:
    store = open_manifest_store(settings.manifest_store_url)
    if args.json and not args.rejections:
        print(json.dumps([m.to_dict() for m in store.history(limit=args.limit)], indent=2))
        return 0
    # Promotions and rejections interleaved by time: the same entries as the Stacks view's L3 history.
    answer = Fleet(manifest_store=store, record_store=None, cluster=None,
                   stacks_file=None).history(limit=args.limit or 1_000_000)
    failed = [f"{name}: {status['error']}" for name, status in answer["sources"].items() if not status["ok"]]
    if failed:
        raise StackyardError(f"cannot read the L3 history from {settings.manifest_store_url}: {'; '.join(failed)}")
    if args.json:
        print(json.dumps(answer["entries"], indent=2))
        return 0
    for entry in answer["entries"]:
        print(history_line(entry))
    return 0


def history_line(entry: dict) -> str:
    """One line per history entry: ``v3  <when>  orders 1.0.0 -> 1.1.0  by bob``, or a rejection."""
    change = entry.get("change")
    what = f"{change['service']} {change.get('from_version') or '(new)'} -> {change['to_version']}" if change else "seed"
    at = (entry.get("at") or "").replace("T", " ")[:16] + "Z"
    who = entry.get("requested_by") or "-"
    if entry["kind"] == "rejected":
        return f"{'rejected':<8} {at}  {what:<40} by {who}: {entry.get('summary') or entry.get('reason')}"
    return f"v{entry['version']:<7} {at}  {what:<40} by {who}"


def diff_command(args: argparse.Namespace, settings: Settings) -> int:
    store = open_manifest_store(settings.manifest_store_url)
    result = diff(store.get(args.a), store.get(args.b))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not result:
        print(f"v{args.a} and v{args.b} pin the same charts")
    else:
        for entry in result.entries:
            print(entry)
    return 0
