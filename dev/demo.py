"""``make demo``: the L3 gate end to end on a fresh machine, against the kube sandbox.

1. publish the example charts and seed L3 v1;
2. a good version bump goes through ``l3_gate`` (``airflow dags test``, real operators): promoted;
3. a bump whose chart ships a failing test goes through the gate: rejected, L3 unchanged;
4. check that no ephemeral stack is left behind. Exit 0 only if all of that happened.

State lives in a fresh ``.stackyard/demo/`` each run, so the demo always tells the same story:
its own registry, L3 manifest store, record store, kube sandbox and Airflow home
(``.stackyard/demo/airflow``, a freshly migrated DB). Nothing is shared with ``make up``'s
``.stackyard/{registry,manifests,records,airflow}`` but the content-addressed chart cache.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from stackyard.core.ephemeral import LABEL_STACK_TYPE, StackType
from stackyard.settings import Settings
from stackyard.adapters.manifest_store import open_manifest_store

CHECKOUT = Path(__file__).resolve().parents[1]

#: What the failing variant's test expects from its service: a text no version serves, so the test
#: fails for a real reason on a cluster; on the sandbox the rule of SANDBOX_RULES says the same.
NOT_SERVED = "a response no version serves"
#: The kube sandbox's outcome rules for local mode, the demo and the tests (kube_sandbox/README.md).
SANDBOX_RULES = Path(__file__).resolve().with_name("sandbox-rules.yaml")


def chart_variant(source: Path, dest: Path, *, version: str, failing_test: bool = False) -> Path:
    """A copy of a chart at another version, optionally shipping a test that fails.

    This stands in for a developer's commit: what CI would package and publish next (the image is
    the chart's own: its tag does not change, so it is in the local image mirror already).
    """
    shutil.copytree(source, dest)
    chart_yaml = yaml.safe_load((dest / "Chart.yaml").read_text())
    chart_yaml["version"] = chart_yaml["appVersion"] = version
    (dest / "Chart.yaml").write_text(yaml.safe_dump(chart_yaml, sort_keys=False))
    if failing_test:  # the service answers "<chart> <version>"; the test expects something else
        values = yaml.safe_load((dest / "values.yaml").read_text())
        values["tests"] = {**values.get("tests", {}), "enabled": True, "expect": NOT_SERVED}
        (dest / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    return dest


@dataclass
class GateRun:
    label: str
    service: str
    version: str
    exit_code: int
    seconds: float
    log: Path


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(settings: Settings) -> int:
    from kube_sandbox import Sandbox

    from stackyard.cli._common import cli_helm, print_manifest, registry_for_cli
    from stackyard.core.manifest import Manifest, Provenance
    from stackyard.steps.publishing import pin_of, publish_chart

    started = time.monotonic()
    demo_home = settings.home / "demo"
    shutil.rmtree(demo_home, ignore_errors=True)
    demo_home.mkdir(parents=True)
    airflow_home = _local_env().fresh_airflow_home(CHECKOUT, demo_home / "airflow")
    demo = Settings.from_env({
        **os.environ,
        "STACKYARD_HOME": str(settings.home),  # shares the chart cache with local mode
        "STACKYARD_REGISTRY": f"dir://{demo_home / 'registry'}",
        "STACKYARD_MANIFEST_STORE": f"file://{demo_home / 'manifests'}",
        "STACKYARD_RECORD_STORE": f"file://{demo_home / 'records'}",
    })
    store = open_manifest_store(demo.manifest_store_url)
    logging.getLogger("kube_sandbox").setLevel(logging.WARNING)

    from dev.image_mirror import pulled_digest, serve as image_mirror
    from stackyard.adapters.image_registry import ImageResolver
    from stackyard.core.images import parse_mirrors

    with Sandbox(ready_delay=0.2, kubeconfig=demo_home / "kubeconfig", rules=str(SANDBOX_RULES)) as sandbox, \
            image_mirror(settings.home) as mirrors:
        images = ImageResolver(mirrors=parse_mirrors(mirrors))
        sandbox.image_digest = pulled_digest(mirrors)  # pods' imageID: what the mirror holds
        env = {
            **os.environ,
            "STACKYARD_IMAGE_MIRRORS": mirrors,
            "STACKYARD_REGISTRY": demo.registry_url,
            "STACKYARD_MANIFEST_STORE": demo.manifest_store_url,
            "STACKYARD_RECORD_STORE": demo.records_url,
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "KUBECONFIG": str(sandbox.kubeconfig_path),
            "AIRFLOW_CONN_STACKYARD_KUBE": json.dumps(
                {"conn_type": "kubernetes", "extra": {"kube_config_path": str(sandbox.kubeconfig_path)}}
            ),
        }
        _say(f"== kube sandbox at {sandbox.url}; demo state in {demo_home}")

        _say(f"== image mirror (offline): {mirrors}")
        _say("== 1. CI publishes the example service charts (profiles inside, secrets encrypted, images locked by digest)")
        with cli_helm(demo) as helm, tempfile.TemporaryDirectory(prefix="stackyard-demo-") as work:
            registry = registry_for_cli(demo, helm)
            pins = {}
            for chart_dir in sorted(p for p in demo.charts_dir.iterdir() if (p / "Chart.yaml").is_file()):
                ref = publish_chart(chart_dir, registry=registry, helm=helm, images=images)
                pins[ref.name] = pin_of(registry, ref)
                _say(f"   published {ref.name} {ref.version} {ref.digest[:19]}…")
            good = chart_variant(demo.charts_dir / "orders", Path(work) / "orders", version="1.1.0")
            bad = chart_variant(demo.charts_dir / "catalog", Path(work) / "catalog", version="1.1.0", failing_test=True)
            for variant in (good, bad):
                ref = publish_chart(variant, registry=registry, helm=helm, images=images)
                note = " (its test fails)" if variant == bad else ""
                _say(f"   published {ref.name} {ref.version}{note}")

        from stackyard.core.times import utc_now

        seeded = store.seed(Manifest.initial(
            pins, created=utc_now(), provenance=Provenance(None, "make demo", None),
        ))
        _say("\n== 2. L3 manifest before the gate")
        print_manifest(seeded)

        runs = [
            _gate(env, demo_home, "good bump", "orders", "1.1.0"),
            _gate(env, demo_home, "bump with a failing test", "catalog", "1.1.0"),
        ]

        after = store.latest()
        _say("\n== 5. L3 manifest after the gate")
        print_manifest(after)
        leftovers = _ephemeral_namespaces(sandbox.kubeconfig_path)

    rejections = store.rejections(limit=1)
    _say("\n== Outcome")
    for run in runs:
        outcome = "promoted" if run.exit_code == 0 else "rejected"
        _say(f"   {run.label:<26} {run.service} {run.version}: {outcome} in {run.seconds:.1f}s (log: {run.log})")
    if rejections:
        _say(f"   rejection recorded: {rejections[0].reason}")
    _say(f"   ephemeral stacks left: {', '.join(leftovers) or 'none'}")
    _say(f"   total {time.monotonic() - started:.1f}s")

    expected = (
        runs[0].exit_code == 0 and runs[1].exit_code != 0
        and after.version == seeded.version + 1 and after.services["orders"].chart_version == "1.1.0"
        and after.services["catalog"].chart_version == "1.0.0"
        and len(rejections) == 1 and not leftovers
    )
    _say("\nDEMO OK: one candidate promoted, one rejected, L3 consistent, nothing left behind" if expected
         else "\nDEMO FAILED: the outcomes above are not the expected ones")
    return 0 if expected else 1


def _local_env():
    """scripts/local_env.py (standard library only, not a package): the Airflow homes' one definition."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("local_env", CHECKOUT / "scripts" / "local_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gate(env: dict[str, str], demo_home: Path, label: str, service: str, version: str) -> GateRun:
    step = "3" if label == "good bump" else "4"
    _say(f"\n== {step}. l3_gate for {service} {version} ({label}) via `airflow dags test`")
    log = demo_home / f"l3_gate-{service}-{version}.log"
    conf = {"service": service, "chart_version": version, "requested_by": "make demo"}
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "dags", "test", "l3_gate", "--conf", json.dumps(conf)],
            env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
        )
    seconds = time.monotonic() - started
    for line in log.read_text().splitlines():
        if line.startswith(("candidate ", "created ephemeral", "promoted:", "rejected ", "deleted stack", "L3 gate:")):
            _say(f"   {line}")
    return GateRun(label, service, version, proc.returncode, seconds, log)


def _ephemeral_namespaces(kubeconfig: Path) -> list[str]:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    selector = f"{LABEL_STACK_TYPE}={StackType.EPHEMERAL.value}"
    return [ns.metadata.name for ns in api.list_namespace(label_selector=selector).items
            if not (ns.status and ns.status.phase == "Terminating")]
