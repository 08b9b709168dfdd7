"""The registry and the manifest store, opened with credentials from Airflow connections."""

from __future__ import annotations

import base64
from typing import Any

from stackyard.settings import Settings
from stackyard.adapters.gate_queue_store import GateQueueStore
from stackyard.adapters.manifest_store import ManifestStore, open_manifest_store
from stackyard.adapters.record_store import RecordStore, open_record_store
from stackyard.adapters.chart_registry import ChartRegistry, open_registry
from stackyard.adapters.helm import Helm
from stackyard.adapters.image_registry import ImageResolver, chained, ecr_credentials, static_credentials
from stackyard.core.images import parse_mirrors


def aws_client(aws_conn_id: str, service: str) -> Any:
    """A boto3 client for ``service`` from the AWS connection (its region and endpoint included)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service).get_conn()


def ecr_login(aws_conn_id: str):
    """A function giving (user, password) for an ECR host, from the AWS connection's identity."""

    def token(host: str) -> tuple[str, str]:
        account = host.split(".", 1)[0]
        data = aws_client(aws_conn_id, "ecr").get_authorization_token(registryIds=[account])
        user, password = base64.b64decode(data["authorizationData"][0]["authorizationToken"]).decode().split(":", 1)
        return user, password

    return token


def registry_for(settings: Settings, helm: Helm | None = None) -> ChartRegistry:
    options = {"ecr_token": ecr_login(settings.aws_conn_id)} if settings.registry_url.startswith("oci://") else {}
    return open_registry(settings.registry_url, cache_dir=settings.cache_dir, helm=helm, **options)


def record_store_for(settings: Settings) -> RecordStore:
    return open_record_store(settings.records_url, s3_client_factory=lambda: aws_client(settings.aws_conn_id, "s3"))


def manifest_store_for(settings: Settings) -> ManifestStore:
    return open_manifest_store(
        settings.manifest_store_url, s3_client_factory=lambda: aws_client(settings.aws_conn_id, "s3")
    )


def gate_queue_for(settings: Settings) -> GateQueueStore:
    """The gate queue's log, on the manifest store's backend."""
    return GateQueueStore(manifest_store_for(settings).backend)


def image_resolver_for(settings: Settings) -> ImageResolver:
    """Image digests with the credentials of the ``stackyard_images`` connection (extra
    ``{"registries": {host: {"username", "password"}}}``, or its host/login/password for one
    registry) and ECR tokens from the AWS connection; mirrors from ``STACKYARD_IMAGE_MIRRORS``."""
    return ImageResolver(
        credentials=chained(_connection_credentials(settings.image_registry_conn_id), ecr_credentials(ecr_login(settings.aws_conn_id))),
        mirrors=parse_mirrors(settings.image_mirrors), plain_http=settings.image_plain_http,
    )


def _connection_credentials(conn_id: str):
    cache: dict[str, object] = {}

    def lookup(host: str):
        if "provider" not in cache:
            from airflow.sdk import BaseHook

            try:
                conn = BaseHook.get_connection(conn_id)
            except Exception:  # not configured: anonymous pulls only
                cache["provider"] = lambda h: None
            else:
                registries = dict((conn.extra_dejson or {}).get("registries") or {})
                if conn.host and conn.login:
                    registries.setdefault(conn.host, {"username": conn.login, "password": conn.password or ""})
                cache["provider"] = static_credentials(registries)
        return cache["provider"](host)  # type: ignore[operator]

    return lookup
