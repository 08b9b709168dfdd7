"""HTTPS with a self-made CA and a required bearer token: kubectl, helm and the kubernetes client
over TLS, and the in-cluster files (service-account token, ca.crt, namespace)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from kube_sandbox import Sandbox

CHARTS = Path(__file__).parent / "charts"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tls_sandbox():
    with Sandbox(ready_delay=0.1, tls=True, require_token=True) as sb:
        yield sb


def test_kubeconfig_uses_https_and_the_ca(tls_sandbox):
    sb = tls_sandbox
    cfg = yaml.safe_load(sb.kubeconfig_path.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    assert cluster["server"].startswith("https://") and cluster["certificate-authority-data"]
    assert cfg["users"][0]["user"]["token"] == sb.token and sb.ca_path.is_file()
    ctx = ssl.create_default_context(cafile=str(sb.ca_path))
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(sb.url + "/api/v1/namespaces", context=ctx)
    assert exc.value.code == 401
    req = urllib.request.Request(sb.url + "/api/v1/namespaces", headers={"Authorization": f"Bearer {sb.token}"})
    with urllib.request.urlopen(req, context=ctx) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(sb.url + "/healthz", context=ctx) as resp:
        assert resp.read() == b"ok"


def test_kubectl_and_helm_over_tls(tls_sandbox, tmp_path):
    from conftest import Cli
    cli = Cli(tls_sandbox, tmp_path)
    assert "default" in cli.kubectl("get", "ns").stdout
    cli.helm("install", "w", str(CHARTS / "workloads"), "--wait", "--timeout", "30s")
    cli.helm("test", "w")
    cli.helm("uninstall", "w", "--wait")
    bad = tmp_path / "bad"
    bad.write_text(tls_sandbox.kubeconfig_path.read_text().replace(tls_sandbox.token, "wrong"))
    proc = subprocess.run(["kubectl", "--kubeconfig", str(bad), "get", "ns"], capture_output=True, text=True)
    assert proc.returncode != 0 and "You must be logged in to the server" in proc.stderr


def test_python_client_in_cluster_config(tls_sandbox, tmp_path, monkeypatch):
    kubernetes = pytest.importorskip("kubernetes")
    sa = tls_sandbox.write_service_account(tmp_path / "sa", namespace="apps")
    assert {p.name for p in sa.iterdir()} == {"token", "ca.crt", "namespace"}
    for k, v in tls_sandbox.in_cluster_env.items():
        monkeypatch.setenv(k, v)
    from kubernetes.config import incluster_config
    loader = incluster_config.InClusterConfigLoader(token_filename=str(sa / "token"),
                                                    cert_filename=str(sa / "ca.crt"))
    loader.load_and_set()
    core = kubernetes.client.CoreV1Api()
    assert "kube-system" in [n.metadata.name for n in core.list_namespace().items]
    svc = core.read_namespaced_service("kubernetes", "default")
    assert svc.spec.ports[0].port == 443


def test_cli_tls_flags(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "kube_sandbox", "--port", "0", "--kubeconfig",
                             str(tmp_path / "kc"), "--tls", "--require-token", "--service-account-dir",
                             str(tmp_path / "sa")], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        assert lines[0].startswith("kube-sandbox serving https://")
        assert lines[2].startswith("ca: ") and "KUBERNETES_SERVICE_HOST=127.0.0.1" in lines[3]
        assert (tmp_path / "sa" / "token").read_text() in (tmp_path / "kc").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
