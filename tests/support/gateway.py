"""The Gateway API's HTTPRoute CRD installed on a cluster (the kube sandbox), as a cluster with the
Gateway API has it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

CRD = Path(__file__).resolve().parents[1] / "fixtures" / "gateway-httproute-crd.yaml"
G, V, P = "gateway.networking.k8s.io", "v1", "httproutes"


def install_httproute_crd(api_client) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    extensions = client.ApiextensionsV1Api(api_client)
    try:
        extensions.create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
    except ApiException as exc:
        if exc.status != 409:  # already there (another test installed it)
            raise
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a real apiserver establishes a CRD asynchronously too
        crd = extensions.read_custom_resource_definition("httproutes.gateway.networking.k8s.io")
        if any(c.type == "Established" and c.status == "True" for c in ((crd.status and crd.status.conditions) or [])):
            return
        time.sleep(0.05)
    pytest.fail("the HTTPRoute CRD never became Established")


def backend_weights(api_client, namespace: str, route: str) -> list[list[tuple[str, int | None]]]:
    """Per rule, the route's backendRefs as (Service, weight)."""
    from kubernetes.client import CustomObjectsApi

    body = CustomObjectsApi(api_client).get_namespaced_custom_object(G, V, namespace, P, route)
    return [[(r["name"], r.get("weight")) for r in rule["backendRefs"]] for rule in body["spec"]["rules"]]


@contextlib.contextmanager
def sandbox_with_httproutes() -> Iterator[object]:
    """A kube sandbox with the HTTPRoute CRD installed; yields a kubernetes ApiClient for it."""
    from kubernetes import config

    from kube_sandbox import Sandbox

    with Sandbox(ready_delay=0) as sandbox:
        api_client = config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
        install_httproute_crd(api_client)
        yield api_client
