"""Restart-safe watches: a sandbox stopped mid-deploy and restarted from its snapshot lets
``helm upgrade --install --wait=watcher`` finish (resuming watches get 410 and re-list)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kube_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
CHARTS = Path(__file__).parent / "charts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int, tmp: Path, ready_delay: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "kube_sandbox", "--port", str(port), "--kubeconfig",
                             str(tmp / "kubeconfig"), "--snapshot", str(tmp / "snapshot.json"),
                             "--ready-delay", str(ready_delay)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "serving" in proc.stdout.readline()
    proc.stdout.readline()
    return proc


def test_watch_from_a_previous_incarnation_gets_410(tmp_path):
    snap = tmp_path / "s.json"
    with Sandbox(ready_delay=0.05, snapshot=snap) as sb:
        rv_before = sb.store.rv
    sb.store.rv += 50  # the client saw writes the snapshot never got
    stale = str(sb.store.rv)
    with Sandbox(ready_delay=0.05, snapshot=snap) as sb2:
        assert sb2.store.rv > int(stale) > rv_before
        import urllib.request
        for rv in (str(rv_before), stale):
            with urllib.request.urlopen(f"{sb2.url}/api/v1/namespaces?watch=1&resourceVersion={rv}") as resp:
                line = resp.readline()
            assert b'"code":410' in line and b'"ERROR"' in line


def test_helm_wait_survives_a_restart_from_the_snapshot(tmp_path):
    port = _free_port()
    home = tmp_path / "home"
    proc = _start(port, tmp_path, ready_delay=2.0)
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(home),
           "HELM_CACHE_HOME": str(home / "c"), "HELM_CONFIG_HOME": str(home / "g"), "HELM_DATA_HOME": str(home / "d")}
    helm = subprocess.Popen(["helm", "upgrade", "--install", "w", str(CHARTS / "workloads"), "--set", "hook.enabled=false",
                             "--wait=watcher", "--timeout", "60s"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(2.5)  # objects created, pods not ready yet, helm watching
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        time.sleep(0.5)
        proc = _start(port, tmp_path, ready_delay=0.5)
        out, err = helm.communicate(timeout=60)
        assert helm.returncode == 0, err
        assert "STATUS: deployed" in out
    finally:
        if helm.poll() is None:
            os.killpg(helm.pid, signal.SIGKILL)
        proc.terminate()
        proc.wait(timeout=10)
