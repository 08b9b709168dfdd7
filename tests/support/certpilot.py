"""The certpilot fixture chart (tests/fixtures/charts/certpilot): CRDs in crds/ and as a
template, cluster-wide RBAC named "<release>-certpilot:controller", a validating webhook."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "certpilot"
CERTS = "certificates.certpilot.example.com"
ISSUERS = "issuers.certpilot.example.com"


def certpilot_source(dest: Path, version: str = "1.0.0", **values: Any) -> Path:
    """A copy of the fixture at ``version`` with ``values`` over its defaults."""
    shutil.copytree(FIXTURE, dest, dirs_exist_ok=True)
    chart = yaml.safe_load((dest / "Chart.yaml").read_text()) | {"version": version}
    (dest / "Chart.yaml").write_text(yaml.safe_dump(chart))
    defaults = yaml.safe_load((dest / "values.yaml").read_text()) | values
    (dest / "values.yaml").write_text(yaml.safe_dump(defaults))
    return dest
