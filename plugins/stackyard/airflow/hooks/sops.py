"""SopsHook: decrypts profile secrets in memory, with keys from Airflow connections.

- age: the SOPS connection's password holds an age identity, or its extra ``age_key_file``
  names a file with one.
- AWS KMS: credentials, region and endpoint of the AWS connection, passed to sops as env. They
  are resolved only for files whose SOPS metadata names a KMS key, so age-only set-ups never
  wait on the AWS credential chain.

Every decrypted leaf is registered with stackyard's redactor and Airflow's masker before the
values are returned; secrets shorter than Airflow can mask are refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import BaseHook

from stackyard.core.charts import Profile
from stackyard.core.secrets import MIN_SECRET_LENGTH, SECRETS, secret_leaves
from stackyard.exceptions import InputError
from stackyard.adapters.runner import ToolRunner
from stackyard.adapters.sops import Sops, SopsConfig


class SopsHook(BaseHook):
    conn_name_attr = "sops_conn_id"
    default_conn_name = "stackyard_sops"
    conn_type = "generic"
    hook_name = "SOPS (stackyard)"

    def __init__(
        self,
        sops_conn_id: str | None = default_conn_name,
        aws_conn_id: str | None = "aws_default",
        *,
        binary: str | None = None,
    ) -> None:
        super().__init__()
        self.sops_conn_id = sops_conn_id
        self.aws_conn_id = aws_conn_id
        self.binary = binary or shutil.which("sops") or "sops"
        self.runner = ToolRunner(log=self.log)

    @cached_property
    def _identity(self) -> tuple[str | None, str | None]:
        """(age key file, age key) from the SOPS connection; (None, None) without one."""
        if not self.sops_conn_id:
            return None, None
        conn = self.get_connection(self.sops_conn_id)
        return conn.extra_dejson.get("age_key_file"), conn.password or None

    def _aws_env(self) -> dict[str, str]:
        if not self.aws_conn_id:
            return {}
        from stackyard.airflow.hooks.aws import aws_credentials_env

        # sops reads the generic endpoint variable (verified against moto_server)
        return aws_credentials_env(self.aws_conn_id, "kms", "AWS_ENDPOINT_URL")

    @contextmanager
    def sops(self, *, needs_aws: bool = False) -> Iterator[Sops]:
        home = Path(tempfile.mkdtemp(prefix="stackyard-sops-"))
        try:
            key_file, key = self._identity
            config = SopsConfig(
                home=home, binary=self.binary, age_key_file=key_file, age_key=key,
                aws_env=self._aws_env() if needs_aws else {}, base_env=os.environ,
            )
            yield Sops(config, self.runner)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def decrypt_profile(self, profile: Profile) -> dict[str, Any]:
        """The profile's decrypted secrets; {} when it has none."""
        if profile.secrets is None:
            return {}
        with self.sops(needs_aws=_names_kms_key(profile.secrets)) as sops:
            values = sops.decrypt(profile.secrets, source=profile.secrets_source)
        register_secrets(values, source=profile.secrets_source)
        return values

    def kill(self) -> None:
        self.runner.kill()


def register_secrets(values: Mapping[str, Any], *, source: str) -> None:
    """Teach both redactors every leaf; refuse leaves too short to be masked anywhere."""
    from airflow.sdk.log import mask_secret

    leaves = secret_leaves(values)
    short = [path for path, leaf in leaves if len(leaf) < MIN_SECRET_LENGTH]
    if short:
        raise InputError(
            f"{source}: secret values shorter than {MIN_SECRET_LENGTH} characters cannot be masked in logs "
            f"({', '.join(short)}); move non-secret settings to values.yaml"
        )
    SECRETS.add(leaf for _, leaf in leaves)
    for _, leaf in leaves:
        mask_secret(leaf)


def _names_kms_key(encrypted: bytes) -> bool:
    try:
        meta = (yaml.safe_load(encrypted) or {}).get("sops") or {}
    except (yaml.YAMLError, AttributeError):
        return False
    return bool(meta.get("kms"))
