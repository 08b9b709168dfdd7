"""Fixtures of the Stacks view tests: the e2e fixtures (sandbox, local_stack), Airflow's API app
with its auth manager, and the example secrets' plaintext (to prove it never reaches a response)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

import pytest
import yaml

from stackyard.core.secrets import secret_leaves

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY, EXAMPLE_SERVICES
from tests.e2e.conftest import dagbag, local_stack, sandbox  # noqa: F401 (fixtures)


@dataclass
class AirflowAPI:
    app: object

    def token(self, username: str = "viewer", role: str = "viewer") -> str:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))


@pytest.fixture(scope="session")
def airflow_api() -> AirflowAPI:
    """Airflow's own API app (plugins mounted, SimpleAuthManager initialised), in process."""
    from airflow.api_fastapi.app import create_app

    return AirflowAPI(create_app())


@pytest.fixture(scope="session")
def example_secrets(sops_bin) -> list[str]:
    """Every plaintext leaf of the example secrets the example key can decrypt (>= 5 chars)."""
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(EXAMPLE_AGE_KEY)}
    leaves = []
    for service in EXAMPLE_SERVICES:
        for profile in ("ephemeral", "qa1", "stage"):
            path = CHARTS / service / "profiles" / profile / "secrets.yaml"
            out = subprocess.run([sops_bin, "decrypt", str(path)], env=env, capture_output=True, check=True).stdout
            leaves += [value for _, value in secret_leaves(yaml.safe_load(out)) if len(value) >= 5]
    assert leaves, "the example secrets decrypted to nothing"
    return sorted(set(leaves))


def assert_no_secret(text: str, secrets: list[str]) -> None:
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"{len(leaked)} example secret value(s) appear in a response"


def dumps(value) -> str:
    return json.dumps(value)
