"""Outcomes decided, not assumed: commands that decide themselves, outcome rules (API, file, HTTP),
jobs' backoffLimit, and helm hooks and tests failing as on a cluster."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from kube_sandbox import Sandbox
from kube_sandbox.rules import Rules, decide

CHARTS = Path(__file__).parent / "charts"


@pytest.mark.parametrize("argv,expected", [
    (["true"], (0, 0.0, [])),
    (["false"], (1, 0.0, [])),
    (["/bin/sh", "-c", "exit 1"], (1, 0.0, [])),
    (["sh", "-c", "exit 300"], (44, 0.0, [])),
    (["sh", "-c", "echo hi && exit 3"], (3, 0.0, ["hi"])),
    (["sh", "-c", "false && echo skipped; echo ran"], (0, 0.0, ["ran"])),
    (["sh", "-ec", "false; echo never"], (1, 0.0, [])),
    (["bash", "-c", "echo 'a b'\nsleep 2\nexit 0"], (0, 2.0, ["a b"])),
    (["sleep", "5"], (0, 5.0, [])),
    (["echo", "-n", "x"], (0, 0.0, ["x"])),
])
def test_decidable_commands(argv, expected):
    assert decide(argv) == expected


@pytest.mark.parametrize("argv", [[], ["wget", "web:80"], ["sh", "-c", "curl x || exit 1"], ["sh"],
                                  ["sleep", "infinity"], ["sh", "-c", "echo $(date)|tee x"]])
def test_undecidable_commands_follow_the_rules(argv):
    assert decide(argv) is None


POD = {"metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
       "spec": {"restartPolicy": "Never"}}
C = {"name": "main", "image": "registry.example.com/web:2.0", "command": ["wget", "x"]}


@pytest.mark.parametrize("match,hit", [
    ({}, True), ({"namespace": "shop"}, True), ({"namespace": "other"}, False), ({"name": "web-*"}, True),
    ({"name": "/web-[0-9]+/"}, True), ({"name": "/web/"}, False), ({"labels": {"app": "web"}}, True),
    ({"labels": {"app": "db"}}, False), ({"image": "*:2.0"}, True), ({"command": "wget *"}, True),
    ({"container": "side*"}, False), ({"owner": "Job"}, False),
])
def test_rule_matching(match, hit):
    rules = Rules([{"name": "r", "match": match, "result": {"exitCode": 7}}])
    assert (rules.resolve(POD, C).exit_code == 7) is hit


def test_rules_precede_commands_and_the_default_is_success():
    rules = Rules()
    assert rules.resolve(POD, C).exit_code == 0  # undecidable, pod does not restart: exits 0
    assert rules.resolve({**POD, "spec": {}}, C).exit_code is None  # restartPolicy Always: runs
    rules.add(name="slow", match={"name": "web-*"}, result={"duration": 3})
    o = rules.resolve(POD, {**C, "command": ["sh", "-c", "exit 4"]})
    assert (o.exit_code, o.duration, o.rule) == (4, 3, "slow")  # the rule left the exit to the command
    rules.add(name="pull", match={"image": "*:2.0"}, result={"imagePull": "ErrImagePull"})
    assert rules.resolve(POD, C).rule == "slow"  # first match wins
    rules.remove("slow")
    assert rules.resolve(POD, C).image_pull == "ErrImagePull"
    rules.clear()
    assert rules.list() == []
    with pytest.raises(ValueError):
        rules.add(match={"colour": "red"}, result={})


def _wait(fn, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _pod(cli, ns, name):
    return json.loads(cli.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)


def test_pod_exit_code_comes_from_its_command(cli):
    cli.kubectl("run", "fails", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo bye; exit 3")
    pod = _wait(lambda: (p := _pod(cli, "default", "fails"))["status"]["phase"] == "Failed" and p)
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    logs = cli.kubectl("logs", "fails").stdout
    assert "bye\n" in logs and "exit code 3" in logs


def test_rules_from_python_make_a_workload_crash_loop_or_never_pull(cli):
    cli.sb.rules.add(name="crash", match={"labels": {"app": "crashy"}}, result={"crashLoop": True})
    cli.sb.rules.add(name="pull", match={"image": "*:missing"}, result={"imagePull": "ErrImagePull"})
    for name, image in (("crashy", "x:1"), ("puller", "x:missing")):
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
            "selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "containers": [{"name": "c", "image": image}]}}}}
        cli.run("kubectl", "apply", "-f", _write(cli, name, body))
    def reasons():
        pods = json.loads(cli.kubectl("get", "pods", "-o", "json").stdout)["items"]
        return {p["metadata"]["labels"]["app"]: ((p["status"].get("containerStatuses") or [{}])[0].get("state") or {})
                .get("waiting", {}).get("reason") for p in pods}
    got = _wait(lambda: (r := reasons()).get("crashy") == "CrashLoopBackOff" and
                r.get("puller") in ("ErrImagePull", "ImagePullBackOff") and r)
    assert got
    dep = json.loads(cli.kubectl("get", "deploy", "crashy", "-o", "json").stdout)
    assert dep["status"].get("readyReplicas", 0) == 0
    events = cli.kubectl("get", "events", "-o", "json").stdout
    assert '"BackOff"' in events and "Failed to pull image" in events


def _write(cli, name, body) -> str:
    path = Path(cli.env["HOME"]) / f"{name}.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_helm_test_with_exit_1_fails_and_hooks_fail_the_release(cli):
    chart = str(CHARTS / "workloads")
    cli.helm("install", "w", chart, "--wait", "--timeout", "30s")
    assert "Phase:          Succeeded" in cli.helm("test", "w", "--logs").stdout
    cli.helm("upgrade", "w", chart, "--set-json", 'test.command=["sh","-c","exit 1"]')
    proc = cli.helm("test", "w", "--logs", check=False)
    assert proc.returncode != 0 and "Phase:          Failed" in proc.stdout and "exit code 1" in proc.stdout
    proc = cli.helm("upgrade", "w", chart, "--set-json", 'hook.command=["sh","-c","exit 2"]', "--timeout", "20s",
                    check=False)
    assert proc.returncode != 0 and "pre-upgrade hooks failed" in proc.stderr and "Failed" in proc.stderr
    job = json.loads(cli.kubectl("get", "job", "w-migrate", "-o", "json").stdout)
    assert job["status"]["failed"] == 2  # backoffLimit 1: two pods
    assert {c["reason"] for c in job["status"]["conditions"]} == {"BackoffLimitExceeded"}
    cli.helm("rollback", "w", "1", "--wait", "--timeout", "30s")  # the pre-upgrade hook of revision 1 passes
    assert cli.helm("test", "w").returncode == 0
    history = json.loads(cli.helm("history", "w", "-o", "json").stdout)
    assert [h["status"] for h in history] == ["superseded", "superseded", "failed", "deployed"]


def test_rule_makes_a_third_party_test_fail_without_editing_the_chart(cli):
    chart = str(CHARTS / "workloads")
    cli.helm("install", "w", chart, "--wait", "--timeout", "30s")
    req = urllib.request.Request(cli.sb.url + "/sandbox/v1/rules", method="POST", data=json.dumps(
        {"name": "fail-tests", "match": {"annotations": {"helm.sh/hook": "test"}}, "result": {
            "exitCode": 2, "logs": "connection refused"}}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 201
    with urllib.request.urlopen(cli.sb.url + "/sandbox/v1/rules") as resp:
        assert [r["name"] for r in json.loads(resp.read())["rules"]] == ["fail-tests"]
    proc = cli.helm("test", "w", "--logs", check=False)
    assert proc.returncode != 0 and "connection refused" in proc.stdout
    with urllib.request.urlopen(urllib.request.Request(cli.sb.url + "/sandbox/v1/rules", method="DELETE")):
        pass
    assert cli.sb.rules.list() == []
    assert cli.helm("test", "w").returncode == 0


def test_rules_file_at_start(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n- name: never-ready\n  match: {namespace: slow}\n  result: {ready: false}\n")
    with Sandbox(ready_delay=0.05, rules=str(rules)) as sb:
        assert [r["name"] for r in sb.rules.list()] == ["never-ready"]


def test_legacy_annotation_on_a_deployment_fails_its_rollout(cli, tmp_path):
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "old", "annotations": {"sandbox.stackyard.io/outcome": "fail"}}, "spec": {
        "selector": {"matchLabels": {"app": "old"}}, "template": {"metadata": {"labels": {"app": "old"}}, "spec": {
            "containers": [{"name": "c", "image": "i"}]}}}}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dep))
    cli.kubectl("apply", "-f", str(path))
    _wait(lambda: any(c.get("reason") == "ProgressDeadlineExceeded" for c in json.loads(cli.kubectl(
        "get", "deploy", "old", "-o", "json").stdout)["status"].get("conditions", [])))
