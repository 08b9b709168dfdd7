"""``stackyard chart publish PATH``: a service's CI step — check, package with profiles, publish."""

from __future__ import annotations

import argparse
import json

from stackyard.cli._common import cli_helm, image_resolver_for_cli, registry_for_cli
from stackyard.steps.publishing import publish_chart
from stackyard.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    chart = sub.add_parser("chart", help="service charts").add_subparsers(dest="chart_command", required=True)
    publish = chart.add_parser("publish", help="check, package (profiles included) and publish a chart immutably")
    publish.add_argument("path", help="chart directory")
    publish.add_argument("--registry", help="dir:///path or oci://host/path (default: $STACKYARD_REGISTRY)")
    publish.add_argument("--json", action="store_true")
    publish.set_defaults(func=publish_command)


def publish_command(args: argparse.Namespace, settings: Settings) -> int:
    with cli_helm(settings) as helm:
        ref = publish_chart(args.path, registry=registry_for_cli(settings, helm, args.registry), helm=helm,
                            images=image_resolver_for_cli(settings))
    if args.json:
        print(json.dumps({"name": ref.name, "version": ref.version, "digest": ref.digest}))
    else:
        print(f"published {ref.name} {ref.version} {ref.digest}")
    return 0
