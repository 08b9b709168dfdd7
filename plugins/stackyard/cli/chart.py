"""``stackyard chart publish PATH``: a service's CI step — check the chart contract (the profiles
the stacks of ``$STACKYARD_STACKS`` need, encrypted secrets), package with profiles, publish."""

from __future__ import annotations

import argparse
import json

from stackyard.cli._common import cli_helm, registry_for_cli
from stackyard.steps.publishing import publish_chart, registry_stacks
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
                            stacks=registry_stacks(settings.stacks_file))
    if args.json:
        print(json.dumps({"name": ref.name, "version": ref.version, "digest": ref.digest}))
    else:
        print(f"published {ref.name} {ref.version} {ref.digest}")
    return 0
