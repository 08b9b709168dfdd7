"""helm 4 (real binary, default flags) against the sandbox: the release lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kube_sandbox.controllers import OUTCOME as FAIL_ANNOTATION

FAIL_POD = ["--set-string", f"podAnnotations.{FAIL_ANNOTATION.replace('.', chr(92) + '.')}=fail"]


def _history(cli, release: str, ns: str) -> list[dict]:
    return json.loads(cli.helm("history", release, "-n", ns, "-o", "json").stdout)


def test_install_creates_namespace_and_waits_until_ready(cli, scaffold_chart):
    cli.helm("install", "web", str(scaffold_chart), "-n", "apps", "--create-namespace", "--wait", "--timeout", "30s")
    status = json.loads(cli.helm("status", "web", "-n", "apps", "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    dep = json.loads(cli.kubectl("get", "deployment", "web-demo", "-n", "apps", "-o", "json").stdout)
    assert dep["status"]["readyReplicas"] == 1
    assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"]
    secrets = json.loads(cli.kubectl("get", "secrets", "-n", "apps", "-l", "owner=helm,name=web", "-o", "json").stdout)
    assert [s["metadata"]["name"] for s in secrets["items"]] == ["sh.helm.release.v1.web.v1"]


def test_upgrade_rollback_history_list(cli, scaffold_chart):
    chart = str(scaffold_chart)
    cli.helm("install", "web", chart, "-n", "apps", "--create-namespace", "--wait")
    cli.helm("upgrade", "web", chart, "-n", "apps", "--set", "replicaCount=3", "--wait", "--timeout", "30s")
    dep = json.loads(cli.kubectl("get", "deploy", "web-demo", "-n", "apps", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 3 and dep["status"]["readyReplicas"] == 3
    assert dep["metadata"]["generation"] == 2
    pods = json.loads(cli.kubectl("get", "pods", "-n", "apps", "-l", "app.kubernetes.io/instance=web,"
                                  "app.kubernetes.io/name=demo", "-o", "json").stdout)["items"]
    assert len(pods) == 3 and {p["metadata"]["ownerReferences"][0]["kind"] for p in pods} == {"ReplicaSet"}
    cli.helm("rollback", "web", "1", "-n", "apps", "--wait")
    dep = json.loads(cli.kubectl("get", "deploy", "web-demo", "-n", "apps", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 1
    hist = _history(cli, "web", "apps")
    assert [(h["revision"], h["status"]) for h in hist] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert hist[-1]["description"] == "Rollback to 1"
    cli.helm("install", "other", chart, "-n", "more", "--create-namespace")
    listed = json.loads(cli.helm("list", "-A", "-o", "json").stdout)
    assert sorted((r["name"], r["namespace"]) for r in listed) == [("other", "more"), ("web", "apps")]


def test_upgrade_removing_a_field_removes_it_server_side(cli, scaffold_chart):
    chart = str(scaffold_chart)
    cli.helm("install", "web", chart, "-n", "apps", "--create-namespace", "--set", "podLabels.tier=frontend")
    cli.helm("upgrade", "web", chart, "-n", "apps", "--reset-values")
    dep = json.loads(cli.kubectl("get", "deploy", "web-demo", "-n", "apps", "-o", "json").stdout)
    assert "tier" not in dep["spec"]["template"]["metadata"]["labels"]


def test_failed_upgrade_with_rollback_on_failure_restores_previous_revision(cli, scaffold_chart):
    chart = str(scaffold_chart)
    cli.helm("install", "web", chart, "-n", "apps", "--create-namespace", "--wait")
    proc = cli.helm("upgrade", "web", chart, "-n", "apps", *FAIL_POD, "--wait", "--timeout", "3s",
                    "--rollback-on-failure", check=False)
    assert proc.returncode != 0
    assert "rolled back" in proc.stderr and "Progress deadline exceeded" in proc.stderr
    hist = _history(cli, "web", "apps")
    assert [h["status"] for h in hist] == ["superseded", "failed", "deployed"]
    dep = json.loads(cli.kubectl("get", "deploy", "web-demo", "-n", "apps", "-o", "json").stdout)
    assert FAIL_ANNOTATION not in (dep["spec"]["template"]["metadata"].get("annotations") or {})


def test_helm_test_logs_passing(cli, scaffold_chart):
    cli.helm("install", "web", str(scaffold_chart), "-n", "apps", "--create-namespace", "--wait")
    proc = cli.helm("test", "web", "-n", "apps", "--logs")
    assert "Phase:          Succeeded" in proc.stdout
    assert "POD LOGS: web-demo-test-connection" in proc.stdout
    assert "command: wget web-demo:80" in proc.stdout


def test_helm_test_logs_failing(cli, scaffold_chart):
    cli.helm("install", "web", str(scaffold_chart), "-n", "apps", "--create-namespace",
             "--set", "testOutcome=fail")
    proc = cli.helm("test", "web", "-n", "apps", "--logs", check=False)
    assert proc.returncode != 0
    assert "web-demo-test-connection" in proc.stderr and "failed" in proc.stderr.lower()
    assert "exit code 1" in proc.stdout


def test_uninstall_removes_objects_and_release(cli, scaffold_chart):
    cli.helm("install", "web", str(scaffold_chart), "-n", "apps", "--create-namespace", "--wait")
    cli.helm("uninstall", "web", "-n", "apps", "--wait")
    assert json.loads(cli.helm("list", "-A", "-o", "json").stdout) == []
    left = json.loads(cli.kubectl("get", "deploy,svc,sa,secrets", "-n", "apps", "-o", "json").stdout)
    assert left["items"] == []


def test_dry_run_server_does_not_persist(cli, scaffold_chart):
    cli.helm("install", "web", str(scaffold_chart), "-n", "default", "--dry-run=server")
    assert json.loads(cli.kubectl("get", "deploy", "-n", "default", "-o", "json").stdout)["items"] == []


def test_unknown_field_is_rejected_like_a_cluster(cli, tmp_path, scaffold_chart):
    chart = tmp_path / "bad"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: bad\nversion: 0.1.0\n")
    (chart / "templates").mkdir()
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  a: b\nspecc: {}\n")
    proc = cli.helm("install", "bad", str(chart), "-n", "default", check=False)
    assert proc.returncode != 0
    assert 'unknown field "specc"' in proc.stderr


UMBRELLA_ROOT = Path(__file__).resolve().parents[2] / "include" / "charts"


@pytest.mark.skipif(not UMBRELLA_ROOT.is_dir() or not any(UMBRELLA_ROOT.iterdir()),
                    reason="TODO(umbrella): include/charts/ (example service charts) does not exist yet; "
                           "complete this test when it does")
def test_umbrella_of_example_services_installs_and_uninstalls(cli, tmp_path):
    charts = sorted(p for p in UMBRELLA_ROOT.iterdir() if (p / "Chart.yaml").is_file())
    umbrella = tmp_path / "umbrella"
    (umbrella / "charts").mkdir(parents=True)
    deps = "".join(f"  - name: {c.name}\n    version: \">=0.0.0-0\"\n    repository: file://{c}\n" for c in charts)
    (umbrella / "Chart.yaml").write_text(f"apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n{deps}")
    cli.helm("dependency", "build", str(umbrella))
    cli.helm("install", "stack", str(umbrella), "-n", "stack", "--create-namespace", "--wait", "--timeout", "60s")
    assert json.loads(cli.helm("status", "stack", "-n", "stack", "-o", "json").stdout)["info"]["status"] == "deployed"
    cli.helm("uninstall", "stack", "-n", "stack", "--wait")
