"""Umbrella build: stackyard's builder (warm content-addressed cache) vs `helm dependency build`.

Both produce an installable umbrella of N generated service charts published to a real OCI
registry (Debian's docker-registry on loopback). The baseline is what a Helmfile/umbrella setup
does: `helm dependency build` from the registry, then `helm package`. Goal: at least 10x faster.
Prints medians of 3 runs and the ratio; measured in the same run, on the same machine.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from stackyard.core.manifest import Manifest, Provenance, ServicePin
from stackyard.steps.publishing import build_manifest_package, load_umbrella_template
from stackyard.settings import PROJECT_ROOT
from stackyard.adapters.chart_registry import ChartCache, OciRegistry
from stackyard.adapters.helm import Helm, HelmConfig
from tests.support.oci_registry import local_oci_registry

SIZES = [int(n) for n in os.environ.get("BENCH_SERVICES", "50,300").split(",")]
REPEATS = 3

CHART_TEMPLATE = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector: {matchLabels: {app: {{ .Chart.Name }}}}
  template:
    metadata: {labels: {app: {{ .Chart.Name }}}}
    spec:
      containers: [{name: app, image: "example/{{ .Chart.Name }}:{{ .Chart.Version }}"}]
"""


def generate_charts(root: Path, count: int) -> list[Path]:
    charts = []
    for i in range(count):
        chart = root / f"svc{i:03d}"
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: svc{i:03d}\nversion: 1.0.{i}\n")
        (chart / "values.yaml").write_text("replicaCount: 1\n")
        (chart / "templates" / "deployment.yaml").write_text(CHART_TEMPLATE)
        charts.append(chart)
    return charts


def median_seconds(fn) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench(count: int, work: Path, helm: Helm, host: str) -> None:
    url = f"oci://{host}/bench{count}"
    registry = OciRegistry(url, ChartCache(work / "cache"), helm)
    sources = generate_charts(work / "src", count)
    packages = work / "packages"
    started = time.perf_counter()
    pins = {}
    for chart in sources:
        ref = registry.publish(helm.package(chart, packages))
        pins[ref.name] = ServicePin(ref.version, ref.digest)
    publish_seconds = time.perf_counter() - started
    manifest = Manifest.initial(pins, datetime(2026, 1, 1, tzinfo=timezone.utc), Provenance(None, "bench", None))
    template = load_umbrella_template(PROJECT_ROOT / "include" / "umbrella")

    def stackyard_build() -> bytes:
        return build_manifest_package(manifest, registry=registry, template=template)[1]

    umbrella_dir = work / "helm-umbrella"

    def helm_dependency_build() -> None:
        shutil.rmtree(umbrella_dir, ignore_errors=True)
        umbrella_dir.mkdir()
        deps = [{"name": n, "version": p.chart_version, "repository": url} for n, p in pins.items()]
        (umbrella_dir / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": "l3", "version": "1.0.0",
                                                                 "dependencies": deps}))
        helm.dependency_build(umbrella_dir)
        helm.package(umbrella_dir, work / "helm-out")

    ours = median_seconds(stackyard_build)
    baseline = median_seconds(helm_dependency_build)
    identical = stackyard_build() == stackyard_build()
    print(f"{count:>4} services | publish {publish_seconds:6.1f}s | helm dependency build + package "
          f"{baseline:6.3f}s | stackyard (warm cache) {ours:6.3f}s | ratio {baseline / ours:6.1f}x "
          f"(goal >= 10x) | byte-identical rebuild: {identical}")


def main() -> None:
    print(__doc__.strip().splitlines()[0])
    with tempfile.TemporaryDirectory(prefix="bench-umbrella-") as tmp:
        tmp = Path(tmp)
        with local_oci_registry(tmp / "registry") as host:
            helm = Helm(HelmConfig(home=tmp / "helm", plain_http=True, binary=shutil.which("helm") or "helm",
                                   base_env=os.environ))
            for count in SIZES:
                bench(count, tmp / f"n{count}", helm, host)


if __name__ == "__main__":
    main()
