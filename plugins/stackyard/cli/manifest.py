"""``stackyard manifest seed|show|history|diff``: the L3 manifest history."""

from __future__ import annotations

import argparse
import json
import os
from stackyard.core.times import utc_now

from stackyard.cli._common import cli_helm, print_manifest, registry_for_cli
from stackyard.core.manifest import Manifest, Provenance, ServicePin, diff
from stackyard.exceptions import InputError
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
    history = manifest.add_parser("history", help="every L3 version and rejected candidate, newest first")
    history.add_argument("--limit", type=int, help="at most this many lines")
    history.add_argument("--json", action="store_true")
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
            ref = registry.resolve(service, version)
            pins[service] = ServicePin(ref.version, ref.digest)
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
    history = store.history(limit=args.limit)
    if args.json:
        print(json.dumps([m.to_dict() for m in history], indent=2))
        return 0
    # Rejected candidates next to the versions, newest first (GateRecord: the typed rejection).
    entries = [(m.created, f"v{m.version:<4} {m.created:%Y-%m-%d %H:%M}Z  {str(m.change) if m.change else 'seed':<40} "
                           f"by {m.provenance.requested_by or '-'}") for m in history]
    for record in store.rejections(limit=args.limit):
        if record.candidate is None:
            continue
        change = str(record.candidate.change) if record.candidate.change else record.subject
        entries.append((record.recorded, f"{'rejected':<5} {record.recorded:%Y-%m-%d %H:%M}Z  {change:<40} "
                                         f"by {record.candidate.provenance.requested_by or '-'}: {record.reason}"))
    for _, line in sorted(entries, key=lambda entry: entry[0], reverse=True)[:args.limit]:
        print(line)
    return 0


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
