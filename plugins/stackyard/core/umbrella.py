"""The umbrella chart: an L3 manifest as one installable Helm package.

Every pinned service chart is vendored into ``charts/`` (no network at install time), and
the package is built in memory with fixed metadata so the same manifest always gives the same
bytes: a candidate's digest is a fact about its content, not about when it was built.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml


UMBRELLA_NAME = "l3"
_FIXED_MTIME = 0  # reproducible builds: tar and gzip carry no build time


@dataclass(frozen=True)
class UmbrellaTemplate:
    """The umbrella's own files (``include/umbrella/``): Chart.yaml fields and extra files."""

    chart_fields: Mapping[str, Any]
    files: Mapping[str, bytes]


@dataclass(frozen=True)
class VendoredChart:
    name: str
    version: str
    data: bytes  # the packaged service chart, as published


def umbrella_version(manifest_version: int, candidate_id: str | None = None) -> str:
    """``N.0.0`` for L3 manifest N; ``N.0.0-candidate-<id>`` while it is only a candidate."""
    base = f"{manifest_version}.0.0"
    return f"{base}-candidate-{candidate_id[:12]}" if candidate_id else base


def build_umbrella(
    template: UmbrellaTemplate, version: str, charts: list[VendoredChart], name: str = UMBRELLA_NAME
) -> bytes:
    """A packaged umbrella chart (gzipped tar bytes) pinning exactly ``charts``."""
    ordered = sorted(charts, key=lambda c: c.name)
    chart_yaml = {
        "apiVersion": "v2",
        **{k: v for k, v in template.chart_fields.items() if k not in ("name", "version", "dependencies")},
        "name": name,
        "version": version,
        "dependencies": [{"name": c.name, "version": c.version} for c in ordered],
    }
    files: dict[str, bytes] = {k: v for k, v in template.files.items() if k != "Chart.yaml"}
    files["Chart.yaml"] = yaml.safe_dump(chart_yaml, sort_keys=False).encode()
    files.setdefault("values.yaml", b"{}\n")
    for chart in ordered:
        files[f"charts/{chart.name}-{chart.version}.tgz"] = chart.data

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            data = files[path]
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size, info.mtime, info.mode = len(data), _FIXED_MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=_FIXED_MTIME, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()
