"""End-to-end fixtures: a kube sandbox, private stackyard state, published charts and DAG runs.

Every test gets its own registry and manifest store (under tmp_path) and points the Airflow
connections at the session's sandbox through ``AIRFLOW_CONN_*`` variables, so DAG runs through
``dag.test()`` use the real operators, helm and sops against it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dev.demo import SANDBOX_RULES, chart_variant
from stackyard.core.manifest import Manifest, Provenance
from stackyard.steps.publishing import pin_of, publish_chart
from stackyard.adapters.image_registry import ImageResolver
from stackyard.settings import Settings
from stackyard.adapters.manifest_store import ManifestStore, open_manifest_store
from stackyard.adapters.chart_registry import ChartRef, ChartRegistry, open_registry
from stackyard.adapters.helm import Helm, HelmConfig

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY, EXAMPLE_SERVICES, ROOT


@dataclass
class RealCluster:
    """`make test-cluster`: the cluster KUBECONFIG names stands where the sandbox would."""

    kubeconfig_path: Path


@pytest.fixture(scope="session")
def sandbox(image_mirror):
    """A kube sandbox for the session, or the real cluster under `make test-cluster`.

    Tests marked ``cluster`` use only what a real cluster offers; the others may use the
    sandbox's fault injection and run only on the sandbox. Pods report the image mirror's
    digest of their tags as ``imageID``, as a runtime pulling through it would.
    """
    if os.environ.get("STACKYARD_TEST_CLUSTER"):
        yield RealCluster(Path(os.environ["KUBECONFIG"]))
        return
    from dev.image_mirror import pulled_digest
    from kube_sandbox import Sandbox

    with Sandbox(ready_delay=0.05, rules=str(SANDBOX_RULES), image_digest=pulled_digest(image_mirror)) as sb:
        yield sb


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag


@dataclass
class LocalStack:
    """One test's stackyard: settings, registry, manifest store, and a helm for checks."""

    settings: Settings
    registry: ChartRegistry
    store: ManifestStore
    helm: Helm
    kubeconfig: Path
    tmp: Path
    images: ImageResolver

    def publish(self, service: str, version: str | None = None, *, failing_test: bool = False) -> ChartRef:
        source = CHARTS / service
        if version:
            source = chart_variant(source, self.tmp / "variants" / f"{service}-{version}", version=version,
                                   failing_test=failing_test)
        return publish_chart(source, registry=self.registry, helm=self.helm, images=self.images)

    def seed(self) -> Manifest:
        pins = {}
        for service in EXAMPLE_SERVICES:
            pins[service] = pin_of(self.registry, self.publish(service))
        return self.store.seed(Manifest.initial(pins, datetime.now(timezone.utc), Provenance(None, "tests", None)))

    def core_v1(self):
        from kubernetes import client, config

        return client.CoreV1Api(config.new_client_from_config(config_file=str(self.kubeconfig)))


@pytest.fixture
def local_stack(tmp_path, monkeypatch, sandbox, helm_bin, images) -> LocalStack:
    home = tmp_path / "stackyard"
    kubeconfig = str(sandbox.kubeconfig_path)
    env = {
        "STACKYARD_HOME": str(home),
        "STACKYARD_REGISTRY": f"dir://{home / 'registry'}",
        "STACKYARD_MANIFEST_STORE": f"file://{home / 'manifests'}",
        "STACKYARD_RECORD_STORE": f"file://{home / 'records'}",
        "KUBECONFIG": kubeconfig,
        "AIRFLOW_CONN_STACKYARD_KUBE": json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": kubeconfig}}),
        "AIRFLOW_CONN_STACKYARD_SOPS": json.dumps({"conn_type": "generic", "extra": {"age_key_file": str(EXAMPLE_AGE_KEY)}}),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    helm = Helm(HelmConfig(home=tmp_path / "helm", binary=helm_bin, kubeconfig=kubeconfig, base_env={"PATH": "/usr/bin:/bin"}))
    registry = open_registry(settings.registry_url, cache_dir=settings.cache_dir, helm=helm)
    return LocalStack(settings, registry, open_manifest_store(settings.manifest_store_url), helm, Path(kubeconfig), tmp_path,
                      images)


def fresh_dag(dagbag, dag_id: str):
    """The DAG parsed anew: ``dag.test()`` writes a run's conf into the DAG object's params, so
    reusing one object would hand one test's parameters to the next as defaults."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=dagbag.get_dag(dag_id).fileloc).get_dag(dag_id)


def run_dag(dagbag, dag_id: str, conf: dict):
    """Run a DAG in-process with real operators; returns (state, {task_id: state})."""
    run = fresh_dag(dagbag, dag_id).test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    return run.state, states
