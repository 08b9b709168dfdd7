"""Publishing service charts and building umbrella packages: the seed's steps (b) and (c).

Used by the ``stackyard chart publish`` command that a service's CI runs, and by the L3 gate's
operators. Nothing here decrypts: a chart is checked and packaged with its secrets encrypted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from stackyard.core.charts import PROFILE_SECRETS, PROFILES_DIR, Chart, load_chart
from stackyard.core.manifest import Manifest
from stackyard.core.secrets import is_sops_encrypted
from stackyard.core.umbrella import UmbrellaTemplate, VendoredChart, build_umbrella, umbrella_version
from stackyard.exceptions import InputError, ToolError
from stackyard.adapters.chart_registry import ChartRef, ChartRegistry
from stackyard.adapters.helm import Helm


def check_chart(chart_dir: str | Path) -> Chart:
    """Refuse a chart whose profiles would publish something wrong, before anything is pushed."""
    chart_dir = Path(chart_dir)
    chart = load_chart(chart_dir)  # parses Chart.yaml, values.yaml and every profile's values
    for profile in chart.profiles.values():
        if profile.secrets is not None and not is_sops_encrypted(profile.secrets):
            raise InputError(
                f"{profile.secrets_source} is not SOPS-encrypted; refusing to publish plaintext secrets "
                f"(encrypt it with `sops encrypt -i {PROFILES_DIR}/{profile.name}/{PROFILE_SECRETS}`)"
            )
    if any(p.secrets is not None for p in chart.profiles.values()) and not (chart_dir / ".sops.yaml").is_file():
        raise InputError(f"{chart.name}: profiles carry secrets but the chart has no .sops.yaml")
    return chart


def verify_chart(chart_dir: str | Path, *, helm: Helm) -> Chart:
    """Every check publish makes, nothing pushed: :func:`check_chart`, then helm lint of the
    defaults and of every profile (``stackyard chart check`` runs exactly this)."""
    chart_dir = Path(chart_dir)
    chart = check_chart(chart_dir)
    for profile in (None, *chart.profiles):
        values = [chart_dir / PROFILES_DIR / profile / "values.yaml"] if profile else []
        try:
            helm.lint(chart_dir, values)
        except ToolError as exc:
            if exc.exit_code != 1:  # helm lint's "the chart has errors"; anything else is helm failing
                raise
            where = f"profile {profile}" if profile else "its defaults"
            raise InputError(f"{chart.name}: helm lint fails with {where}:\n{exc.output_tail}") from None
    return chart


def publish_chart(chart_dir: str | Path, *, registry: ChartRegistry, helm: Helm) -> ChartRef:
    """:func:`verify_chart`, then package with ``profiles/`` inside and publish immutably."""
    chart_dir = Path(chart_dir)
    verify_chart(chart_dir, helm=helm)
    with tempfile.TemporaryDirectory(prefix="stackyard-package-") as tmp:
        package = helm.package(chart_dir, tmp)
        return registry.publish(package)


def load_umbrella_template(template_dir: str | Path) -> UmbrellaTemplate:
    template_dir = Path(template_dir)
    chart_yaml = template_dir / "Chart.yaml"
    if not chart_yaml.is_file():
        raise InputError(f"umbrella template {template_dir} has no Chart.yaml")
    files = {
        str(p.relative_to(template_dir)): p.read_bytes()
        for p in sorted(template_dir.rglob("*"))
        if p.is_file() and p.name != "Chart.yaml"
    }
    return UmbrellaTemplate(chart_fields=yaml.safe_load(chart_yaml.read_bytes()) or {}, files=files)


def build_manifest_package(
    manifest: Manifest, *, registry: ChartRegistry, template: UmbrellaTemplate, candidate: bool = False
) -> tuple[str, bytes]:
    """(umbrella version, package bytes) for ``manifest``, every chart taken from ``registry``.

    A pinned digest that does not match what the registry serves stops the build: artifacts are
    immutable, so a mismatch means the registry was tampered with or the pin is wrong.
    """
    charts = []
    for name, pin in sorted(manifest.services.items()):
        ref = registry.resolve(name, pin.chart_version)
        if pin.digest and pin.digest != ref.digest:
            raise InputError(
                f"{name} {pin.chart_version}: the registry serves {ref.digest} but L3 v{manifest.version} "
                f"pins {pin.digest}; published artifacts must not change"
            )
        charts.append(VendoredChart(name, pin.chart_version, registry.cache.blob(ref.digest).read_bytes()))
    version = umbrella_version(manifest.version, manifest.candidate_id if candidate else None)
    return version, build_umbrella(template, version, charts)
