"""Benchmark of the reaper's decision over 5,000 namespaces on the kube sandbox.

Measured in one run, against a sandbox started as its own process (``python -m kube_sandbox``):

- baseline: the one label-selector list call alone (HTTP + JSON parse), the floor any reaper pays;
- decision: what the ``plan_reaping`` task does — ``StackHook.list`` + ``domain.stacks.plan`` —
  reported as seconds (goal: under 2 s) and as a ratio to the baseline;
- API calls, counted on the client (every ``call_api`` of the Kubernetes client) and on the
  server (the sandbox's request counter): one list for the decision, then one delete per stale
  stack (``StackHook.delete_each``).

Medians of 3. Prints a table and writes JSON (``--out``). Run inside the local env:

    eval "$(.venv/bin/python scripts/local_env.py)" && python bench/reaper/run.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from stackyard.core import ephemeral as S  # noqa: E402
from tests.support.sandbox_process import start_sandbox_process  # noqa: E402


def namespace_body(i: int, now: datetime, stale_every: int) -> dict:
    """A realistic mix: 90% stackyard ephemeral (of which 1 in ``stale_every`` stale and a few
    garbled), the rest persistent, production and unlabelled namespaces the selector leaves out."""
    kind = i % 10
    eph = {S.LABEL_MANAGED_BY: S.MANAGED_BY, S.LABEL_STACK_TYPE: "ephemeral", S.LABEL_PURPOSE: "personal",
           S.LABEL_OWNER: f"user{i % 97}"}
    if kind == 9:
        labels = [{S.LABEL_MANAGED_BY: S.MANAGED_BY, S.LABEL_STACK_TYPE: "persistent"},
                  {S.LABEL_MANAGED_BY: S.MANAGED_BY, S.LABEL_STACK_TYPE: "production"}, {"team": "x"}][i % 3]
    else:
        labels = eph
    idle = timedelta(days=8) if i % stale_every == 0 else timedelta(hours=i % 100)
    annotations = {S.ANNOTATION_LAST_ACTIVITY: S.timestamp(now - idle), S.ANNOTATION_TTL: "7d",
                   S.ANNOTATION_OWNER: f"user{i % 97}@example.com", S.ANNOTATION_CREATED: S.timestamp(now - idle)}
    if i % 211 == 1:
        annotations[S.ANNOTATION_TTL] = "soon"
    if i % 307 == 2:
        annotations[S.ANNOTATION_LAST_ACTIVITY] = "yesterday"
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": f"bench-{i:05d}", "labels": labels, "annotations": annotations}}


def populate(url: str, count: int, stale_every: int) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    now = datetime.now(timezone.utc)
    for i in range(count):
        body = json.dumps(namespace_body(i, now, stale_every)).encode()
        conn.request("POST", "/api/v1/namespaces", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"creating bench-{i:05d}: HTTP {response.status}")
    conn.close()


def server_requests(url: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    conn.request("GET", "/debug/kube-sandbox/stats")
    data = json.loads(conn.getresponse().read())
    conn.close()
    return data["requests"]


class CountingHook:
    """A StackHook whose Kubernetes client counts every API call it makes, by method and path."""

    def __init__(self):
        from stackyard.airflow.hooks.namespaces import StackHook

        self.hook = StackHook()
        self.calls: Counter = Counter()
        client = self.hook.core.api_client
        original = client.call_api

        def counted(resource_path, method, *args, **kwargs):
            self.calls[(method, resource_path)] += 1
            return original(resource_path, method, *args, **kwargs)

        client.call_api = counted

    def reset(self) -> None:
        self.calls.clear()


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=5000)
    parser.add_argument("--stale-every", type=int, default=20, help="1 in N namespaces is stale")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-reaper-") as tmp:
        proc, url, kubeconfig = start_sandbox_process(Path(tmp))
        try:
            os.environ["AIRFLOW_CONN_STACKYARD_KUBE"] = json.dumps(
                {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}})
            setup, _ = timed(lambda: populate(url, args.namespaces, args.stale_every))
            counting = CountingHook()
            hook = counting.hook
            hook.list("x=y")  # warm the connection pool and imports outside the timings

            def baseline():
                response = hook.core.list_namespace(label_selector=S.EPHEMERAL_SELECTOR, _preload_content=False)
                return json.loads(response.data)["items"]

            def decision():
                return S.plan(hook.list(S.EPHEMERAL_SELECTOR), datetime.now(timezone.utc))

            base_times, decision_times = [], []
            for _ in range(args.repeat):
                base_times.append(timed(baseline)[0])
                counting.reset()
                before = server_requests(url)
                seconds, verdicts = timed(decision)
                decision_server_calls = server_requests(url) - before - 1  # minus the stats call itself
                decision_times.append(seconds)
                decision_calls = dict(counting.calls)
            models_seconds, _ = timed(lambda: hook.core.list_namespace(label_selector=S.EPHEMERAL_SELECTOR).items)

            actions = Counter(v.action.value for v in verdicts)
            deletions = S.check_cap(verdicts, len(verdicts))
            counting.reset()
            before = server_requests(url)
            delete_seconds, outcomes = timed(
                lambda: hook.delete_each((v.name, v.resource_version) for v in deletions))
            delete_server_calls = server_requests(url) - before - 1
            delete_calls = sum(counting.calls.values())
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    base, dec = statistics.median(base_times), statistics.median(decision_times)
    result = {
        "namespaces": args.namespaces,
        "listed_by_selector": len(verdicts),
        "verdicts": dict(actions),
        "setup_seconds": round(setup, 2),
        "baseline_list_seconds": round(base, 4),
        "decision_seconds": round(dec, 4),
        "decision_to_baseline_ratio": round(dec / base, 2),
        "decision_goal_seconds": 2.0,
        "decision_within_goal": dec < 2.0,
        "client_model_list_seconds": round(models_seconds, 4),
        "decision_api_calls_client": sum(decision_calls.values()),
        "decision_api_calls_server": decision_server_calls,
        "stale": len(deletions),
        "delete_seconds": round(delete_seconds, 3),
        "delete_api_calls_client": delete_calls,
        "delete_api_calls_server": delete_server_calls,
        "deleted": sum(1 for o, _ in outcomes.values() if o is S.Outcome.DELETED),
        "expected_api_calls": 1 + len(deletions),
        "total_api_calls_client": sum(decision_calls.values()) + delete_calls,
    }
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
