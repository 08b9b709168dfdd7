"""The L3 gate under faults, through ``dag.test()`` on the kube sandbox with real helm and sops.

Every test checks the same invariants afterwards: L3 is unchanged (or changed exactly once), no
ephemeral stack is left that the reaper would not remove, and no plaintext of a secret the run
decrypted appears in the captured output (``dag.test()`` prints task logs unmasked, so this is the
strictest place to look).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from dev.demo import chart_variant
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose
from stackyard.core.ephemeral import Action, NamespaceSummary, decide, parse_ttl, LABEL_STACK_TYPE
from stackyard.steps.publishing import publish_chart
from stackyard.adapters.chart_registry import open_registry
from stackyard.adapters.helm import Helm

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY, EXAMPLE_SERVICES, require_tool
from tests.e2e.conftest import fresh_dag
from tests.support.webhook import Receiver
from tests.support.oci_registry import free_port, local_oci_registry

pytestmark = pytest.mark.slow

KMS_SECRET = "kms-only-token-4f9c2e1a"


@pytest.fixture(autouse=True)
def clear_faults(sandbox):
    sandbox.faults.clear()
    yield
    sandbox.faults.clear()


@pytest.fixture(scope="session")
def example_secrets(sops_bin) -> list[str]:
    """Plaintext of every example chart's ephemeral secrets (what a gate run decrypts)."""
    values = []
    for service in EXAMPLE_SERVICES:
        out = subprocess.run(
            [sops_bin, "decrypt", "--output-type", "json", str(CHARTS / service / "profiles" / "ephemeral" / "secrets.yaml")],
            env={"SOPS_AGE_KEY_FILE": str(EXAMPLE_AGE_KEY), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=True,
        ).stdout
        values += _leaves(json.loads(out))
    assert values and all(len(v) >= 5 for v in values)
    return values


def _leaves(data) -> list[str]:
    if isinstance(data, dict):
        return [leaf for value in data.values() for leaf in _leaves(value)]
    if isinstance(data, list):
        return [leaf for value in data for leaf in _leaves(value)]
    return [str(data)]


def assert_no_secret_in(output: str, secrets: list[str]) -> None:
    leaked = [s[:3] + "…" for s in secrets if s in output]
    assert not leaked, f"plaintext secrets in the captured logs (first characters): {leaked}"


def live_ephemeral(local_stack) -> list:
    items = local_stack.core_v1().list_namespace(label_selector=f"{LABEL_STACK_TYPE}=ephemeral").items
    return [ns for ns in items if ns.status.phase != "Terminating"]


def helm_releases(local_stack, namespace: str) -> list:
    return local_stack.core_v1().list_namespaced_secret(namespace, label_selector="owner=helm").items


def try_number(dag_run, task_id: str) -> int:
    return next(ti.try_number for ti in dag_run.get_task_instances() if ti.task_id == task_id)


def run_gate(dagbag, conf):
    run = fresh_dag(dagbag, "l3_gate").test(run_conf=conf)
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def gate_report(local_stack):
    """The report of the only gate run so far that was not promoted (filed under its candidate id)."""
    [candidate_id] = [name for name in (f.rsplit("/", 1)[-1] for f in local_stack.store.backend.list_folders("reports"))
                      if not name.startswith("v")]
    [record] = local_stack.store.reports(candidate_id)
    return record.report


@pytest.fixture
def webhook(monkeypatch):
    receiver = Receiver()
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": f"http://127.0.0.1:{receiver.port}", "extra": {"format": "json"}}))
    yield receiver
    receiver.server.shutdown()


def variant(local_stack, service: str, version: str, edit) -> None:
    """Publish ``service`` at ``version`` after ``edit(chart_dir)`` changed its copy."""
    chart = chart_variant(CHARTS / service, local_stack.tmp / "variants" / f"{service}-{version}", version=version)
    edit(chart)
    publish_chart(chart, registry=local_stack.registry, helm=local_stack.helm, images=local_stack.images)


# --- helm fails during deploy -------------------------------------------------------------------


def test_an_api_that_keeps_failing_during_deploy_is_an_error_not_a_rejection(local_stack, dagbag, sandbox, capfd,
                                                                           example_secrets, webhook):
    seeded = local_stack.seed()
    local_stack.publish("orders", "1.1.0")
    # helm 4 applies server-side: every write of a Deployment is a PATCH; the API server answers 500.
    sandbox.faults.fail(verb="patch", resource="deployments", times=None, message="etcd is on fire")

    run, tasks = run_gate(dagbag, {"service": "orders", "chart_version": "1.1.0"})
    sandbox.faults.clear()
    out = capfd.readouterr().out

    assert run.state == "failed"
    assert tasks["deploy"] == "failed" and try_number(run, "deploy") == 3  # retried, then gave up
    assert tasks["system_tests"] == "upstream_failed" and tasks["promote"] == "upstream_failed"
    assert tasks["reject"] == "skipped" and tasks["teardown"] == "success"
    assert "etcd is on fire" in out
    assert local_stack.store.latest() == seeded
    assert local_stack.store.rejections() == []  # a crash of the cluster is no verdict on the chart
    report = gate_report(local_stack)
    assert report.outcome.value == "error" and report.reason.startswith("deploy: ") and "etcd is on fire" in report.reason
    assert report.failure.kind.value == "unknown" and "etcd is on fire" in report.failure.helm_error
    assert [body["kind"] for _, _, body in webhook.requests] == ["gate_error"]
    assert live_ephemeral(local_stack) == []
    assert_no_secret_in(out, example_secrets)


# --- the registry is unreachable ------------------------------------------------------------------


def test_unreachable_registry_fails_validate_and_creates_nothing(local_stack, dagbag, monkeypatch, tmp_path, capfd):
    require_tool("docker-registry")
    with local_oci_registry(tmp_path / "oci") as host:
        url = f"oci://{host}/charts"
        # CI published from its own machine: nothing of it is in the gate's chart cache.
        helm = Helm(dataclasses.replace(local_stack.helm.config, plain_http=True))
        ci_registry = open_registry(url, cache_dir=tmp_path / "ci-cache", helm=helm)
        pins = {}
        for service in EXAMPLE_SERVICES:
            ref = publish_chart(CHARTS / service, registry=ci_registry, helm=helm, images=local_stack.images)
            pins[service] = ServicePin(ref.version, ref.digest)
        publish_chart(chart_variant(CHARTS / "orders", tmp_path / "orders", version="1.1.0"), registry=ci_registry, helm=helm, images=local_stack.images)
        seeded = local_stack.store.seed(Manifest.initial(pins, datetime.now(timezone.utc), Provenance(None, "tests", None)))
    # the registry is down now
    monkeypatch.setenv("STACKYARD_REGISTRY", url)
    monkeypatch.setenv("STACKYARD_REGISTRY_PLAIN_HTTP", "true")

    run, tasks = run_gate(dagbag, {"service": "orders", "chart_version": "1.1.0"})
    out = capfd.readouterr().out

    assert run.state == "failed"
    assert tasks["validate"] == "failed" and tasks["build_candidate"] == "upstream_failed"
    assert tasks["create_stack"] == "upstream_failed"
    assert f"chart registry {url}: could not pull orders 1.1.0" in out and "connection refused" in out
    assert local_stack.store.latest() == seeded and local_stack.store.rejections() == []
    assert live_ephemeral(local_stack) == []


# --- KMS is unavailable -----------------------------------------------------------------------------


@pytest.fixture
def moto_kms(tmp_path):
    """A moto_server with one KMS key; yields (endpoint, key arn, stop())."""
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    proc = subprocess.Popen([require_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            arn = kms.create_key()["KeyMetadata"]["Arn"]
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.2)

    def stop():
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)

    yield endpoint, arn, stop
    stop()


def test_kms_unavailable_fails_deploy_clearly_without_leaking(local_stack, dagbag, monkeypatch, tmp_path, capfd,
                                                            moto_kms, sops_bin, example_secrets):
    endpoint, arn, stop_kms = moto_kms
    aws_env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": endpoint, "PATH": "/usr/bin:/bin"}
    seeded = local_stack.seed()
    chart = chart_variant(CHARTS / "orders", tmp_path / "orders", version="1.1.0")
    secrets_file = chart / "profiles" / "ephemeral" / "secrets.yaml"
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"secrets": {"API_TOKEN": KMS_SECRET, "DATABASE_PASSWORD": KMS_SECRET + "-db"}}))
    encrypted = subprocess.run([sops_bin, "encrypt", "--kms", arn, str(plain)], env=aws_env, cwd=tmp_path,
                               capture_output=True, text=True, check=True).stdout
    secrets_file.write_text(encrypted)
    # The ephemeral profile's rule names the KMS key now (the chart contract checks recipients).
    rules = yaml.safe_load((chart / ".sops.yaml").read_text())
    rules["creation_rules"].insert(0, {"path_regex": r"profiles/ephemeral/secrets\.yaml$", "kms": arn})
    (chart / ".sops.yaml").write_text(yaml.safe_dump(rules))
    publish_chart(chart, registry=local_stack.registry, helm=local_stack.helm, images=local_stack.images)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": endpoint},
    }))
    stop_kms()

    run, tasks = run_gate(dagbag, {"service": "orders", "chart_version": "1.1.0"})
    out = capfd.readouterr().out

    assert run.state == "failed"
    assert tasks["deploy"] == "failed" and tasks["reject"] == "skipped" and tasks["teardown"] == "success"
    assert f"orders/profiles/ephemeral/secrets.yaml: could not reach the key service for {arn} (connection refused)" in out
    assert local_stack.store.latest() == seeded and local_stack.store.rejections() == []
    report = gate_report(local_stack)
    assert report.outcome.value == "error" and "could not reach the key service" in report.reason
    assert live_ephemeral(local_stack) == []
    assert_no_secret_in(out, [KMS_SECRET, KMS_SECRET + "-db", *example_secrets])


# --- the candidate itself is broken -----------------------------------------------------------------


def test_a_template_error_is_rejected_at_once_quoting_helm(local_stack, dagbag, capfd, example_secrets):
    seeded = local_stack.seed()
    # Renders only with what the pipeline adds at deploy (global.stackyard), so `helm lint` at publish passes.
    variant(local_stack, "orders", "1.1.0", lambda chart: (chart / "templates" / "broken.yaml").write_text(
        '{{- if hasKey (.Values.global | default dict) "stackyard" }}\n'
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  host: {{ .Values.db.host }}\n{{- end }}\n"))

    run, tasks = run_gate(dagbag, {"service": "orders", "chart_version": "1.1.0"})
    out = capfd.readouterr().out

    assert run.state == "failed"
    assert tasks["deploy"] == "failed" and try_number(run, "deploy") == 1  # deterministic: no retries
    assert tasks["reject"] == "success" and local_stack.store.latest() == seeded
    [rejection] = local_stack.store.rejections()
    assert rejection.reason.startswith("deploy failed: the chart did not render or a manifest is invalid in orders")
    assert "l3/charts/orders/templates/broken.yaml" in rejection.reason
    assert rejection.report.failure.kind.value == "render" and rejection.report.failure.service == "orders"
    assert "nil pointer evaluating interface {}.host" in rejection.report.failure.helm_error
    assert gate_report(local_stack).outcome.value == "rejected"
    assert live_ephemeral(local_stack) == []
    assert_no_secret_in(out, example_secrets)


def test_a_service_that_never_becomes_ready_is_named_even_when_another_is_gated(local_stack, dagbag, capfd,
                                                                                  example_secrets):
    # L3 already pins a catalog whose pods fail; gating orders shows it.
    def never_ready(chart):
        deployment = chart / "templates" / "deployment.yaml"
        deployment.write_text(deployment.read_text().replace(
            "      annotations:\n", "      annotations:\n        sandbox.stackyard.io/outcome: fail\n", 1))

    variant(local_stack, "catalog", "1.0.1", never_ready)
    refs = {service: local_stack.publish(service) for service in EXAMPLE_SERVICES if service != "catalog"}
    refs["catalog"] = local_stack.registry.resolve("catalog", "1.0.1")
    pins = {service: ServicePin(ref.version, ref.digest) for service, ref in refs.items()}
    seeded = local_stack.store.seed(Manifest.initial(pins, datetime.now(timezone.utc), Provenance(None, "tests", None)))
    local_stack.publish("orders", "1.1.0")

    run, tasks = run_gate(dagbag, {"service": "orders", "chart_version": "1.1.0"})
    out = capfd.readouterr().out

    assert run.state == "failed" and tasks["deploy"] == "failed" and tasks["reject"] == "success"
    [rejection] = local_stack.store.rejections()
    failure = rejection.report.failure
    assert failure.kind.value == "not_ready" and failure.service == "catalog"
    assert any(ref.startswith("Deployment/") and "catalog" in ref for ref in failure.objects)
    assert rejection.reason.startswith("deploy failed: workloads did not become ready in catalog (Deployment/")
    assert local_stack.store.latest() == seeded and live_ephemeral(local_stack) == []
    assert_no_secret_in(out, example_secrets)


# --- the manifest store cannot be written during promote ---------------------------------------------


def test_an_unwritable_store_at_promote_is_an_error_with_its_reason_and_no_rejection(local_stack, dagbag, monkeypatch,
                                                                                       capfd, example_secrets, webhook):
    from stackyard.adapters.manifest_store import ManifestStore

    seeded = local_stack.seed()
    local_stack.publish("orders", "1.1.0")

    def unwritable(self, candidate):
        raise PermissionError(13, "Permission denied", str(local_stack.tmp / "manifests" / "v000002.json"))

    monkeypatch.setattr(ManifestStore, "promote", unwritable)

    run, tasks = run_gate(dagbag, {"service": "orders", "chart_version": "1.1.0"})
    out = capfd.readouterr().out

    assert run.state == "failed"
    assert tasks["system_tests"] == "success" and tasks["promote"] == "failed"
    assert tasks["reject"] == "skipped" and local_stack.store.rejections() == []
    report = gate_report(local_stack)
    assert report.outcome.value == "error" and report.tests.passed is True
    assert report.reason.startswith("promote: ") and "Permission denied" in report.reason
    [(_, _, alert)] = webhook.requests
    assert alert["kind"] == "gate_error" and alert["severity"] == "error" and "Permission denied" in alert["text"]
    assert "L3 gate error: promote: " in out
    assert local_stack.store.latest() == seeded and live_ephemeral(local_stack) == []
    assert_no_secret_in(out, example_secrets)


# --- the sandbox answers 500 during teardown --------------------------------------------------------


def test_teardown_retries_a_500_and_the_namespace_is_gone(local_stack, dagbag, sandbox, capfd, example_secrets):
    local_stack.seed()
    local_stack.publish("orders", "1.1.0")
    sandbox.faults.fail(verb="delete", resource="namespaces", times=1)

    run, tasks = run_gate(dagbag, {"service": "orders", "chart_version": "1.1.0"})
    out = capfd.readouterr().out

    assert run.state == "success", tasks
    assert tasks["teardown"] == "success" and try_number(run, "teardown") == 2
    assert live_ephemeral(local_stack) == []
    assert local_stack.store.latest().services["orders"].chart_version == "1.1.0"
    assert_no_secret_in(out, example_secrets)


def test_teardown_that_keeps_failing_leaves_a_stack_the_reaper_removes(local_stack, dagbag, sandbox, capfd, example_secrets):
    seeded = local_stack.seed()
    local_stack.publish("catalog", "1.1.0", failing_test=True)
    sandbox.faults.fail(verb="delete", resource="namespaces", times=None)

    run, tasks = run_gate(dagbag, {"service": "catalog", "chart_version": "1.1.0"})
    sandbox.faults.clear()
    out = capfd.readouterr().out

    assert run.state == "failed" and tasks["teardown"] == "failed" and tasks["reject"] == "success"
    assert local_stack.store.latest() == seeded
    [left] = live_ephemeral(local_stack)
    try:
        summary = NamespaceSummary(name=left.metadata.name, labels=left.metadata.labels or {},
                                   annotations=left.metadata.annotations or {}, created=left.metadata.creation_timestamp,
                                   phase=left.status.phase)
        ttl = parse_ttl(summary.annotations["stackyard.io/ttl"])
        assert decide(summary, datetime.now(timezone.utc)).action == Action.KEEP
        assert decide(summary, datetime.now(timezone.utc) + ttl + timedelta(minutes=1)).action == Action.DELETE
    finally:
        local_stack.core_v1().delete_namespace(left.metadata.name)
    assert_no_secret_in(out, example_secrets)


# --- two candidates race to promote ------------------------------------------------------------------


def test_l3_moving_before_promote_requeues_and_never_double_promotes(local_stack, dagbag, monkeypatch, capfd,
                                                                     example_secrets):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from stackyard.airflow.operators.system_tests import ParallelHelmTestOperator

    seeded = local_stack.seed()
    local_stack.publish("orders", "1.1.0")
    rival = local_stack.publish("storefront", "1.1.0")
    original = ParallelHelmTestOperator.execute

    def tests_pass_then_l3_moves(self, context):
        result = original(self, context)
        # Another gate run promotes its candidate between this run's system tests and promote.
        current = local_stack.store.latest()
        local_stack.store.promote(propose(current, "storefront", "1.1.0", rival.digest, datetime.now(timezone.utc),
                                          Provenance("rival-run", "rival", None)))
        return result

    monkeypatch.setattr(ParallelHelmTestOperator, "execute", tests_pass_then_l3_moves)
    conf = {"service": "orders", "chart_version": "1.1.0", "requested_by": "alice"}

    run, tasks = run_gate(dagbag, conf)
    out = capfd.readouterr().out

    assert run.state == "failed"  # the summary says "requeued", not promoted
    assert tasks["system_tests"] == "success" and tasks["promote"] == "skipped"
    assert tasks["requeue"] == "success"
    assert tasks["reject"] == "skipped" and tasks["teardown"] == "success"
    # exactly one promotion: the rival's; L3 history intact
    assert local_stack.store.versions() == [1, 2]
    latest = local_stack.store.latest()
    assert latest.parent == seeded.version and latest.change.service == "storefront"
    assert latest.services["orders"].chart_version == "1.0.0"
    assert local_stack.store.rejections() == []
    assert "L3 moved: current version is v2" in out
    # the requeue asked for a new run of the same request (left queued: dag.test has no scheduler)
    with create_session() as session:
        requeued = [r for r in session.query(DagRun).filter(DagRun.dag_id == "l3_gate", DagRun.run_id != run.run_id)
                    if r.conf == conf and r.queued_at and r.queued_at >= run.start_date]
        assert len(requeued) == 1 and requeued[0].state == "queued"
        for stale in requeued:  # a scheduler sharing this DB must not pick it up later
            session.delete(stale)
    assert live_ephemeral(local_stack) == []
    assert_no_secret_in(out, example_secrets)
