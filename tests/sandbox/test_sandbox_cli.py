"""``python -m kube_sandbox``: foreground server, kubeconfig, clean stop, snapshot round trip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen([sys.executable, "-m", "kube_sandbox", "--port", "0", "--kubeconfig", str(kubeconfig),
                             *extra], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    first = proc.stdout.readline()
    assert first.startswith("kube-sandbox serving http://127.0.0.1:"), first
    assert proc.stdout.readline().strip() == f"kubeconfig: {kubeconfig}"
    return proc, first.split()[-1]


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> str:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return out


def _post_ns(url: str, name: str) -> None:
    req = urllib.request.Request(f"{url}/api/v1/namespaces", method="POST",
                                 data=json.dumps({"metadata": {"name": name}}).encode(),
                                 headers={"Content-Type": "application/json"})
    assert urllib.request.urlopen(req).status == 201


def _ns_names(url: str) -> set[str]:
    doc = json.loads(urllib.request.urlopen(f"{url}/api/v1/namespaces").read())
    return {i["metadata"]["name"] for i in doc["items"]}


def test_cli_writes_kubeconfig_and_stops_on_sigint(tmp_path):
    proc, url = _start(tmp_path)
    try:
        cfg = yaml.safe_load((tmp_path / "kubeconfig").read_text())
        assert cfg["current-context"] == "kube-sandbox"
        assert cfg["clusters"][0]["cluster"]["server"] == url
        assert oct((tmp_path / "kubeconfig").stat().st_mode & 0o777) == "0o600"
        assert json.loads(urllib.request.urlopen(url + "/version").read())["major"] == "1"
    finally:
        assert "stopped" in _stop(proc, signal.SIGINT)


def test_snapshot_survives_restart(tmp_path):
    snap = tmp_path / "state.json"
    proc, url = _start(tmp_path, "--snapshot", str(snap))
    _post_ns(url, "kept")
    _stop(proc)
    assert snap.is_file()
    proc, url = _start(tmp_path, "--snapshot", str(snap))
    try:
        assert "kept" in _ns_names(url)
        _post_ns(url, "second")  # resourceVersions keep increasing after a restart
        assert {"kept", "second"} <= _ns_names(url)
    finally:
        _stop(proc)


def test_sandbox_api_in_process():
    from kube_sandbox import Sandbox

    sb = Sandbox(ready_delay=0).start()
    try:
        assert sb.url.startswith("http://127.0.0.1:")
        assert "default" in _ns_names(sb.url)
        kubeconfig = sb.kubeconfig_path
        assert kubeconfig.is_file()
    finally:
        sb.stop()
    assert not kubeconfig.exists()  # a temporary kubeconfig goes with the sandbox
