"""Artifact operators with real helm and sops (``execute`` called directly: these need no DAG run)."""

from __future__ import annotations

import json

import pytest

from stackyard.exceptions import AccessDeniedError, InputError
from stackyard.airflow.operators.charts import ChartPackageOperator, ChartPublishOperator, SopsDecryptOperator

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY


@pytest.fixture
def stackyard_env(monkeypatch, tmp_path):
    monkeypatch.setenv("STACKYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STACKYARD_REGISTRY", f"dir://{tmp_path / 'registry'}")
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_SOPS", json.dumps({"conn_type": "generic", "extra": {"age_key_file": str(EXAMPLE_AGE_KEY)}}))
    return tmp_path


def test_package_returns_path_and_digest(stackyard_env, helm_bin):
    result = ChartPackageOperator(task_id="p", chart_dir=str(CHARTS / "orders"), destination=str(stackyard_env / "out")).execute({})
    assert result["path"].endswith("orders-1.0.0.tgz") and result["digest"].startswith("sha256:")


def test_publish_is_idempotent(stackyard_env, helm_bin):
    op = ChartPublishOperator(task_id="p", chart_dir=str(CHARTS / "orders"))
    assert op.execute({}) == op.execute({})
    assert (stackyard_env / "registry" / "orders" / "orders-1.0.0.tgz").is_file()


def test_decrypt_check_returns_a_digest_never_values(stackyard_env, sops_bin):
    result = SopsDecryptOperator(task_id="d", chart=str(CHARTS / "orders"), profile="qa1", aws_conn_id="").execute({})
    assert result == {"source": "orders/profiles/qa1/secrets.yaml", "values_digest": result["values_digest"]}
    assert result["values_digest"].startswith("sha256:")


def test_decrypt_check_of_production_fails_without_the_key(stackyard_env, sops_bin):
    with pytest.raises(AccessDeniedError, match="no access to key"):
        SopsDecryptOperator(task_id="d", chart=str(CHARTS / "orders"), profile="production", aws_conn_id="").execute({})


def test_decrypt_check_of_an_unknown_profile_names_the_profiles(stackyard_env):
    with pytest.raises(InputError, match=r"no profile 'qa9' \(profiles: ephemeral, production, qa1, stage\)"):
        SopsDecryptOperator(task_id="d", chart=str(CHARTS / "orders"), profile="qa9").execute({})
