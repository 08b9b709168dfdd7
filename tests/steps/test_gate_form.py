"""The gate form's proposals: from the registry's folder or the cache index, cached by mtimes,
bounded by a deadline, never an enum."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from stackyard.adapters import chart_registry
from stackyard.adapters.chart_registry import ChartCache
from stackyard.steps import gate_form
from stackyard.steps.gate_form import CACHE_NAME, gate_form_choices

from tests.conftest import ROOT


def publish_files(root: Path, name: str, *versions: str) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    for version in versions:
        (root / name / f"{name}-{version}.tgz").write_bytes(b"not read")


@pytest.fixture
def registry(tmp_path) -> Path:
    root = tmp_path / "registry"
    publish_files(root, "orders", "1.0.0", "1.10.0", "1.2.0")
    publish_files(root, "catalog", "2.0.0-rc.1", "1.0.0")
    publish_files(root, "l3", "3.0.0", "4.0.0-candidate-abc")  # the umbrella shares the registry
    (root / "orders" / "notes.txt").write_text("ignored")
    return root


def choices(registry_url: str, tmp_path: Path, **kw):
    return gate_form_choices(registry_url, tmp_path / "cache" / "charts", tmp_path / "state", **kw)


def test_services_and_versions_newest_first_without_the_umbrella(registry, tmp_path):
    found = choices(f"dir://{registry}", tmp_path)
    assert found.services == ["catalog", "orders"]
    assert found.versions == ["2.0.0-rc.1", "1.10.0", "1.2.0", "1.0.0"]  # semver order, not text order
    assert found.latest == {"catalog": "2.0.0-rc.1", "orders": "1.10.0"}
    assert found.summary() == "Published (newest of each): catalog 2.0.0-rc.1, orders 1.10.0."


def test_an_oci_registry_is_read_from_the_local_cache_index_never_the_network(tmp_path):
    url = "oci://registry.example.invalid:5000/charts"
    cache = ChartCache(tmp_path / "cache" / "charts")
    cache.remember(url, "orders", "1.4.2", "sha256:" + "0" * 64)
    cache.remember("oci://other.example/charts", "catalog", "9.9.9", "sha256:" + "1" * 64)
    found = choices(url, tmp_path)
    assert found.services == ["orders"] and found.versions == ["1.4.2"]


def test_nothing_published_gives_no_proposals(tmp_path):
    found = choices(f"dir://{tmp_path / 'nowhere'}", tmp_path)
    assert (found.services, found.versions, found.summary()) == ([], [], "")


def test_the_cache_is_used_until_a_version_is_added(registry, tmp_path, monkeypatch):
    calls = []
    real = chart_registry.list_published
    monkeypatch.setattr(gate_form, "list_published", lambda *a: calls.append(1) or real(*a))
    choices(f"dir://{registry}", tmp_path)
    choices(f"dir://{registry}", tmp_path)
    assert len(calls) == 1
    assert json.loads((tmp_path / "state" / CACHE_NAME).read_text())["index"]["orders"][0] == "1.10.0"
    time.sleep(0.01)
    publish_files(registry, "orders", "1.11.0")
    assert choices(f"dir://{registry}", tmp_path).versions[1] == "1.11.0"
    publish_files(registry, "payments", "0.1.0")
    assert "payments" in choices(f"dir://{registry}", tmp_path).services
    assert len(calls) == 3


def test_a_slow_file_system_gives_no_proposals_within_the_deadline(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(gate_form, "list_published", lambda *a: time.sleep(2) or {})
    started = time.monotonic()
    found = choices(f"dir://{registry}", tmp_path, timeout=0.1)
    assert time.monotonic() - started < 0.5
    assert found.services == [] and found.versions == []


def test_the_form_proposes_but_any_value_is_still_accepted(registry, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("STACKYARD_REGISTRY", f"dir://{registry}")
    monkeypatch.setenv("STACKYARD_HOME", str(tmp_path / "home"))
    dag = DagBag(dag_folder=str(ROOT / "dags" / "l3_gate.py")).get_dag("l3_gate")
    service, version = dag.params.get_param("service"), dag.params.get_param("chart_version")
    assert service.schema["examples"] == ["catalog", "orders"]
    assert version.schema["examples"][:2] == ["2.0.0-rc.1", "1.10.0"]
    assert "enum" not in service.schema and "enum" not in version.schema
    assert "orders 1.10.0" in version.description
    # Not proposed, still a valid request (validate then refuses what the registry lacks, clearly).
    assert service.resolve("payments") == "payments" and version.resolve("7.0.0") == "7.0.0"
