"""The gate re-checks the chart contract of the chart it takes (it may have been published by an
older stackyard, or straight into the registry): a missing profile and secrets encrypted to a key
the gate lacks fail once, in validate, before any stack exists."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import CHARTS, require_tool
from tests.e2e.conftest import fresh_dag, run_dag
from tests.e2e.test_l3_gate import ephemeral_namespaces

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def publish_unchecked(local_stack, source):
    """Straight into the registry, bypassing `stackyard chart publish` (as an older stackyard did)."""
    package = local_stack.helm.package(source, local_stack.tmp / "packages")
    return local_stack.registry.publish(package)


def variant(local_stack, version):
    dest = local_stack.tmp / "variants" / f"orders-{version}"
    shutil.copytree(CHARTS / "orders", dest)
    chart = dest / "Chart.yaml"
    chart.write_text(chart.read_text().replace("version: 1.0.0", f"version: {version}"))
    return dest


def assert_refused_in_validate(local_stack, dagbag, capfd, conf, *messages):
    seeded = local_stack.store.latest()
    run = fresh_dag(dagbag, "l3_gate").test(run_conf=conf)
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    tasks = {task_id: ti.state for task_id, ti in tis.items()}
    assert run.state == "failed" and tasks["validate"] == "failed"
    assert tis["validate"].try_number == 1  # refused once: validate is not retried
    assert tasks["create_stack"] == "upstream_failed" and tasks["deploy"] == "upstream_failed"
    out = capfd.readouterr().out
    for message in messages:
        assert message in out
    assert local_stack.store.latest() == seeded and ephemeral_namespaces(local_stack) == []


def test_a_chart_without_a_profile_a_stack_deploys_it_with_is_refused(local_stack, dagbag, capfd):
    local_stack.seed()
    source = variant(local_stack, "1.1.0")
    shutil.rmtree(source / "profiles" / "qa1")
    publish_unchecked(local_stack, source)
    assert_refused_in_validate(
        local_stack, dagbag, capfd, {"service": "orders", "chart_version": "1.1.0"},
        "chart orders: no profile 'qa1' (profiles/qa1/values.yaml), needed by stack qa1, stack qa2")


def test_secrets_for_a_key_the_gate_lacks_fail_once_at_validate(local_stack, dagbag, capfd, sops_bin, tmp_path):
    local_stack.seed()
    keygen = require_tool("age-keygen")
    key = tmp_path / "stranger.key"
    subprocess.run([keygen, "-o", str(key)], check=True, capture_output=True)
    recipient = next(line.split(": ")[1] for line in key.read_text().splitlines() if "public key" in line)
    source = variant(local_stack, "1.2.0")
    config = source / ".sops.yaml"
    config.write_text(config.read_text().replace(
        "profiles/ephemeral/secrets\\.yaml$\n    age: age1pf8gevf3t48205gpyhvqkmcw0wggrne9a7ay7had6gzqngsvfgks026xcz",
        f"profiles/ephemeral/secrets\\.yaml$\n    age: {recipient}"))
    secrets = source / "profiles" / "ephemeral" / "secrets.yaml"
    secrets.write_text("secrets:\n  DATABASE_PASSWORD: only-the-stranger-knows\n")
    subprocess.run([sops_bin, "encrypt", "-i", str(secrets)], check=True, cwd=source, capture_output=True)
    publish_unchecked(local_stack, source)
    assert_refused_in_validate(
        local_stack, dagbag, capfd, {"service": "orders", "chart_version": "1.2.0"},
        "orders 1.2.0: the gate cannot decrypt orders/profiles/ephemeral/secrets.yaml with the keys it has")
