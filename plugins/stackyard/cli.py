"""``stackyard``: the command line for CI and terminals.

    stackyard chart publish PATH [--registry URL]     a service's CI step (b): check, package, publish
    stackyard manifest seed SERVICE=VERSION ...      seed L3 v1 from published charts
    stackyard manifest show [VERSION] [--json]
    stackyard manifest history [--limit N] [--json]
    stackyard manifest diff A B [--json]
    stackyard demo                                   what `make demo` runs

Exit codes: 0 success, 1 the request was refused (bad input, conflict), 2 a tool or system error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from stackyard.domain.manifest import Manifest, Provenance, ServicePin, diff
from stackyard.exceptions import ConflictError, InputError, StackyardError
from stackyard.settings import Settings
from stackyard.stores.manifest_store import open_manifest_store
from stackyard.stores.registry import open_registry
from stackyard.tools.helm import Helm, HelmConfig
from stackyard.tools.runner import ToolRunner

log = logging.getLogger("stackyard")


@contextmanager
def cli_helm(settings: Settings):
    """helm for terminal use: the caller's KUBECONFIG, a private helm home, output to stderr."""
    with tempfile.TemporaryDirectory(prefix="stackyard-helm-") as home:
        config = HelmConfig(
            home=Path(home), kubeconfig=os.environ.get("KUBECONFIG"),
            plain_http=settings.registry_plain_http, base_env=os.environ,
        )
        yield Helm(config, ToolRunner(log=logging.getLogger("stackyard.helm")))


def registry_for_cli(settings: Settings, helm: Helm, url: str | None = None):
    return open_registry(url or settings.registry_url, cache_dir=settings.cache_dir, helm=helm)


def cmd_chart_publish(args: argparse.Namespace, settings: Settings) -> int:
    from stackyard.publishing import publish_chart

    with cli_helm(settings) as helm:
        ref = publish_chart(args.path, registry=registry_for_cli(settings, helm, args.registry), helm=helm)
    if args.json:
        print(json.dumps({"name": ref.name, "version": ref.version, "digest": ref.digest}))
    else:
        print(f"published {ref.name} {ref.version} {ref.digest}")
    return 0


def cmd_manifest_seed(args: argparse.Namespace, settings: Settings) -> int:
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
        pins, created=datetime.now(timezone.utc),
        provenance=Provenance(dag_run_id=None, requested_by=args.requested_by, ci_url=None),
    )
    stored = open_manifest_store(settings.manifest_store_url).seed(manifest)
    print_manifest(stored, as_json=args.json)
    return 0


def cmd_manifest_show(args: argparse.Namespace, settings: Settings) -> int:
    store = open_manifest_store(settings.manifest_store_url)
    manifest = store.get(args.version) if args.version else store.latest()
    if manifest is None:
        raise InputError(f"the manifest store {settings.manifest_store_url} is empty; seed L3 v1 first")
    print_manifest(manifest, as_json=args.json)
    return 0


def cmd_manifest_history(args: argparse.Namespace, settings: Settings) -> int:
    history = open_manifest_store(settings.manifest_store_url).history(limit=args.limit)
    if args.json:
        print(json.dumps([m.to_dict() for m in history], indent=2))
        return 0
    for m in history:
        change = str(m.change) if m.change else "seed"
        who = m.provenance.requested_by or "-"
        print(f"v{m.version:<4} {m.created:%Y-%m-%d %H:%M}Z  {change:<40} by {who}")
    return 0


def cmd_manifest_diff(args: argparse.Namespace, settings: Settings) -> int:
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


def print_manifest(manifest: Manifest, *, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(manifest.to_dict(), indent=2))
        return
    change = f", change: {manifest.change}" if manifest.change else ""
    parent = f", parent v{manifest.parent}" if manifest.parent else ""
    print(f"L3 manifest v{manifest.version} ({manifest.created:%Y-%m-%d %H:%M:%S}Z{parent}{change})")
    width = max((len(name) for name in manifest.services), default=0)
    for name, pin in manifest.services.items():
        print(f"  {name:<{width}}  {pin.chart_version:<12} {pin.digest or ''}")


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from stackyard.demo import run_demo

    return run_demo(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackyard", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log every tool command and its output")
    sub = parser.add_subparsers(dest="command", required=True)

    chart = sub.add_parser("chart", help="service charts").add_subparsers(dest="chart_command", required=True)
    publish = chart.add_parser("publish", help="check, package (profiles included) and publish a chart immutably")
    publish.add_argument("path", help="chart directory")
    publish.add_argument("--registry", help="dir:///path or oci://host/path (default: $STACKYARD_REGISTRY)")
    publish.add_argument("--json", action="store_true")
    publish.set_defaults(func=cmd_chart_publish)

    manifest = sub.add_parser("manifest", help="L3 manifests").add_subparsers(dest="manifest_command", required=True)
    seed = manifest.add_parser("seed", help="seed L3 v1 into an empty store")
    seed.add_argument("pins", nargs="+", metavar="SERVICE=VERSION")
    seed.add_argument("--requested-by", default=os.environ.get("USER"))
    seed.add_argument("--json", action="store_true")
    seed.set_defaults(func=cmd_manifest_seed)
    show = manifest.add_parser("show", help="a manifest (default: the latest L3)")
    show.add_argument("version", nargs="?", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_manifest_show)
    history = manifest.add_parser("history", help="every L3 version, newest first")
    history.add_argument("--limit", type=int)
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_manifest_history)
    mdiff = manifest.add_parser("diff", help="what changed between two versions")
    mdiff.add_argument("a", type=int)
    mdiff.add_argument("b", type=int)
    mdiff.add_argument("--json", action="store_true")
    mdiff.set_defaults(func=cmd_manifest_diff)

    demo = sub.add_parser("demo", help="the end-to-end demo `make demo` runs")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s"
    )
    try:
        return args.func(args, Settings.from_env())
    except (InputError, ConflictError) as exc:
        print(f"stackyard: {exc}", file=sys.stderr)
        return 1
    except StackyardError as exc:
        print(f"stackyard: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
