"""The L3 gate end to end on the kube sandbox: promote, reject, bad input, retries."""

from __future__ import annotations

import re

import pytest

from stackyard.core.ephemeral import LABEL_STACK_TYPE

from tests.conftest import ROOT
from tests.e2e.conftest import fresh_dag, run_dag
from tests.support.secrets import example_plaintexts

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def ephemeral_namespaces(local_stack):
    items = local_stack.core_v1().list_namespace(label_selector=f"{LABEL_STACK_TYPE}=ephemeral").items
    return [ns.metadata.name for ns in items if ns.status.phase != "Terminating"]


def test_good_bump_is_promoted_and_the_stack_removed(local_stack, dagbag, capfd, sops_bin):
    seeded = local_stack.seed()
    local_stack.publish("orders", "1.1.0")

    state, tasks = run_dag(dagbag, "l3_gate", {"service": "orders", "chart_version": "1.1.0", "requested_by": "alice"})

    assert state == "success", tasks
    latest = local_stack.store.latest()
    assert latest.version == seeded.version + 1
    assert latest.services["orders"].chart_version == "1.1.0"
    assert latest.provenance.requested_by == "alice"
    assert tasks["reject"] == "skipped" and tasks["requeue"] == "skipped"
    assert tasks["system_test_suite"] == "success"  # include/gate.yaml configures one
    assert local_stack.store.reports(latest.version)[0].report.outcome.value == "promoted"
    assert ephemeral_namespaces(local_stack) == []
    # `dags test` output is never masked by Airflow: stackyard itself must not emit plaintext.
    output = "".join(capfd.readouterr())
    assert "values layers, lowest first" in output
    assert [s for s in example_plaintexts(sops_bin) if s in output] == []


def test_failing_test_rejects_and_l3_is_unchanged(local_stack, dagbag):
    seeded = local_stack.seed()
    local_stack.publish("catalog", "1.1.0", failing_test=True)

    state, tasks = run_dag(dagbag, "l3_gate", {"service": "catalog", "chart_version": "1.1.0"})

    assert state == "failed"
    assert tasks["system_tests"] == "failed" and tasks["promote"] in ("upstream_failed", "skipped")
    assert tasks["reject"] == "success" and tasks["teardown"] == "success"
    assert local_stack.store.latest() == seeded
    rejection = local_stack.store.rejections()[0]
    # Test pods are named after the stack's own release (l3-<candidate id>).
    [failed] = re.fullmatch(r"system tests failed: (l3-[0-9a-f]{8}-catalog-test)", rejection.reason).groups()
    assert failed in rejection.report.test_output
    by_name = {t.name: t for t in rejection.report.tests}  # every test, with its outcome and time
    assert by_name[failed].phase == "Failed" and by_name[failed].logs
    orders = failed.replace("-catalog-test", "-orders-test")
    assert by_name[orders].phase == "Succeeded" and by_name[orders].seconds > 0
    assert ephemeral_namespaces(local_stack) == []


def test_a_failing_system_test_suite_rejects(local_stack, dagbag, tmp_path, monkeypatch):
    config = tmp_path / "gate.yaml"
    config.write_text(
        # fails for real on a cluster; the sandbox decides `sh -c 'exit 1'` by its text
        "system_tests:\n  image: docker.io/library/busybox:1.36\n  cmds: [sh, -c, 'echo 2 suites failed; exit 1']\n"
    )
    monkeypatch.setenv("STACKYARD_GATE_CONFIG", str(config))
    seeded = local_stack.seed()
    local_stack.publish("orders", "1.3.0")

    state, tasks = run_dag(dagbag, "l3_gate", {"service": "orders", "chart_version": "1.3.0"})

    assert state == "failed"
    assert tasks["system_tests"] == "success" and tasks["system_test_suite"] == "failed"
    assert tasks["promote"] == "upstream_failed" and tasks["reject"] == "success"
    assert local_stack.store.latest() == seeded
    assert local_stack.store.rejections()[0].reason == "the system test suite failed (see the system_test_suite log)"
    assert ephemeral_namespaces(local_stack) == []


def test_a_v_prefixed_chart_version_publishes_gates_and_promotes_as_declared(local_stack, dagbag):
    """helm accepts ``v1.19.0`` (cert-manager's scheme); so does every step, keeping the text."""
    seeded = local_stack.seed()
    ref = local_stack.publish("orders", "v1.19.0")
    assert ref.version == "v1.19.0"

    state, tasks = run_dag(dagbag, "l3_gate", {"service": "orders", "chart_version": "v1.19.0"})

    assert state == "success", tasks
    latest = local_stack.store.latest()
    assert latest.version == seeded.version + 1
    assert latest.services["orders"].chart_version == "v1.19.0" and latest.change.to_version == "v1.19.0"
    assert local_stack.store.reports(latest.version)[0].report.outcome.value == "promoted"


def test_an_invalid_gate_config_is_an_import_error_naming_the_field(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    config = tmp_path / "gate.yaml"
    config.write_text("system_tests:\n  cmds: [pytest]\n")
    monkeypatch.setenv("STACKYARD_GATE_CONFIG", str(config))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "l3_gate.py"))
    assert "system_tests.image: the test suite's container image is required" in "".join(bag.import_errors.values())


def test_keep_stack_on_failure_shortens_its_ttl_instead(local_stack, dagbag):
    local_stack.seed()
    local_stack.publish("catalog", "1.2.0", failing_test=True)

    state, _ = run_dag(dagbag, "l3_gate", {"service": "catalog", "chart_version": "1.2.0", "keep_stack_on_failure": True})

    assert state == "failed"
    [kept] = ephemeral_namespaces(local_stack)
    annotations = local_stack.core_v1().read_namespace(kept).metadata.annotations
    assert annotations["stackyard.io/ttl"] == "1d"
    local_stack.core_v1().delete_namespace(kept)


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"service": "nope", "chart_version": "1.0.0"}, "chart_version: nope 1.0.0 is not in the registry"),
        ({"service": "orders", "chart_version": "9.9.9"}, "chart_version: orders 9.9.9 is not in the registry"),
        ({"service": "orders", "chart_version": "1.0.0"}, "orders: L3 v1 already pins 1.0.0"),
    ],
)
def test_bad_requests_fail_in_validate_and_create_nothing(local_stack, dagbag, conf, message, capfd):
    seeded = local_stack.seed()

    state, tasks = run_dag(dagbag, "l3_gate", conf)

    assert state == "failed"
    assert tasks["validate"] == "failed"
    assert tasks["create_stack"] == "upstream_failed" and tasks["deploy"] == "upstream_failed"
    assert message in capfd.readouterr().out
    assert local_stack.store.latest() == seeded and local_stack.store.rejections() == []
    assert ephemeral_namespaces(local_stack) == []


@pytest.mark.parametrize(
    "conf, field",
    [
        ({"service": "Orders!", "chart_version": "1.0.0"}, "service"),
        ({"service": "orders", "chart_version": "1.x"}, "chart_version"),  # helm takes v1, not 1.x
        ({"service": "orders"}, "chart_version"),
    ],
)
def test_malformed_params_are_refused_before_any_task_runs(local_stack, dagbag, conf, field):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match=field):
        fresh_dag(dagbag, "l3_gate").test(run_conf=conf)
