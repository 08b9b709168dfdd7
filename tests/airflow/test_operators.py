"""Artifact operators with real helm and sops (``execute`` called directly: these need no DAG run)."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowFailException

from stackyard.exceptions import AccessDeniedError, InputError
from stackyard.airflow.operators.charts import SopsDecryptOperator

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY


@pytest.fixture
def stackyard_env(monkeypatch, tmp_path):
    monkeypatch.setenv("STACKYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STACKYARD_REGISTRY", f"dir://{tmp_path / 'registry'}")
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_SOPS", json.dumps({"conn_type": "generic", "extra": {"age_key_file": str(EXAMPLE_AGE_KEY)}}))
    return tmp_path


def test_decrypt_check_returns_a_digest_never_values(stackyard_env, sops_bin):
    result = SopsDecryptOperator(task_id="d", chart=str(CHARTS / "orders"), profile="qa1", aws_conn_id="").execute({})
    assert result == {"source": "orders/profiles/qa1/secrets.yaml", "values_digest": result["values_digest"]}
    assert result["values_digest"].startswith("sha256:")


def test_decrypt_check_of_production_fails_without_the_key_and_without_retries(stackyard_env, sops_bin):
    with pytest.raises(AirflowFailException, match="no access to key") as failed:
        SopsDecryptOperator(task_id="d", chart=str(CHARTS / "orders"), profile="production", aws_conn_id="").execute({})
    assert isinstance(failed.value.__cause__, AccessDeniedError)


def test_decrypt_check_of_an_unknown_profile_names_the_profiles(stackyard_env):
    with pytest.raises(AirflowFailException, match=r"no profile 'qa9' \(profiles: ephemeral, production, qa1, stage\)") as failed:
        SopsDecryptOperator(task_id="d", chart=str(CHARTS / "orders"), profile="qa9").execute({})
    assert isinstance(failed.value.__cause__, InputError)
