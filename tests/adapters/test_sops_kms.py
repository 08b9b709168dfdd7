"""sops with AWS KMS, through the SopsHook and an Airflow AWS connection, against moto_server."""

from __future__ import annotations

import json

import boto3
import pytest

from stackyard.core.charts import Profile
from stackyard.exceptions import AccessDeniedError
from stackyard.airflow.hooks.sops import SopsHook
from stackyard.adapters.sops import Sops, SopsConfig

from tests.support.moto import FAKE_CREDENTIALS, local_moto_server


@pytest.fixture
def kms_key(moto_endpoint):
    return boto3.client("kms", endpoint_url=moto_endpoint, **FAKE_CREDENTIALS).create_key()["KeyMetadata"]["Arn"]


def encrypt_with_kms(tmp_path, sops_bin, moto_endpoint, arn, plaintext: bytes) -> bytes:
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": moto_endpoint}
    sops = Sops(SopsConfig(home=tmp_path, binary=sops_bin, aws_env=env, base_env={"PATH": "/usr/bin:/bin"}))
    return sops.encrypt(plaintext, recipients_args=["--kms", arn], source="kms test")


def test_kms_encrypted_profile_decrypts_with_the_aws_connection(tmp_path, sops_bin, moto_endpoint, kms_key, aws_connection):
    encrypted = encrypt_with_kms(tmp_path, sops_bin, moto_endpoint, kms_key, b"secrets:\n  TOKEN: kms-protected-value\n")
    assert b"kms-protected-value" not in encrypted and kms_key.encode() in encrypted
    profile = Profile(name="production", values={}, secrets=encrypted, chart="orders")
    values = SopsHook(sops_conn_id=None, aws_conn_id=aws_connection).decrypt_profile(profile)
    assert values == {"secrets": {"TOKEN": "kms-protected-value"}}


def test_a_key_the_connection_cannot_use_is_access_denied(tmp_path, sops_bin, moto_endpoint, kms_key, monkeypatch):
    encrypted = encrypt_with_kms(tmp_path, sops_bin, moto_endpoint, kms_key, b"secrets:\n  TOKEN: kms-protected-value\n")
    profile = Profile(name="production", values={}, secrets=encrypted, chart="orders")
    with local_moto_server() as other_account:  # a KMS where that key does not exist for us
        monkeypatch.setenv("AIRFLOW_CONN_AWS_OTHER", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"region_name": "us-east-1", "endpoint_url": other_account},
        }))
        with pytest.raises(AccessDeniedError, match=f"orders/profiles/production/secrets.yaml: no access to key {kms_key}"):
            SopsHook(sops_conn_id=None, aws_conn_id="aws_other").decrypt_profile(profile)
