"""A chart straight from `stackyard chart init` goes through the L3 gate on the kube sandbox:
its ephemeral profile decrypts, it deploys with the whole stack, its helm test passes, and it
becomes part of L3 — the contract holds as generated, with no edit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stackyard.steps.publishing import publish_chart

from tests.e2e.conftest import run_dag

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_a_generated_chart_passes_the_gate_as_a_new_service(local_stack, dagbag, tmp_path):
    init = subprocess.run([str(Path(sys.executable).with_name("stackyard")), "chart", "init", "shop-api",
                           "--dir", str(tmp_path)], capture_output=True, text=True, check=False)
    assert init.returncode == 0, init.stderr
    seeded = local_stack.seed()
    ref = publish_chart(tmp_path / "shop-api", registry=local_stack.registry, helm=local_stack.helm)

    state, tasks = run_dag(dagbag, "l3_gate", {"service": "shop-api", "chart_version": ref.version})

    assert state == "success", tasks
    assert tasks["system_tests"] == "success"
    latest = local_stack.store.latest()
    assert latest.version == seeded.version + 1
    assert latest.services["shop-api"].chart_version == "0.1.0"
    assert latest.services["shop-api"].digest == ref.digest
