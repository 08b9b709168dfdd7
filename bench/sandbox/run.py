"""Benchmark of the kube sandbox: is it ever the bottleneck?

Measures, in one run, against a sandbox started as its own process (``python -m kube_sandbox``):

1. N labelled namespaces (default 5,000): label-selector list latency p50/p99, reported also as a
   ratio to the HTTP floor (``GET /version`` on the same connection, measured in the same run),
   and the list of all of them.
2. The example umbrella (include/charts/*) installed with helm into S stacks (default 50), then
   the sandbox's resident memory (goal: under 500 MB).
3. ``helm install`` of the scaffold chart: sandbox vs ``helm install --dry-run=client`` of the same
   chart (ratio; the dry run is helm's own floor: rendering without any API work), and the share
   of the install's wall time the sandbox spent serving its requests (from the sandbox's
   ``/debug/kube-sandbox/stats`` counters).
4. One release of an umbrella of ``--services`` (default 300) generated service charts installed
   with ``--wait``: wall time and the sandbox's per-request latency p50/p99 during it.

No pass/fail thresholds: it prints a table and writes JSON (``--out``).

    PATH=<dir with helm>:$PATH python bench/sandbox/run.py [--namespaces 5000] [--stacks 50]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "include" / "charts"
sys.path.insert(0, str(ROOT))

from tests.support.sandbox_process import start_sandbox_process  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def timed(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> tuple[float, bytes]:
    t = time.perf_counter()
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    resp = conn.getresponse()
    data = resp.read()
    dt = time.perf_counter() - t
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    return dt, data


def bench_namespaces(url: str, n: int, samples: int) -> dict:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    t0 = time.perf_counter()
    for i in range(n):
        body = json.dumps({"metadata": {"name": f"bench-{i:05d}", "labels": {
            "stackyard.io/stack": f"s{i}", "tier": ("dev", "qa", "prod")[i % 3], "team": f"t{i % 50}"}}}).encode()
        timed(conn, "POST", "/api/v1/namespaces", body)
    create_s = time.perf_counter() - t0
    floor = [timed(conn, "GET", "/version")[0] for _ in range(samples)]
    out = {"namespaces": n, "create_total_s": round(create_s, 2),
           "create_per_ns_ms": round(create_s / n * 1000, 3),
           "floor_version_p50_ms": round(statistics.median(floor) * 1000, 3)}
    for label, sel in [("one_match", "stackyard.io/stack=s4242"), ("set_1_in_50", "team in (t7),tier!=prod"),
                       ("exists_all", "stackyard.io/stack")]:
        lat = []
        items = 0
        for _ in range(samples if label != "exists_all" else max(5, samples // 10)):
            dt, data = timed(conn, "GET", "/api/v1/namespaces?labelSelector=" + quote(sel))
            lat.append(dt)
            items = data.count(b'"uid"')
        out[label] = {"selector": sel, "items": items, "p50_ms": round(pct(lat, 50) * 1000, 2),
                      "p99_ms": round(pct(lat, 99) * 1000, 2),
                      "p50_vs_floor": round(pct(lat, 50) / statistics.median(floor), 1)}
    conn.close()
    return out


def run(argv: list[str], env: dict, check: bool = True) -> float:
    t = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def build_umbrella(tmp: Path, helm: str, env: dict) -> Path | None:
    charts = sorted(p for p in CHARTS.iterdir() if (p / "Chart.yaml").is_file()) if CHARTS.is_dir() else []
    if not charts:
        return None
    umbrella = tmp / "umbrella"
    (umbrella / "charts").mkdir(parents=True)
    deps = "".join(f"  - name: {c.name}\n    version: \">=0.0.0-0\"\n    repository: file://{c}\n" for c in charts)
    (umbrella / "Chart.yaml").write_text(f"apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n{deps}")
    run([helm, "dependency", "build", str(umbrella)], env)
    return umbrella


def stats(url: str, reset: bool = False) -> dict:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    data = timed(conn, "GET", "/debug/kube-sandbox/stats" + ("?reset=1" if reset else ""))[1]
    conn.close()
    return json.loads(data)


def bench_helm(tmp: Path, env: dict, helm: str, stacks: int, repeats: int, url: str) -> dict:
    subprocess.run([helm, "create", str(tmp / "demo")], env=env, capture_output=True, check=True)
    chart = str(tmp / "demo")
    dry, real, busy, reqs = [], [], [], []
    for i in range(repeats):
        dry.append(run([helm, "install", f"dry{i}", chart, "-n", "default", "--dry-run=client"], env))
        before = stats(url)
        real.append(run([helm, "install", f"real{i}", chart, "-n", f"h{i}", "--create-namespace"], env))
        after = stats(url)
        busy.append(after["busySeconds"] - before["busySeconds"])
        reqs.append(after["requests"] - before["requests"])
    out = {"scaffold_install_requests": int(statistics.median(reqs)),
           "scaffold_install_sandbox_busy_s": round(statistics.median(busy), 4),
           "sandbox_share_of_install": round(statistics.median(busy) / statistics.median(real), 3),
           "scaffold_install_median_s": round(statistics.median(real), 3),
           "scaffold_dry_run_client_median_s": round(statistics.median(dry), 3),
           "install_vs_dry_run_ratio": round(statistics.median(real) / statistics.median(dry), 2)}
    umbrella = build_umbrella(tmp, helm, env) if stacks > 0 else None
    if umbrella is not None and stacks > 0:
        times = []
        before = stats(url)
        for s in range(stacks):
            times.append(run([helm, "install", "stack", str(umbrella), "-n", f"stack-{s:02d}", "--create-namespace"],
                             env))
        after = stats(url)
        out["umbrella_sandbox_share_of_install"] = round(
            (after["busySeconds"] - before["busySeconds"]) / sum(times), 3)
        out["objects_after_stacks"] = after["objects"]
        dry_u = run([helm, "install", "stack", str(umbrella), "-n", "x", "--dry-run=client"], env)
        out.update({"umbrella_stacks": stacks, "umbrella_install_median_s": round(statistics.median(times), 3),
                    "umbrella_dry_run_client_s": round(dry_u, 3),
                    "umbrella_install_vs_dry_run_ratio": round(statistics.median(times) / dry_u, 2)})
    return out


SERVICE_TEMPLATE = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Chart.Name }}
  labels: {app: {{ .Chart.Name }}}
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Chart.Name }}}
  template:
    metadata:
      labels: {app: {{ .Chart.Name }}}
    spec:
      containers:
        - name: app
          image: registry.example.com/{{ .Chart.Name }}:1.0
          ports: [{name: http, containerPort: 8080}]
          envFrom: [{configMapRef: {name: {{ .Chart.Name }}}}]
          resources: {requests: {cpu: 10m, memory: 32Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Chart.Name }}
spec:
  selector: {app: {{ .Chart.Name }}}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Chart.Name }}
data:
  LOG_LEVEL: info
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Chart.Name }}
"""


def bench_big_umbrella(tmp: Path, env: dict, helm: str, services: int, url: str) -> dict:
    """One release of an umbrella of ``services`` generated service charts (Deployment, Service,
    ConfigMap, ServiceAccount each): ``helm install`` wall time, the time until every Deployment
    is available, and the sandbox's request latency during both (p50/p99 of every request it
    served). Without ``--wait``: helm's watcher is throttled by its client-side rate limiter
    (minutes for 300 Deployments whatever the server), which would hide the sandbox."""
    umbrella = tmp / f"umbrella{services}"
    (umbrella / "charts").mkdir(parents=True)
    for i in range(services):
        c = umbrella / "charts" / f"svc{i:03d}"
        (c / "templates").mkdir(parents=True)
        (c / "Chart.yaml").write_text(f"apiVersion: v2\nname: svc{i:03d}\nversion: 0.1.0\n")
        (c / "templates" / "all.yaml").write_text(SERVICE_TEMPLATE)
    (umbrella / "Chart.yaml").write_text(f"apiVersion: v2\nname: umbrella{services}\nversion: 0.1.0\n")
    stats(url, reset=True)
    before = stats(url)
    t0 = time.perf_counter()
    wall = run([helm, "install", "big", str(umbrella), "-n", "big", "--create-namespace"], env)
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    ready = 0
    while ready < services and time.perf_counter() - t0 < 300:
        items = json.loads(timed(conn, "GET", "/apis/apps/v1/namespaces/big/deployments")[1])["items"]
        ready = sum(1 for d in items if (d.get("status") or {}).get("availableReplicas") == 1)
        time.sleep(0.2)
    to_ready = time.perf_counter() - t0
    conn.close()
    after = stats(url, reset=True)
    lat = after.get("latencyMs") or {}
    return {"services": services, "install_s": round(wall, 2), "all_available_s": round(to_ready, 2),
            "available": ready, "requests": after["requests"] - before["requests"],
            "sandbox_busy_s": round(after["busySeconds"] - before["busySeconds"], 3),
            "request_p50_ms": lat.get("p50"), "request_p99_ms": lat.get("p99"), "request_max_ms": lat.get("max"),
            "objects_after": after["objects"]}


def bench_list_all(url: str, samples: int) -> dict:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    lat, items = [], 0
    for _ in range(samples):
        dt, data = timed(conn, "GET", "/api/v1/namespaces")
        lat.append(dt)
        items = data.count(b'"uid"')
    conn.close()
    return {"items": items, "p50_ms": round(pct(lat, 50) * 1000, 2), "p99_ms": round(pct(lat, 99) * 1000, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--namespaces", type=int, default=5000)
    p.add_argument("--stacks", type=int, default=50)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--services", type=int, default=300, help="services in the one-release umbrella (0: skip)")
    p.add_argument("--out", type=Path, help="write the results as JSON")
    args = p.parse_args()
    helm = shutil.which("helm")
    if helm is None:
        print("helm not on PATH", file=sys.stderr)
        return 2
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as d:
        tmp = Path(d)
        proc, url, kubeconfig = start_sandbox_process(tmp)
        try:
            results["rss_mb_idle"] = round(rss_mb(proc.pid), 1)
            env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HELM_CACHE_HOME": str(tmp / "hc"),
                   "HELM_CONFIG_HOME": str(tmp / "hcfg"), "HELM_DATA_HOME": str(tmp / "hd")}
            results["helm"] = bench_helm(tmp, env, helm, args.stacks, args.repeats, url)
            results["rss_mb_after_stacks"] = round(rss_mb(proc.pid), 1)
            if args.services:
                results["big_umbrella"] = bench_big_umbrella(tmp, env, helm, args.services, url)
                results["rss_mb_after_big_umbrella"] = round(rss_mb(proc.pid), 1)
            results["list"] = bench_namespaces(url, args.namespaces, args.samples)
            results["list"]["all_namespaces"] = bench_list_all(url, max(5, args.samples // 10))
            results["rss_mb_final"] = round(rss_mb(proc.pid), 1)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
