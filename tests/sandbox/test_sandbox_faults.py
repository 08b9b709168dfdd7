"""Fault injection: helm and clients see the errors a cluster would give."""

from __future__ import annotations

import json
import time

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402


def test_helm_install_sees_injected_500(cli, scaffold_chart):
    cli.sb.faults.fail(verb="patch", resource="deployments", status=500, times=1)
    proc = cli.helm("install", "web", str(scaffold_chart), "-n", "default", check=False)
    assert proc.returncode != 0
    assert "kube-sandbox injected fault on patch deployments" in proc.stderr
    assert json.loads(cli.helm("status", "web", "-n", "default", "-o", "json").stdout)["info"]["status"] == "failed"


def test_helm_uninstall_forbidden_then_recovers(cli, scaffold_chart):
    cli.helm("install", "web", str(scaffold_chart), "-n", "default")
    cli.sb.faults.fail(verb="delete", resource="services", name="web-demo", status=403, times=1)
    proc = cli.helm("uninstall", "web", "-n", "default", check=False)
    assert proc.returncode != 0 and "failed to delete release: web" in proc.stderr
    cli.sb.faults.clear()
    cli.helm("uninstall", "web", "-n", "default", check=False)  # leftovers of the partial uninstall
    # default/kubernetes is the API server's own Service, there as on a cluster
    assert cli.kubectl("get", "svc,deploy", "-n", "default", "-o", "name").stdout.split() == ["service/kubernetes"]


def test_429_is_retried_by_client_go_like_on_a_cluster(cli, scaffold_chart):
    rule = cli.sb.faults.fail(verb="patch", resource="services", status=429, times=2)
    cli.helm("install", "web", str(scaffold_chart), "-n", "default")
    assert rule.hits == 2


def test_delete_namespace_fault_with_python_client(sandbox, kube_client):
    core = client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": "x"}})
    sandbox.faults.fail(verb="delete", resource="namespaces", name=None, status=500, times=1)
    with pytest.raises(ApiException) as exc:
        core.delete_namespace("x")
    assert exc.value.status == 500 and json.loads(exc.value.body)["reason"] == "InternalError"
    core.delete_namespace("x")  # the fault fired once


def test_conflict_fault_and_drop_and_latency(sandbox, kube_client):
    core = client.CoreV1Api(kube_client)
    sandbox.faults.fail(verb="create", resource="configmaps", status=409, times=1)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert exc.value.status == 409
    drop = sandbox.faults.drop(verb="get", resource="configmaps", name="a", times=None)
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    with pytest.raises(Exception, match="RemoteDisconnected|Connection aborted|Max retries"):
        core.read_namespaced_config_map("a", "default", _request_timeout=5)
    assert drop.hits >= 2  # urllib3 retried the dropped connection, as it would against a cluster
    sandbox.faults.clear()
    assert core.read_namespaced_config_map("a", "default").metadata.name == "a"
    sandbox.faults.latency(0.5, verb="list", resource="configmaps", times=1)
    t = time.monotonic()
    core.list_namespaced_config_map("default")
    assert time.monotonic() - t >= 0.5
    assert sandbox.faults.rules == []


def test_kubectl_sees_forbidden(cli):
    cli.sb.faults.fail(verb="list", resource="namespaces", status=403, times=1)
    proc = cli.kubectl("get", "ns", check=False)
    assert proc.returncode != 0 and "Forbidden" in proc.stderr
