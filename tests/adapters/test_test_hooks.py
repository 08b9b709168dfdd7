"""The parallel test runner against the kube sandbox with the real helm: the same verdict as
``helm test`` for a passing and a failing release, delete policies honoured, and a plain
``helm test`` of the same release still works afterwards."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
import yaml

from stackyard.adapters.helm import Helm, HelmConfig
from stackyard.adapters.test_hooks import KubeTestHooks
from stackyard.core import system_tests as rules
from stackyard.steps.system_tests import run_tests

FAIL = "sandbox.stackyard.io/outcome: fail"


def pod(name: str, *, weight: int = 0, policy: str | None = None, extra: str = "") -> str:
    annotations = [f"helm.sh/hook: test", f'helm.sh/hook-weight: "{weight}"']
    if policy:
        annotations.append(f"helm.sh/hook-delete-policy: \"{policy}\"")
    if extra:
        annotations.append(extra)
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata:
          name: {name}
          annotations: {{{", ".join(annotations)}}}
        spec: {{restartPolicy: Never, containers: [{{name: c, image: busybox}}]}}
        """)


def umbrella(root: Path, tests: dict[str, list[str]]) -> Path:
    """An umbrella ``l3`` whose subcharts (one per key) carry the given test manifests."""
    chart = root / "l3"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: l3\nversion: 0.1.0\n")
    for service, manifests in tests.items():
        sub = chart / "charts" / service
        (sub / "templates").mkdir(parents=True)
        (sub / "Chart.yaml").write_text(f"apiVersion: v2\nname: {service}\nversion: 1.0.0\n")
        (sub / "templates" / "tests.yaml").write_text("---\n".join(manifests))
    return chart


@pytest.fixture
def cluster(tmp_path: Path, helm_bin: str):
    from kubernetes import client, config

    from kube_sandbox import Sandbox

    with Sandbox(ready_delay=0.2) as sandbox:
        helm = Helm(HelmConfig(home=tmp_path / "helm", binary=helm_bin, kubeconfig=str(sandbox.kubeconfig_path),
                               base_env={"PATH": "/usr/bin:/bin"}))
        api = config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
        yield helm, api, client.CoreV1Api(api)


def run(helm: Helm, api, release: str, namespace: str, changed: str | None = None, parallelism: int = 8):
    hooks = rules.test_hooks(helm.release_hooks(release, namespace=namespace))
    results = run_tests(rules.plan(hooks, changed), KubeTestHooks(api, namespace), parallelism=parallelism,
                        timeout_seconds=60, poll_seconds=0.1)
    return hooks, results, rules.verdict(hooks, results)


def install(helm: Helm, chart: Path, namespace: str) -> None:
    helm.upgrade_install("l3", chart, namespace=namespace, create_namespace=True, wait=False)


def test_a_passing_release_passes_as_with_helm_test_which_still_works_afterwards(cluster, tmp_path):
    helm, api, core = cluster
    chart = umbrella(tmp_path, {
        "orders": [pod("orders-test"), pod("orders-late", weight=5, policy="hook-succeeded")],
        "catalog": [pod("catalog-test", policy="before-hook-creation,hook-succeeded")],
        "storefront": [pod("storefront-test", policy="hook-failed")],
    })
    install(helm, chart, "pass")
    hooks, results, verdict = run(helm, api, "l3", "pass", changed="storefront")
    assert verdict.passed and not verdict.failed
    assert {r.name for r in results} == {h.name for h in hooks} == {
        "orders-test", "orders-late", "catalog-test", "storefront-test"}
    assert results[-1].name == "orders-late"  # weight 5 ran after every weight-0 test had finished
    left = {p.metadata.name for p in core.list_namespaced_pod("pass").items}
    assert {"orders-test", "storefront-test"} <= left  # no policy for success: kept, like helm
    assert not {"orders-late", "catalog-test"} & left  # hook-succeeded: deleted
    assert all("simulated success" in r.logs for r in results)
    assert helm.test("l3", namespace="pass").passed  # helm replaces what we left (before-hook-creation)


def test_a_failing_release_fails_as_with_helm_test_and_every_failure_is_named(cluster, tmp_path):
    helm, api, core = cluster
    chart = umbrella(tmp_path, {
        "orders": [pod("orders-test", extra=FAIL)],
        "catalog": [pod("catalog-test", policy="hook-failed", extra=FAIL)],
        "storefront": [pod("storefront-test")],
    })
    install(helm, chart, "fail")
    hooks, results, verdict = run(helm, api, "l3", "fail", changed="storefront", parallelism=1)
    assert not verdict.passed
    assert set(verdict.failed) == {"orders-test", "catalog-test"}  # helm would stop at the first
    assert results[0].name == "storefront-test"  # the changed service first
    assert "exited 1" in {r.name: r for r in results}["orders-test"].reason
    assert "catalog-test" not in {p.metadata.name for p in core.list_namespaced_pod("fail").items}
    assert not helm.test("l3", namespace="fail").passed  # helm's own verdict agrees


def test_the_tests_of_one_weight_run_side_by_side(cluster, tmp_path):
    helm, api, _ = cluster
    chart = umbrella(tmp_path, {f"svc{i}": [pod(f"svc{i}-test")] for i in range(6)})
    install(helm, chart, "wide")
    started = time.monotonic()
    _, results, verdict = run(helm, api, "l3", "wide", parallelism=6)
    parallel = time.monotonic() - started
    assert verdict.passed and len(results) == 6
    single = max(r.seconds for r in results)
    assert parallel < single * 3  # one at a time would take ~6 x one test


def test_an_object_left_without_before_hook_creation_is_judged_as_it_is_like_helm_4_does(cluster, tmp_path):
    """helm 4 applies a hook onto an object of the same name, then judges that object."""
    helm, api, core = cluster
    chart = umbrella(tmp_path, {"orders": [pod("orders-test", policy="hook-failed")]})
    install(helm, chart, "left")
    failing = yaml.safe_load(pod("orders-test", policy="hook-failed", extra=FAIL))
    core.create_namespaced_pod("left", failing)  # a failed leftover of that name
    _, results, verdict = run(helm, api, "l3", "left")
    assert not verdict.passed and results[0].phase is rules.Phase.FAILED
    core.create_namespaced_pod("left", failing)  # hook-failed removed ours; the same for helm
    assert not helm.test("l3", namespace="left").passed
    assert run(helm, api, "l3", "left")[2].passed  # gone now: created afresh, and it succeeds
    assert run(helm, api, "l3", "left")[2].passed  # kept after success: applied onto, still succeeded
    assert helm.test("l3", namespace="left").passed


def test_a_test_hook_of_another_kind_is_created_and_done(cluster, tmp_path):
    helm, api, core = cluster
    config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fixture\n  annotations: {helm.sh/hook: test}\ndata: {a: b}\n"
    chart = umbrella(tmp_path, {"orders": [config_map, pod("orders-test", weight=1)]})
    install(helm, chart, "kinds")
    _, results, verdict = run(helm, api, "l3", "kinds")
    assert verdict.passed and [r.name for r in results] == ["fixture", "orders-test"]
    assert core.read_namespaced_config_map("fixture", "kinds").data == {"a": "b"}
