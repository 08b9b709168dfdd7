"""Bench of the L3 gate's throughput (issue 13), on the kube sandbox with workloads and pods ready
after 2 s (``--ready-delay``), in one run:

(a) **Test phase**: umbrellas of 4, 16 and 64 generated services, each with a Deployment and a
    test hook (a Pod), installed as one release; the gate's system-test phase
    (``helm status`` for the hooks, then :func:`stackyard.steps.system_tests.run_tests` through the
    kubernetes client: exactly what the ``system_tests`` task runs) against the **slowest single
    service's test** (a one-service release's test phase, the slowest of 3). Goal: at 64 services
    within 1.5x. Parallelism = the number of services (``--parallelism`` to bound it); when the
    largest size exceeds the default bound (``STACKYARD_GATE_TEST_PARALLELISM``, 64), it is
    measured at that bound too. For scale,
    ``helm test`` of the same release (one hook after another) at the smallest size.
(b) **Queue**: 5 single-service changes (3 example services moved on, 2 new ones) triggered
    back to back through the REST API (each as soon as the one before is queued, so the queue's
    order is the list's) under ``airflow standalone``, the second failing its test, with the
    window at 5 (``STACKYARD_GATE_WINDOW``), against one gate's time on the same server. Reports
    the time until every change is decided (promoted or rejected), the L3 history, and
    ``untested_promotions``: promoted versions whose exact pins no passing attempt in the queue's
    log tested. Goal: within 2x one gate.
(c) **Scheduler**: one gate under ``airflow standalone`` (LocalExecutor, REST trigger; the second
    run after boot, the first is reported as cold) against the same helm/sops/kubectl commands by
    hand (``bench/gate_overhead``'s definition of "by hand": its ``helm test`` runs the tests one
    after another), with where the gate's time goes per task.

No pass/fail: prints a report and writes JSON (``--out``, default
``.stackyard/bench/gate_throughput.json``). The default takes about 12 minutes on 2 cores;
``--quick`` ((a) at 4 and 16 services, then (b) and (c)) about 8; ``--parts`` runs some of them.

    python bench/gate_throughput/run.py [--quick] [--sizes 4,16,64] [--parts a,b,c] [--no-standalone] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / ".stackyard" / "bench" / "gate_throughput.json"
QUEUE_CHANGES = [("orders", "1.1.0", False), ("catalog", "1.1.0", True), ("storefront", "1.1.0", False),
                 ("billing", "1.0.0", False), ("payments", "1.0.0", False)]  # (service, version, failing test)

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  replicas: 1
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec: {containers: [{name: app, image: "example/NAME:1.0.0"}]}
"""
TEST_POD = """apiVersion: v1
kind: Pod
metadata:
  name: NAME-test
  annotations: {"helm.sh/hook": test, "helm.sh/hook-delete-policy": "before-hook-creation"}
spec: {restartPolicy: Never, containers: [{name: wget, image: busybox:1.36, command: [wget, "http://NAME/healthz"]}]}
"""


def say(text: str = "") -> None:
    print(text, flush=True)


def load_gate_overhead():
    """bench/gate_overhead/run.py's ``Bench``: one definition of the gate's commands by hand."""
    spec = importlib.util.spec_from_file_location("bench_gate_overhead", ROOT / "bench" / "gate_overhead" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def umbrella(root: Path, services: int) -> Path:
    chart = root / f"l3-{services}"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: l3\nversion: 1.0.0\n")
    for i in range(services):
        name = f"svc{i:03d}"
        sub = chart / "charts" / name / "templates"
        sub.mkdir(parents=True)
        (sub.parent / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 1.0.0\n")
        (sub / "deployment.yaml").write_text(DEPLOYMENT.replace("NAME", name))
        (sub / "test.yaml").write_text(TEST_POD.replace("NAME", name))
    return chart


class TestPhase:
    def __init__(self, tmp: Path, sandbox) -> None:
        from kubernetes import config

        from stackyard.adapters.helm import Helm, HelmConfig

        self.tmp, self.sandbox = tmp, sandbox
        self.helm = Helm(HelmConfig(home=tmp / "helm", kubeconfig=str(sandbox.kubeconfig_path), base_env=os.environ))
        self.api = config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))

    def install(self, services: int) -> str:
        namespace = f"tp-{services}"
        self.helm.upgrade_install("l3", umbrella(self.tmp, services), namespace=namespace, create_namespace=True,
                                  timeout="10m0s")
        return namespace

    def run(self, namespace: str, parallelism: int) -> dict:
        """The system_tests task's work: hooks from the release record, then the parallel runner."""
        from stackyard.adapters.test_hooks import KubeTestHooks
        from stackyard.core import system_tests as rules
        from stackyard.steps.system_tests import run_tests

        started = time.perf_counter()
        hooks = rules.test_hooks(self.helm.release_hooks("l3", namespace=namespace))
        results = run_tests(rules.plan(hooks, "svc000"), KubeTestHooks(self.api, namespace),
                            parallelism=parallelism, timeout_seconds=600)
        seconds = time.perf_counter() - started
        verdict = rules.verdict(hooks, results)
        if not verdict.passed:
            raise RuntimeError(f"tests failed in {namespace}: {verdict}")
        return {"seconds": seconds, "tests": len(results), "longest_test_seconds": max(r.seconds for r in results)}

    def helm_test(self, namespace: str) -> float:
        started = time.perf_counter()
        if not self.helm.test("l3", namespace=namespace, timeout="10m0s").passed:
            raise RuntimeError(f"helm test failed in {namespace}")
        return time.perf_counter() - started


def test_phase(sizes: list[int], parallelism: int | None, delay: float, default_bound: int) -> list[dict]:
    from kube_sandbox import Sandbox

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tp-") as tmp, Sandbox(ready_delay=delay) as sandbox:
        bench = TestPhase(Path(tmp), sandbox)
        single_ns = bench.install(1)
        singles = [bench.run(single_ns, 1)["seconds"] for _ in range(3)]
        slowest = max(singles)
        say(f"   one service's test phase alone: {', '.join(f'{s:.2f}' for s in singles)} s -> slowest {slowest:.2f} s")
        for n in sizes:
            namespace = bench.install(n)
            bound = parallelism or n
            run = bench.run(namespace, bound)
            row = {"services": n, "parallelism": bound, "seconds": run["seconds"], "slowest_single_seconds": slowest,
                   "ratio": run["seconds"] / slowest, "longest_test_seconds": run["longest_test_seconds"]}
            if n == sizes[-1] and bound != default_bound and n > default_bound:
                bounded = bench.run(namespace, default_bound)
                row["default_bound"] = {"parallelism": default_bound, "seconds": bounded["seconds"],
                                        "ratio": bounded["seconds"] / slowest}
            if n == sizes[0]:
                row["helm_test_seconds"] = bench.helm_test(namespace)
            rows.append(row)
            extra = "".join([
                f"; helm test (serial): {row['helm_test_seconds']:.2f} s" if "helm_test_seconds" in row else "",
                f"; at the default bound {default_bound}: {row['default_bound']['seconds']:.2f} s "
                f"({row['default_bound']['ratio']:.2f}x)" if "default_bound" in row else "",
            ])
            say(f"   {n:>3} services, {bound} at once: {row['seconds']:.2f} s = {row['ratio']:.2f}x the slowest "
                f"single test{extra}")
    return rows


def _seconds(stamp: str | None) -> float | None:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def timeline(api, run_id: str, run: dict) -> dict:
    """Where a served gate run's time goes, per task: waiting to be queued, queued until it starts
    (executor pick-up, process start), running (its own work: DAG parse + the task)."""
    answer = api._call("GET", f"{api._run_path(run_id)}/taskInstances?limit=100")
    start = _seconds(run.get("start_date"))
    tasks = {}
    for ti in sorted(answer["task_instances"], key=lambda t: t.get("start_date") or "~"):
        queued, began, ended = (_seconds(ti.get(k)) for k in ("queued_when", "start_date", "end_date"))
        tasks[ti["task_id"]] = {
            "state": ti["state"],
            "queued_at": round(queued - start, 2) if queued and start else None,
            "queued_to_start": round(began - queued, 2) if began and queued else None,
            "running": round(ended - began, 2) if ended and began else None,
            "ended_at": round(ended - start, 2) if ended and start else None,
        }
    ran = [t for t in tasks.values() if t["running"] is not None]
    return {"tasks": tasks, "sum_running": round(sum(t["running"] for t in ran), 2),
            "sum_queued_to_start": round(sum(t["queued_to_start"] or 0 for t in ran), 2)}


def scheduler(delay: float) -> dict:
    """One gate under airflow standalone (REST trigger) against the same commands by hand, on the
    same sandbox; with the served run's per-task timeline."""
    from kube_sandbox import Sandbox
    from dev.local import AirflowServer, free_port
    from stackyard.cli.gate import AirflowApi

    import contextlib

    from dev.image_mirror import serve

    overhead = load_gate_overhead()
    with tempfile.TemporaryDirectory(prefix="bench-sched-") as tmp, Sandbox(ready_delay=delay) as sandbox, \
            contextlib.ExitStack() as stack:
        bench = overhead.Bench(Path(tmp), sandbox)
        bench.seed(["1.1.0", "1.2.0", "1.3.0", "1.4.0"])
        hand = [bench.by_hand(v, i) for i, v in enumerate(["1.2.0", "1.3.0"])]
        mirror = stack.enter_context(serve(Path(tmp) / "image-mirror"))  # the gate checks images before deploying
        # local mode's own executor settings (make up: 4 task processes at once)
        server = AirflowServer(home=Path(tmp) / "airflow", env={**bench.env, "STACKYARD_IMAGE_MIRRORS": mirror},
                               port=free_port())
        booted = time.perf_counter()
        with server:
            boot = time.perf_counter() - booted
            api = AirflowApi(server.url, server.user, server.password)
            runs = []
            for version in ("1.1.0", "1.4.0"):  # the first run after boot is cold; the second is measured
                run_id = api.trigger({"service": "orders", "chart_version": version})["dag_run_id"]
                started = time.perf_counter()
                while (run := api.run(run_id))["state"] not in ("success", "failed"):
                    time.sleep(0.1)
                runs.append((time.perf_counter() - started, run))
            (cold, _), (gate, run) = runs
            where = timeline(api, run_id, run)
    if run["state"] != "success":
        raise RuntimeError(f"the gate under airflow standalone did not promote: {where}")
    by_hand = statistics.median(r["wall_seconds"] for r in hand)
    return {"gate_seconds": gate, "by_hand_seconds": by_hand, "ratio": gate / by_hand, "ready_delay": delay,
            "cold_gate_seconds": cold, "server_boot_seconds": boot, "timeline": where,
            "by_hand_steps": sorted(hand, key=lambda r: r["wall_seconds"])[0]["steps"]}


def cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (user, nice, system, irq, softirq), in seconds."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields)
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def queue_timeline(api, since: float) -> list[dict]:
    """Every gate run since ``since`` (perf_counter): when each task ran, in seconds from then."""
    offset = time.time() - time.perf_counter()
    answer = api._call("GET", f"/api/v2/dags/{api.dag_id}/dagRuns?limit=100&order_by=start_date")
    runs = []
    for run in answer["dag_runs"]:
        start = _seconds(run.get("start_date"))
        if start is None or start < since + offset - 1:
            continue
        tasks = api._call("GET", f"{api._run_path(run['dag_run_id'])}/taskInstances?limit=100")["task_instances"]
        spans = {ti["task_id"]: [round(_seconds(ti[k]) - since - offset, 1) if ti.get(k) else None
                                 for k in ("start_date", "end_date")] + [ti["state"]]
                 for ti in sorted(tasks, key=lambda t: t.get("start_date") or "~")}
        runs.append({"run_id": run["dag_run_id"], "conf": f"{run['conf'].get('service')} {run['conf'].get('chart_version')}",
                     "state": run["state"], "tasks": spans})
    return runs


def _trigger(api, conf: dict) -> str:
    """Trigger a gate run; local mode's SQLite may answer 500 under load (the run is then not made)."""
    from stackyard.cli.gate import AirflowApiError

    for attempt in range(5):
        try:
            return api.trigger(conf)["dag_run_id"]
        except AirflowApiError as exc:
            if (exc.status or 0) < 500 or attempt == 4:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def _wait(api, run_id: str) -> dict:
    while (run := api.run(run_id))["state"] not in ("success", "failed"):
        time.sleep(0.2)
    return run


def queue(delay: float, window: int) -> dict:
    """5 changes queued at once, the second failing, under airflow standalone; one gate as the baseline."""
    import shutil

    import yaml

    from kube_sandbox import Sandbox
    from dev.demo import chart_variant
    from dev.image_mirror import serve
    from dev.local import AirflowServer, free_port
    from stackyard.adapters.gate_queue_store import GateQueueStore
    from stackyard.adapters.image_registry import ImageResolver
    from stackyard.cli.gate import AirflowApi
    from stackyard.core.images import parse_mirrors
    from stackyard.steps.publishing import publish_chart

    overhead = load_gate_overhead()
    charts = ROOT / "include" / "charts"
    from dev.demo import SANDBOX_RULES

    # local mode's sandbox rules: a test pod's outcome is decided from what the service answers
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp, \
            Sandbox(ready_delay=delay, rules=str(SANDBOX_RULES)) as sandbox:
        tmp = Path(tmp)
        bench = overhead.Bench(tmp, sandbox)
        bench.seed(["1.0.1"])  # orders 1.0.1: the warm-up gate's change
        with serve(tmp / "image-mirror") as mirrors:  # the gate checks every image before it deploys
            images = ImageResolver(mirrors=parse_mirrors(mirrors))
            changes = [*QUEUE_CHANGES, ("storefront", "1.2.0", False)]  # 1.1.0 is the baseline gate's
            for service, version, failing in changes:
                source = charts / service
                if not source.is_dir():  # a new service: a renamed copy of orders (its templates use .Chart.Name)
                    source = tmp / "new" / service
                    shutil.copytree(charts / "orders", source)
                    chart = yaml.safe_load((source / "Chart.yaml").read_text())
                    (source / "Chart.yaml").write_text(yaml.safe_dump({**chart, "name": service}, sort_keys=False))
                variant = chart_variant(source, tmp / "variants" / f"{service}-{version}", version=version,
                                        failing_test=failing)
                publish_chart(variant, registry=bench.registry, helm=bench.helm, images=images)
            changes = [(s, "1.2.0" if s == "storefront" else v, f) for s, v, f in QUEUE_CHANGES]
            env = {**bench.env, "STACKYARD_GATE_WINDOW": str(window), "STACKYARD_IMAGE_MIRRORS": mirrors}
            server = AirflowServer(home=tmp / "airflow", env=env, port=free_port(), parallelism=16)
            with server:
                api = AirflowApi(server.url, server.user, server.password)
                _wait(api, api.trigger({"service": "orders", "chart_version": "1.0.1"})["dag_run_id"])  # warm-up
                started, cpu = time.perf_counter(), cpu_seconds()  # one gate alone: the baseline
                alone = _wait(api, api.trigger({"service": "storefront", "chart_version": "1.1.0"})["dag_run_id"])
                one_gate, one_gate_cpu = time.perf_counter() - started, cpu_seconds() - cpu
                if alone["state"] != "success":
                    raise RuntimeError(f"the baseline gate did not promote: {alone}")
                before = bench.store.latest().version
                queue_log = GateQueueStore(bench.store.backend)
                started, cpu = time.perf_counter(), cpu_seconds()
                run_ids = []
                for service, version, _ in changes:  # queued in this order (a change is queued by validate)
                    queued = len(queue_log.seqs())
                    run_ids.append(_trigger(api, {"service": service, "chart_version": version}))
                    while len(queue_log.seqs()) == queued:
                        time.sleep(0.1)
                while queue_log.entries() or len(queue_log.seqs()) < 2 + len(changes):  # all queued and decided
                    time.sleep(0.5)
                seconds, queue_cpu = time.perf_counter() - started, cpu_seconds() - cpu
                for run_id in run_ids:  # the original runs end too (their summaries)
                    _wait(api, run_id)
                runs = queue_timeline(api, started)
            # read before the temporary state goes
            history = [m for m in reversed(bench.store.history()) if m.version > before]
            settled = {}
            for seq in queue_log.seqs():
                item, done = queue_log.queued(seq), queue_log.settled(seq)
                settled[f"#{seq} {item.service} {item.version}"] = (
                    f"{done.settlement.value}{': ' + done.detail if done.detail else ''}" if done else "open")
            wall = time.time() - time.perf_counter()  # perf_counter -> epoch
            attempts = []
            for seq in queue_log.seqs():
                for attempt in queue_log.attempts(seq):
                    result = queue_log.result_record(seq, attempt.number)
                    attempts.append({"seq": seq, "attempt": attempt.number, "ahead": attempt.ahead,
                                     "started": round(attempt.started.timestamp() - wall - started, 1),
                                     "result": None if result is None else result.passed,
                                     "finished": None if result is None else
                                     round(result.finished.timestamp() - wall - started, 1)})
            tested = {frozenset(attempt.services.items()) for seq in queue_log.seqs() for attempt in queue_log.attempts(seq)
                      if queue_log.result(seq, attempt.number)}
            untested = sum(frozenset((n, p.chart_version) for n, p in m.services.items()) not in tested for m in history)
    failing = {f"{s} {v}" for s, v, f in changes if f}
    if not any(key.split(" ", 1)[1] in failing and how.startswith("rejected") for key, how in settled.items()):
        raise RuntimeError(f"the failing change was not rejected, so this is no measurement of the queue: {settled}")
    return {"changes": len(changes), "failing": sum(f for *_, f in changes), "window": window,
            "seconds": seconds, "one_gate_seconds": one_gate, "ratio": seconds / one_gate,
            "untested_promotions": untested, "promoted": [str(m.change) for m in history],
            "settled": settled, "attempts": attempts, "cpu_seconds": round(queue_cpu, 1), "one_gate_cpu_seconds": round(one_gate_cpu, 1),
            "cores": os.cpu_count(), "runs": runs}


def main() -> int:
    from stackyard.settings import GATE_WINDOW

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 4,16: the smallest useful form")
    parser.add_argument("--sizes", help="services per candidate (default 4,16,64; --quick 4,16)")
    parser.add_argument("--parallelism", type=int, help="tests at once (default: one per service)")
    parser.add_argument("--ready-delay", type=float, default=2.0, help="sandbox readiness (s)")
    parser.add_argument("--no-standalone", action="store_true", help="skip (c), the gate under airflow standalone")
    parser.add_argument("--parts", default="a,b,c", help="which of (a) test phase, (b) queue, (c) scheduler to run")
    parser.add_argument("--window", type=int, default=len(QUEUE_CHANGES),
                        help=f"(b): changes tested at once (STACKYARD_GATE_WINDOW; default {len(QUEUE_CHANGES)}: "
                             f"all of them; the gate's own default is {GATE_WINDOW})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import logging

    from stackyard.settings import GATE_TEST_PARALLELISM

    logging.getLogger("kube_sandbox").setLevel(logging.WARNING)
    logging.getLogger("stackyard.tools").setLevel(logging.WARNING)
    sizes = [int(n) for n in (args.sizes or ("4,16" if args.quick else "4,16,64")).split(",")]
    results: dict = {"machine": {"cpus": os.cpu_count()}, "ready_delay": args.ready_delay, "quick": args.quick}

    parts = set(args.parts.split(","))
    results["test_phase"] = results["queue"] = results["scheduler"] = None
    if "a" in parts:
        say(f"== (a) the system-test phase, sandbox readiness {args.ready_delay:g} s")
        results["test_phase"] = test_phase(sizes, args.parallelism, args.ready_delay, GATE_TEST_PARALLELISM)
        last = results["test_phase"][-1]
        say(f"   goal: {last['services']} services within 1.5x the slowest single test: {last['ratio']:.2f}x")

    if args.no_standalone:
        parts -= {"b", "c"}
    if "b" in parts:
        say(f"\n== (b) {len(QUEUE_CHANGES)} changes queued at once, the 2nd failing, window {args.window}, "
            f"under airflow standalone")
        results["queue"] = q = queue(args.ready_delay, args.window)
        say(f"   all decided in {q['seconds']:.1f} s, one gate {q['one_gate_seconds']:.1f} s: {q['ratio']:.2f}x "
            f"(goal <= 2x); promoted {', '.join(q['promoted'])}; untested promotions {q['untested_promotions']}")
        for change, how in q["settled"].items():
            say(f"     {change}: {how}")
    if "c" in parts:
        say(f"\n== (c) one gate under airflow standalone vs the same commands by hand, readiness {args.ready_delay:g} s")
        results["scheduler"] = scheduler(args.ready_delay)
        s = results["scheduler"]
        say(f"   gate {s['gate_seconds']:.1f} s (the second run; the first after boot {s['cold_gate_seconds']:.1f} s), "
            f"by hand {s['by_hand_seconds']:.1f} s: {s['ratio']:.2f}x (goal <= 1.5x)")
        say("   by hand, per step: " + ", ".join(f"{k} {v:.1f} s" for k, v in s["by_hand_steps"].items()))
        t = s["timeline"]
        say(f"   the gate's tasks ran {t['sum_running']:.1f} s in all, waited {t['sum_queued_to_start']:.1f} s queued; per task "
            "(queued at / queued -> start / running, s from the run's start):")
        for task, info in t["tasks"].items():
            say(f"     {task:<18} {info['state'] or '-':<8} {info['queued_at']!s:>6} {info['queued_to_start']!s:>6} "
                f"{info['running']!s:>6}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    say(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
