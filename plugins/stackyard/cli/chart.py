"""``stackyard chart``: a service's chart commands.

- ``init NAME``: a new chart that follows the contract (profiles, ``.sops.yaml``, an encrypted
  example secret, a helm test, the canary keys) and passes ``publish`` as generated;
- ``check PATH``: every check ``publish`` makes, without packaging or pushing;
- ``publish PATH``: a service's CI step — check, package with profiles, publish.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from stackyard.cli._common import cli_helm, registry_for_cli
from stackyard.core.stack_registry import load_registry
from stackyard.exceptions import InputError
from stackyard.adapters.runner import ToolRunner
from stackyard.adapters.sops import Sops, SopsConfig
from stackyard.steps.publishing import publish_chart, verify_chart
from stackyard.steps.scaffold import init_chart, scaffold_profiles
from stackyard.settings import Settings

#: Shipped with the package (the image has plugins/ on PYTHONPATH, so it has them too).
CHART_TEMPLATE = Path(__file__).with_name("templates") / "chart"


def register(sub: argparse._SubParsersAction) -> None:
    chart = sub.add_parser("chart", help="service charts").add_subparsers(dest="chart_command", required=True)
    init = chart.add_parser("init", help="create a service chart that follows the chart contract")
    init.add_argument("name", help="the service's name (a DNS label, at most 46 characters)")
    init.add_argument("--dir", default=".", help="where to create the chart folder NAME (default: here)")
    init.add_argument("--stacks", help="stack registry whose profiles to create (default: $STACKYARD_STACKS "
                                       "or include/stacks.yaml)")
    init.set_defaults(func=init_command)
    check = chart.add_parser("check", help="run every check of publish without packaging or pushing")
    check.add_argument("path", help="chart directory")
    check.set_defaults(func=check_command)
    publish = chart.add_parser("publish", help="check, package (profiles included) and publish a chart immutably")
    publish.add_argument("path", help="chart directory")
    publish.add_argument("--registry", help="dir:///path or oci://host/path (default: $STACKYARD_REGISTRY)")
    publish.add_argument("--json", action="store_true")
    publish.set_defaults(func=publish_command)


def init_command(args: argparse.Namespace, settings: Settings) -> int:
    stacks = Path(args.stacks) if args.stacks else settings.stacks_file
    try:
        text = stacks.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the stack registry {stacks}: {exc.strerror} (--stacks FILE)") from None
    profiles = scaffold_profiles(load_registry(text, str(stacks)))
    sops_binary = shutil.which("sops")
    if sops_binary is None:
        raise InputError("sops is not on PATH; chart init encrypts the example secrets with it (make setup installs it)")
    with tempfile.TemporaryDirectory(prefix="stackyard-sops-") as home:
        sops = Sops(SopsConfig(home=Path(home), binary=sops_binary, base_env=os.environ),
                    ToolRunner(log=logging.getLogger("stackyard.sops")))
        dest = init_chart(args.name, args.dir, template_dir=CHART_TEMPLATE, profiles=profiles, sops=sops)
    print(f"created {dest} with profiles {', '.join(p.name for p in profiles)}")
    print(f"next: put your image in {dest / 'values.yaml'}, the KMS key ARNs in {dest / '.sops.yaml'}, then "
          f"`stackyard chart check {dest}` and `stackyard chart publish {dest}`")
    return 0


def check_command(args: argparse.Namespace, settings: Settings) -> int:
    with cli_helm(settings) as helm:
        chart = verify_chart(args.path, helm=helm)
    print(f"{args.path}: {chart.name} {chart.version} passes publish's checks "
          f"(profiles: {', '.join(sorted(chart.profiles)) or 'none'})")
    return 0


def publish_command(args: argparse.Namespace, settings: Settings) -> int:
    with cli_helm(settings) as helm:
        ref = publish_chart(args.path, registry=registry_for_cli(settings, helm, args.registry), helm=helm)
    if args.json:
        print(json.dumps({"name": ref.name, "version": ref.version, "digest": ref.digest}))
    else:
        print(f"published {ref.name} {ref.version} {ref.digest}")
    return 0
