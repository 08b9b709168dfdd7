"""Bench of the L3 gate: what Airflow costs on top of the helm/sops work, and whether the umbrella
fits in one helm release.

Measured in one run, against one kube sandbox (in this process) and private stores:

1. **Gate wall time** — ``dag.test()`` of ``l3_gate`` on the promote path (a good ``orders`` bump),
   run in a child process (cold: the first run in that process; warm: the next one), against
   **by hand** — a script running the same commands without Airflow (sops decrypt of each
   service's ephemeral secrets, build the umbrella, create the namespace, ``helm upgrade --install
   --server-side=true --wait=watcher --rollback-on-failure``, ``helm test --logs``, ``helm
   uninstall``, delete the namespace). Ratio gate / by hand; goal ≤ 1.3×. Where the gate's time
   goes: per task, and the time spent inside helm/sops/kubectl vs the rest. Done twice: with
   workloads ready after 0.2 s (an idle emulator: helm's work is tiny, fixed costs dominate) and
   after 3 s (closer to real pods).
2. **Under a real scheduler**: ``airflow standalone`` (LocalExecutor, one process per task),
   triggered through the REST API like ``stackyard gate``: wall time per run, and the **peak
   RSS** of every process born during the runs (task processes and their helm/sops), sampled.
3. **Parse time** of ``dags/l3_gate.py``: ``DagBag`` of that one file in a fresh process
   (as the dag-processor does), median of 3.
4. **Release Secret size**: umbrellas of 50, 150, 300 generated services (each a copy of an
   example chart with its own name, values and profile files of the same size and entropy as
   real SOPS files, so they compress independently) installed into the sandbox as one release;
   the decoded size of helm's release Secret vs the 1 MiB cap, and the extrapolated count of
   services at which it would reach the cap.

No pass/fail: prints a report and writes JSON (``--out``, default ``.stackyard/bench/gate_overhead.json``).

    make bench        or        python bench/gate_overhead/run.py [--runs 2] [--sizes 50,150,300]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import base64
import gzip
import io
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "include" / "charts"
AGE_KEY = ROOT / "include" / "keys" / "example-only" / "age.key"
SECRET_CAP = 1024 * 1024
GATE_TASKS = ("validate", "build_candidate", "create_stack", "deploy", "system_tests", "promote",
              "needs_retest", "reject", "requeue", "teardown", "summary")


def say(text: str = "") -> None:
    print(text, flush=True)


# ----------------------------------------------------------------------------- child modes


def child_parse() -> None:
    """One parse of the gate's DAG file in a fresh interpreter, like the dag-processor."""
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    imported = time.perf_counter()
    bag = DagBag(dag_folder=str(ROOT / "dags" / "l3_gate.py"))
    assert not bag.import_errors, bag.import_errors
    stats = bag.dagbag_stats[0]
    print(json.dumps({"parse_seconds": stats.duration.total_seconds() if hasattr(stats.duration, "total_seconds")
                      else float(stats.duration), "airflow_import_seconds": imported - started}))


def child_gate(versions: list[str]) -> None:
    """Run the gate once per version with dag.test(); report wall, per-task and tool time, RSS."""
    from airflow.dag_processing.dagbag import DagBag

    from stackyard.adapters import runner as runner_module

    tool_seconds: dict[str, float] = {}
    original = runner_module.ToolRunner.run

    def timed(self, tool, argv, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, tool, argv, **kwargs)
        finally:
            key = f"{tool} {argv[1] if len(argv) > 1 else ''}".strip()
            tool_seconds[key] = tool_seconds.get(key, 0.0) + time.perf_counter() - started

    runner_module.ToolRunner.run = timed
    dag = DagBag(dag_folder=str(ROOT / "dags" / "l3_gate.py")).get_dag("l3_gate")
    runs = []
    for version in versions:
        tool_seconds.clear()
        started = time.perf_counter()
        run = dag.test(run_conf={"service": "orders", "chart_version": version, "requested_by": "bench"})
        wall = time.perf_counter() - started
        tis = {ti.task_id: ti for ti in run.get_task_instances()}
        runs.append({
            "version": version, "state": run.state, "wall_seconds": wall,
            "tasks": {t: {"state": tis[t].state, "seconds": tis[t].duration} for t in GATE_TASKS if t in tis},
            "tool_seconds": dict(tool_seconds),
        })
    print(json.dumps({
        "runs": runs,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


# ----------------------------------------------------------------------------- set-up


class Bench:
    def __init__(self, tmp: Path, sandbox) -> None:
        from stackyard.settings import Settings
        from stackyard.adapters.manifest_store import open_manifest_store
        from stackyard.adapters.chart_registry import open_registry
        from stackyard.adapters.helm import Helm, HelmConfig

        self.tmp, self.sandbox = tmp, sandbox
        self._resources = contextlib.ExitStack()  # the image mirror, closed when the process ends
        atexit.register(self._resources.close)
        home = tmp / "stackyard"
        kubeconfig = str(sandbox.kubeconfig_path)
        # The by-hand script runs helm and sops only, so the gate runs without the optional
        # system-test suite pod of include/gate.yaml: the same work on both sides.
        no_suite = tmp / "gate-without-suite.yaml"
        no_suite.write_text("{}\n")
        self.env = {
            **os.environ,
            "STACKYARD_HOME": str(home),
            "STACKYARD_REGISTRY": f"dir://{home / 'registry'}",
            "STACKYARD_MANIFEST_STORE": f"file://{home / 'manifests'}",
            "STACKYARD_GATE_CONFIG": str(no_suite),
            "KUBECONFIG": kubeconfig,
            "AIRFLOW_CONN_STACKYARD_KUBE": json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": kubeconfig}}),
            "AIRFLOW_CONN_STACKYARD_SOPS": json.dumps({"conn_type": "generic", "extra": {"age_key_file": str(AGE_KEY)}}),
        }
        self.settings = Settings.from_env(self.env)
        self.helm = Helm(HelmConfig(home=tmp / "helm", kubeconfig=kubeconfig, base_env=os.environ))
        self.registry = open_registry(self.settings.registry_url, cache_dir=self.settings.cache_dir, helm=self.helm)
        self.store = open_manifest_store(self.settings.manifest_store_url)

    def seed(self, versions: list[str]) -> None:
        from dev.demo import chart_variant
        from stackyard.core.manifest import Manifest, Provenance, ServicePin
        from stackyard.steps.publishing import publish_chart

        from dev.image_mirror import serve
        from stackyard.adapters.image_registry import ImageResolver
        from stackyard.core.images import parse_mirrors

        pins = {}
        # Served as long as the bench runs: every gate deploy checks the pinned images first.
        mirrors = self._resources.enter_context(serve(self.tmp / "image-mirror"))
        self.env["STACKYARD_IMAGE_MIRRORS"] = mirrors
        images = ImageResolver(mirrors=parse_mirrors(mirrors))
        for chart in sorted(p for p in CHARTS.iterdir() if (p / "Chart.yaml").is_file()):
            ref = publish_chart(chart, registry=self.registry, helm=self.helm, images=images)
            pins[ref.name] = ServicePin(ref.version, ref.digest)
        self.store.seed(Manifest.initial(pins, datetime.now(timezone.utc), Provenance(None, "bench", None)))
        for version in versions:
            publish_chart(chart_variant(CHARTS / "orders", self.tmp / "variants" / version, version=version),
                          registry=self.registry, helm=self.helm, images=images)

    def gate(self, versions: list[str]) -> dict:
        out = subprocess.run([sys.executable, __file__, "--child", "gate", "--versions", ",".join(versions)],
                             env=self.env, capture_output=True, text=True, check=False)
        last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        if out.returncode != 0 or not last.startswith("{"):
            raise RuntimeError(f"gate child failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return json.loads(last)

    def standalone(self, versions: list[str]) -> dict:
        """The gate under a real scheduler (airflow standalone, LocalExecutor: a process per task),
        triggered through the REST API; RSS of every process born during the run, sampled."""
        import psutil

        from stackyard.cli.gate import AirflowApi
        from dev.local import AirflowServer, free_port

        server = AirflowServer(home=self.tmp / "airflow", env=self.env, port=free_port(), parallelism=2)
        started = time.perf_counter()
        with server:
            boot = time.perf_counter() - started
            api = AirflowApi(server.url, server.user, server.password)
            root = psutil.Process(server.process.pid)
            known = {p.pid for p in root.children(recursive=True)} | {root.pid}
            runs, peak = [], {}
            for version in versions:
                run_id = api.trigger({"service": "orders", "chart_version": version})["dag_run_id"]
                started = time.perf_counter()
                while (state := api.run(run_id)["state"]) not in ("success", "failed"):
                    for proc in root.children(recursive=True):
                        if proc.pid in known:
                            continue
                        try:
                            rss, name = proc.memory_info().rss, " ".join(proc.cmdline()[:3])
                        except psutil.Error:
                            continue
                        if rss > peak.get(proc.pid, (0, ""))[0]:
                            peak[proc.pid] = (rss, name)
                    time.sleep(0.1)
                runs.append({"version": version, "state": state, "wall_seconds": time.perf_counter() - started})
        tools = ("helm", "sops", "kubectl")
        task_peaks = [rss for rss, name in peak.values() if not any(t in name for t in tools)]
        tool_peaks = [rss for rss, name in peak.values() if any(t in name for t in tools)]
        return {"boot_seconds": boot, "runs": runs,
                "task_process_peak_rss_mib": max(task_peaks, default=0) / 2**20,
                "tool_process_peak_rss_mib": max(tool_peaks, default=0) / 2**20,
                "processes_sampled": len(peak)}

    def by_hand(self, version: str, index: int) -> dict:
        """The gate's helm/sops/kubectl work for L3 + orders ``version``, without Airflow."""
        from stackyard.core.deployment import deployment_layers
        from stackyard.core.manifest import Provenance, propose
        from stackyard.core.values import compose
        from stackyard.steps.publishing import build_manifest_package, load_umbrella_template

        steps: dict[str, float] = {}

        def step(name, fn):
            started = time.perf_counter()
            result = fn()
            steps[name] = steps.get(name, 0.0) + time.perf_counter() - started
            return result

        started = time.perf_counter()
        namespace = f"by-hand-{index}"
        kubectl = ["kubectl", "--kubeconfig", str(self.sandbox.kubeconfig_path)]
        latest = self.store.latest()
        ref = self.registry.resolve("orders", version)
        candidate = propose(latest, "orders", version, ref.digest, datetime.now(timezone.utc), Provenance(None, "bench", None))
        _, data = step("build umbrella", lambda: build_manifest_package(
            candidate, registry=self.registry, template=load_umbrella_template(ROOT / "include" / "umbrella"),
            candidate=True))
        work = Path(tempfile.mkdtemp(prefix="by-hand-", dir=self.tmp))
        package = work / "l3.tgz"
        package.write_bytes(data)

        def sops_decrypt(profile):
            out = subprocess.run(["sops", "decrypt", "--input-type", "yaml", "--output-type", "json", "/dev/stdin"],
                                 input=profile.secrets, capture_output=True, check=True,
                                 env={**os.environ, "SOPS_AGE_KEY_FILE": str(AGE_KEY)})
            return json.loads(out.stdout)

        layers = step("sops decrypt + values", lambda: deployment_layers(
            data, origin="l3.tgz", profile="ephemeral", stack=namespace, namespace=namespace, decrypt=sops_decrypt))
        values = work / "values.json"
        fd = os.open(values, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(compose(layers), fh)
        run = lambda argv: subprocess.run(argv, capture_output=True, check=True)  # noqa: E731
        step("kubectl create namespace", lambda: run([*kubectl, "create", "namespace", namespace]))
        step("helm upgrade --install", lambda: run([
            "helm", "upgrade", "l3", str(package), "--install", "--namespace", namespace, "--server-side=true",
            "--timeout", "10m0s", "-f", str(values), "--wait=watcher", "--rollback-on-failure",
            "--kubeconfig", str(self.sandbox.kubeconfig_path)]))
        step("helm test", lambda: run(["helm", "test", "l3", "--namespace", namespace, "--logs",
                                       "--kubeconfig", str(self.sandbox.kubeconfig_path)]))
        step("helm uninstall", lambda: run(["helm", "uninstall", "l3", "--namespace", namespace,
                                            "--kubeconfig", str(self.sandbox.kubeconfig_path)]))
        step("kubectl delete namespace", lambda: run([*kubectl, "delete", "namespace", namespace, "--wait=false"]))
        return {"version": version, "wall_seconds": time.perf_counter() - started, "steps": steps}


# ----------------------------------------------------------------------------- release size


def _tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def generated_chart(index: int, rng: random.Random) -> tuple[str, bytes]:
    """A service chart like the examples (templates, values, 4 profiles with SOPS-sized secrets),
    with its own name and content so that charts do not compress into each other."""
    name = f"svc-{index:03d}"
    source = CHARTS / "orders"
    files: dict[str, bytes] = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = str(path.relative_to(source))
        text = path.read_text().replace("orders", name)
        if rel.endswith("secrets.yaml"):  # same length and alphabet as real ciphertext, fresh bytes
            text = re.sub(r"[A-Za-z0-9+/]{16,}", lambda m: base64.b64encode(rng.randbytes(len(m[0]))).decode()[:len(m[0])], text)
        if rel == "values.yaml":  # per-service configuration, rendered into its ConfigMap
            text += "\nsettings:\n" + "".join(f"  KEY_{k}: \"{rng.randbytes(12).hex()}\"\n" for k in range(24))
        if rel == "templates/configmap.yaml":
            text += "{{- range $k, $v := .Values.settings }}\n  {{ $k }}: {{ $v | quote }}\n{{- end }}\n"
        files[f"{name}/{rel}"] = text.encode()
    return name, _tgz(files)


def release_secret_size(bench: Bench, services: int) -> dict:
    from kubernetes import client, config

    from stackyard.core.umbrella import VendoredChart, build_umbrella
    from stackyard.steps.publishing import load_umbrella_template

    rng = random.Random(services)
    charts = []
    for i in range(services):
        name, data = generated_chart(i, rng)
        charts.append(VendoredChart(name, "1.0.0", data))
    package = bench.tmp / f"umbrella-{services}.tgz"
    package.write_bytes(build_umbrella(load_umbrella_template(ROOT / "include" / "umbrella"), "1.0.0", charts))
    namespace = f"size-{services}"
    # The values the gate passes land in the release too: per service a profile's overrides and two
    # decrypted secrets, plus the stack values.
    values = {"global": {"stackyard": {"stack": namespace, "namespace": namespace, "profile": "ephemeral"}}}
    for chart in charts:
        values[chart.name] = {"replicaCount": 1, "config": {"logLevel": "info", "database": {"host": f"{chart.name}-db"}},
                              "secrets": {"DATABASE_PASSWORD": rng.randbytes(18).hex(), "API_TOKEN": rng.randbytes(24).hex()}}
    values_file = bench.tmp / f"values-{services}.json"
    values_file.write_text(json.dumps(values))
    started = time.perf_counter()
    subprocess.run(["helm", "install", "l3", str(package), "-f", str(values_file), "--namespace", namespace, "--create-namespace",
                    "--server-side=true", "--kubeconfig", str(bench.sandbox.kubeconfig_path)],
                   capture_output=True, check=True)
    install = time.perf_counter() - started
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(bench.sandbox.kubeconfig_path)))
    [secret] = api.list_namespaced_secret(namespace, label_selector="owner=helm,name=l3").items
    stored = base64.b64decode(secret.data["release"])  # what the Secret holds: helm's base64(gzip(json))
    release_json = gzip.decompress(base64.b64decode(stored))
    # left in place: the sandbox goes away with the bench (deleting it races the sandbox's controllers)
    return {"services": services, "package_bytes": package.stat().st_size, "secret_data_bytes": len(stored),
            "gzip_bytes": len(base64.b64decode(stored)), "release_json_bytes": len(release_json),
            "share_of_cap": len(stored) / SECRET_CAP, "install_seconds": install}


def overhead(tmp: Path, sandbox, delay: float, runs: int) -> dict:
    """Gate (dag.test) vs by hand on one sandbox whose workloads become ready after ``delay`` s."""
    bench = Bench(tmp, sandbox)
    gate_versions = [f"1.{i + 1}.0" for i in range(runs)]
    hand_versions = [f"1.{runs + i + 1}.0" for i in range(runs)]
    bench.seed(gate_versions + hand_versions)
    say(f"\n== gate (dag.test, promote path) x{runs} vs the same commands by hand x{runs}; readiness after {delay:g} s")
    hand = [bench.by_hand(hand_versions[0], 0)]  # warms helm/sops/kubectl file caches for both sides
    gate = bench.gate(gate_versions)
    hand += [bench.by_hand(v, i) for i, v in enumerate(hand_versions[1:], start=1)]
    bad = [r for r in gate["runs"] if r["state"] != "success"]
    if bad:
        raise RuntimeError(f"a gate run did not promote: {bad}")
    hand_median = statistics.median(r["wall_seconds"] for r in hand)
    cold = gate["runs"][0]["wall_seconds"]
    warm_runs = gate["runs"][1:] or gate["runs"]
    warm = statistics.median(r["wall_seconds"] for r in warm_runs)
    say(f"   by hand: {hand_median:.2f} s (median)   gate warm: {warm:.2f} s   gate cold (first in process): {cold:.2f} s")
    say(f"   ratio gate/by hand: warm {warm / hand_median:.2f}x, cold {cold / hand_median:.2f}x (goal <= 1.3x)")
    last = warm_runs[-1]
    tools = sum(last["tool_seconds"].values())
    tasks = sum((t["seconds"] or 0) for t in last["tasks"].values())
    say(f"   where the warm gate run's {last['wall_seconds']:.2f} s go: tasks {tasks:.2f} s "
        f"(inside helm/sops {tools:.2f} s), between tasks {last['wall_seconds'] - tasks:.2f} s")
    for task, info in last["tasks"].items():
        say(f"     {task:<16} {info['state']:<8} {(info['seconds'] or 0):6.2f} s")
    say("   tool time in the warm gate run:")
    for tool, seconds in sorted(last["tool_seconds"].items(), key=lambda kv: -kv[1]):
        say(f"     {tool:<26} {seconds:6.2f} s")
    say("   by hand, per step (median run):")
    median_hand = sorted(hand, key=lambda r: r["wall_seconds"])[len(hand) // 2]
    for name, seconds in median_hand["steps"].items():
        say(f"     {name:<26} {seconds:6.2f} s")
    # (RUSAGE_CHILDREN is not reported: a forked helm is charged the parent's pages before exec)
    say(f"   peak RSS of the dag.test process (hosts every task): {gate['peak_rss_mib']:.0f} MiB")
    return {"ready_delay": delay, "gate": gate, "by_hand": hand,
            "ratio": {"warm": warm / hand_median, "cold": cold / hand_median}}


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="gate runs (first cold, rest warm) and by-hand runs")
    parser.add_argument("--sizes", default="50,150,300", help="umbrella sizes for the release Secret")
    parser.add_argument("--ready-delays", default="0.2,3",
                        help="sandbox readiness delays (s) to compare at: 0.2 = an idle emulator, 3 = closer to pods")
    parser.add_argument("--no-standalone", action="store_true", help="skip the run under airflow standalone")
    parser.add_argument("--out", type=Path, default=ROOT / ".stackyard" / "bench" / "gate_overhead.json")
    parser.add_argument("--child", choices=["parse", "gate"], help=argparse.SUPPRESS)
    parser.add_argument("--versions", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "parse":
        child_parse()
        return 0
    if args.child == "gate":
        child_gate(args.versions.split(","))
        return 0

    import logging

    from kube_sandbox import Sandbox

    logging.getLogger("kube_sandbox").setLevel(logging.WARNING)
    results: dict = {"machine": {"cpus": os.cpu_count()}}

    say("== parse time of dags/l3_gate.py (fresh process, median of 3)")
    parses = []
    for _ in range(3):
        out = subprocess.run([sys.executable, __file__, "--child", "parse"], capture_output=True, text=True, check=True)
        parses.append(json.loads(out.stdout.strip().splitlines()[-1]))
    parse = statistics.median(p["parse_seconds"] for p in parses)
    results["parse"] = {"median_seconds": parse, "runs": parses}
    say(f"   DagBag parse of l3_gate.py: {parse * 1000:.0f} ms "
        f"(importing airflow before it: {statistics.median(p['airflow_import_seconds'] for p in parses):.2f} s)")

    for delay in [float(d) for d in args.ready_delays.split(",")]:
        with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp, Sandbox(ready_delay=delay) as sandbox:
            results.setdefault("overhead", []).append(overhead(Path(tmp), sandbox, delay, args.runs))

    if not args.no_standalone:
        with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp, Sandbox(ready_delay=0.2) as sandbox:
            bench = Bench(Path(tmp), sandbox)
            versions = [f"1.{i + 1}.0" for i in range(args.runs)]
            bench.seed(versions)
            say("\n== the gate under airflow standalone (LocalExecutor, REST API trigger), sandbox readiness 0.2 s")
            served = bench.standalone(versions)
            results["standalone"] = served
            walls = [r["wall_seconds"] for r in served["runs"]]
            say(f"   server start {served['boot_seconds']:.1f} s; gate runs {', '.join(f'{w:.1f} s' for w in walls)} "
                f"({', '.join(r['state'] for r in served['runs'])})")
            say(f"   peak RSS of a task process {served['task_process_peak_rss_mib']:.0f} MiB, of a helm/sops process "
                f"{served['tool_process_peak_rss_mib']:.0f} MiB ({served['processes_sampled']} processes sampled)")

    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp, Sandbox(ready_delay=0.2) as sandbox:
        bench = Bench(Path(tmp), sandbox)
        say("\n== helm release Secret of the umbrella as one release (cap 1 MiB)")
        sizes = [release_secret_size(bench, int(n)) for n in args.sizes.split(",")]
        results["release_secret"] = sizes
        for s in sizes:
            say(f"   {s['services']:>4} services: Secret data {s['secret_data_bytes'] / 1024:7.1f} KiB "
                f"({s['share_of_cap']:.1%} of the cap; release JSON {s['release_json_bytes'] / 1024:.0f} KiB, "
                f"install {s['install_seconds']:.1f} s)")
        if len(sizes) >= 2:
            per_service = (sizes[-1]["secret_data_bytes"] - sizes[0]["secret_data_bytes"]) / (sizes[-1]["services"] - sizes[0]["services"])
            base = sizes[0]["secret_data_bytes"] - per_service * sizes[0]["services"]
            at_cap = int((SECRET_CAP - base) / per_service)
            results["release_secret_extrapolation"] = {"bytes_per_service": per_service, "services_at_cap": at_cap}
            say(f"   {per_service / 1024:.2f} KiB per service: one release reaches the cap at about {at_cap} services")
            decision = (f"one release fits comfortably ({sizes[-1]['services']} services use "
                        f"{sizes[-1]['share_of_cap']:.0%} of the cap)" if sizes[-1]["share_of_cap"] < 0.5
                        else "one release does NOT fit comfortably: deploy one release per service")
            results["decision"] = decision
            say(f"   decision: {decision}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    say(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
