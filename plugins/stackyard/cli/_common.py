"""What the command groups share: helm for terminal use, the registry, printing manifests."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stackyard.core.manifest import Manifest
from stackyard.settings import Settings
from stackyard.adapters.chart_registry import ChartRegistry, open_registry
from stackyard.adapters.helm import Helm, HelmConfig
from stackyard.adapters.image_registry import ImageResolver, chained, docker_config_credentials, ecr_credentials
from stackyard.adapters.runner import ToolRunner
from stackyard.core.images import parse_mirrors


@contextmanager
def cli_helm(settings: Settings) -> Iterator[Helm]:
    """helm for terminal use: the caller's KUBECONFIG, a private helm home, output to stderr."""
    with tempfile.TemporaryDirectory(prefix="stackyard-helm-") as home:
        config = HelmConfig(
            home=Path(home), kubeconfig=os.environ.get("KUBECONFIG"),
            plain_http=settings.registry_plain_http, base_env=os.environ,
        )
        yield Helm(config, ToolRunner(log=logging.getLogger("stackyard.helm")))


def registry_for_cli(settings: Settings, helm: Helm, url: str | None = None) -> ChartRegistry:
    return open_registry(url or settings.registry_url, cache_dir=settings.cache_dir, helm=helm)


def image_resolver_for_cli(settings: Settings) -> ImageResolver:
    """Image digests as CI sees registries: ``docker login``'s credentials, ECR tokens from the
    caller's AWS identity (boto3's default chain), mirrors from ``STACKYARD_IMAGE_MIRRORS``."""
    return ImageResolver(
        credentials=chained(docker_config_credentials(), ecr_credentials(_ecr_token)),
        mirrors=parse_mirrors(settings.image_mirrors), plain_http=settings.image_plain_http,
    )


def _ecr_token(host: str) -> tuple[str, str]:
    import base64

    import boto3

    region = host.split(".")[3]
    data = boto3.client("ecr", region_name=region).get_authorization_token(registryIds=[host.split(".", 1)[0]])
    user, password = base64.b64decode(data["authorizationData"][0]["authorizationToken"]).decode().split(":", 1)
    return user, password


def print_manifest(manifest: Manifest, *, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(manifest.to_dict(), indent=2))
        return
    change = f", change: {manifest.change}" if manifest.change else ""
    parent = f", parent v{manifest.parent}" if manifest.parent else ""
    print(f"L3 manifest v{manifest.version} ({manifest.created:%Y-%m-%d %H:%M:%S}Z{parent}{change})")
    width = max((len(name) for name in manifest.services), default=0)
    for name, pin in manifest.services.items():
        print(f"  {name:<{width}}  {pin.chart_version:<12} {pin.digest or ''}")
        for reference, digest in pin.images.items():
            print(f"  {'':<{width}}    image {reference} {digest}")
