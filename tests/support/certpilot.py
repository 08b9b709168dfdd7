"""The certpilot fixture chart (tests/fixtures/charts/certpilot), adapted to what the cluster
under test serves: a real API server takes all of it; the sandbox learns webhooks and ':' in
RBAC names on its branch ``sandbox``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "certpilot"
CERTS = "certificates.certpilot.example.com"
ISSUERS = "issuers.certpilot.example.com"


def colon_names_allowed(api_client: Any) -> bool:
    from kubernetes.client import RbacAuthorizationV1Api
    from kubernetes.client.exceptions import ApiException

    rbac = RbacAuthorizationV1Api(api_client)
    try:
        rbac.create_cluster_role({"metadata": {"name": "stackyard-probe:colon"}, "rules": []})
    except ApiException as exc:
        if exc.status in (409, 422):
            return exc.status == 409
        raise
    rbac.delete_cluster_role("stackyard-probe:colon")
    return True


def serves(api_client: Any, group: str) -> bool:
    from kubernetes.client import ApisApi

    return any(g.name == group for g in ApisApi(api_client).get_api_versions().groups)


def cluster_values(api_client: Any) -> dict[str, Any]:
    return {"webhook": {"enabled": serves(api_client, "admissionregistration.k8s.io")},
            "rbac": {"nameSeparator": ":" if colon_names_allowed(api_client) else "-"}}


def certpilot_source(dest: Path, api_client: Any, version: str = "1.0.0", **values: Any) -> Path:
    """A copy of the fixture at ``version`` whose defaults are ``values`` over what the cluster serves."""
    shutil.copytree(FIXTURE, dest, dirs_exist_ok=True)
    chart = yaml.safe_load((dest / "Chart.yaml").read_text()) | {"version": version}
    (dest / "Chart.yaml").write_text(yaml.safe_dump(chart))
    defaults = yaml.safe_load((dest / "values.yaml").read_text()) | cluster_values(api_client) | values
    (dest / "values.yaml").write_text(yaml.safe_dump(defaults))
    return dest
