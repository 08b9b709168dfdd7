"""The registry and the manifest store, opened with credentials from Airflow connections."""

from __future__ import annotations

import base64

from stackyard.settings import Settings
from stackyard.adapters.manifest_store import ManifestStore, open_manifest_store
from stackyard.adapters.record_store import RecordStore, open_record_store
from stackyard.adapters.chart_registry import ChartRegistry, open_registry
from stackyard.adapters.helm import Helm


def _aws_client(aws_conn_id: str, client_type: str):
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=aws_conn_id, client_type=client_type).get_conn()


def ecr_login(aws_conn_id: str):
    """A function giving (user, password) for an ECR host, from the AWS connection's identity."""

    def token(host: str) -> tuple[str, str]:
        account = host.split(".", 1)[0]
        data = _aws_client(aws_conn_id, "ecr").get_authorization_token(registryIds=[account])
        user, password = base64.b64decode(data["authorizationData"][0]["authorizationToken"]).decode().split(":", 1)
        return user, password

    return token


def registry_for(settings: Settings, helm: Helm | None = None) -> ChartRegistry:
    options = {"ecr_token": ecr_login(settings.aws_conn_id)} if settings.registry_url.startswith("oci://") else {}
    return open_registry(settings.registry_url, cache_dir=settings.cache_dir, helm=helm, **options)


def record_store_for(settings: Settings) -> RecordStore:
    return open_record_store(settings.records_url, s3_client_factory=lambda: _aws_client(settings.aws_conn_id, "s3"))


def manifest_store_for(settings: Settings) -> ManifestStore:
    return open_manifest_store(
        settings.manifest_store_url, s3_client_factory=lambda: _aws_client(settings.aws_conn_id, "s3")
    )
