"""A real Airflow API server for the tests that go through the REST API (``stackyard gate``).

One ``airflow standalone`` per test module that uses it (about 20–25 s to start), started by the same
:class:`dev.local.AirflowServer` as ``make up``, with its own AIRFLOW_HOME, the session's
kube sandbox, and a private stackyard state (registry, manifest store) that L3 v1 is seeded into.
Import the fixture into a test module: ``from tests.e2e.airflow_server import airflow_server``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from dev.local import AirflowServer, free_port
from stackyard.settings import Settings
from stackyard.adapters.manifest_store import open_manifest_store
from stackyard.adapters.chart_registry import open_registry
from stackyard.adapters.helm import Helm, HelmConfig

from tests.conftest import EXAMPLE_AGE_KEY
from tests.e2e.conftest import LocalStack


@dataclass
class ServedStack:
    server: AirflowServer
    stack: LocalStack

    def cli_env(self) -> dict[str, str]:
        """The environment CI gives ``stackyard gate``: the API and credentials, nothing else of ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STACKYARD_", "AIRFLOW"))}
        env.update(STACKYARD_API_URL=self.server.url, STACKYARD_API_USER=self.server.user,
                   STACKYARD_API_PASSWORD=self.server.password)
        return env


def served_stack(root: Path, sandbox, helm_bin: str, *, parallelism: int = 2,
                 extra_env: dict[str, str] | None = None) -> tuple[AirflowServer, LocalStack]:
    """An AirflowServer (not started) and its seeded stackyard state under ``root``."""
    home = root / "stackyard"
    kubeconfig = str(sandbox.kubeconfig_path)
    stack_env = {
        "STACKYARD_HOME": str(home),
        "STACKYARD_REGISTRY": f"dir://{home / 'registry'}",
        "STACKYARD_MANIFEST_STORE": f"file://{home / 'manifests'}",
        "STACKYARD_RECORD_STORE": f"file://{home / 'records'}",
        "KUBECONFIG": kubeconfig,
        "AIRFLOW_CONN_STACKYARD_KUBE": json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": kubeconfig}}),
        "AIRFLOW_CONN_STACKYARD_SOPS": json.dumps({"conn_type": "generic", "extra": {"age_key_file": str(EXAMPLE_AGE_KEY)}}),
        **(extra_env or {}),
    }
    settings = Settings.from_env({**os.environ, **stack_env})
    helm = Helm(HelmConfig(home=root / "helm", binary=helm_bin, kubeconfig=kubeconfig, base_env={"PATH": "/usr/bin:/bin"}))
    stack = LocalStack(
        settings, open_registry(settings.registry_url, cache_dir=settings.cache_dir, helm=helm),
        open_manifest_store(settings.manifest_store_url), helm, Path(kubeconfig), root,
    )
    stack.seed()
    server = AirflowServer(home=root / "airflow", env={**os.environ, **stack_env}, port=free_port(),
                           parallelism=parallelism)
    return server, stack


@pytest.fixture(scope="module")  # stopped after its module: ~750 MB not held through the rest of the suite
def airflow_server(tmp_path_factory, sandbox, helm_bin):
    server, stack = served_stack(tmp_path_factory.mktemp("served"), sandbox, helm_bin)
    with server:
        yield ServedStack(server, stack)
