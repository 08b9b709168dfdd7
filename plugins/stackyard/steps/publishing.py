"""Publishing service charts and building umbrella packages: the seed's steps (b) and (c).

Used by the ``stackyard chart publish`` command that a service's CI runs, and by the L3 gate's
operators. Nothing here decrypts: a chart is checked and packaged with its secrets encrypted.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from stackyard.core.chart_contract import canary_users, check_canary, check_profiles, required_profiles
from stackyard.core.rollout import canary_release, canary_values
from stackyard.core.charts import PROFILES_DIR, Chart, contract_files, load_chart, load_chart_bytes
from stackyard.core.manifest import Manifest, ServicePin
from stackyard.core.stack_registry import Stack, load_registry
from stackyard.core.umbrella import UmbrellaTemplate, VendoredChart, build_umbrella, umbrella_version
from stackyard.exceptions import InputError, ToolError
from stackyard.adapters.chart_registry import ChartRef, ChartRegistry
from stackyard.adapters.helm import Helm
from stackyard.adapters.image_registry import ImageResolver
from stackyard.core.images import IMAGE_LOCK, ImageLock
from stackyard.steps.images import lock_images


def check_chart(chart_dir: str | Path, stacks: Iterable[Stack] = ()) -> Chart:
    """Refuse a chart that breaks the chart contract (docs/chart-contract.md) before anything is
    pushed: every problem at once, naming chart, file, profile and the stacks that need it."""
    chart_dir = Path(chart_dir)
    chart = load_chart(chart_dir)  # parses Chart.yaml, values.yaml and every profile's values
    check_contract(chart.name, contract_files(chart_dir), stacks)
    return chart


def check_contract(chart: str, files: Mapping[str, bytes], stacks: Iterable[Stack]) -> None:
    problems = check_profiles(chart, files, required_profiles(chart, stacks))
    if problems:
        raise InputError("the chart breaks the chart contract (docs/chart-contract.md):\n  " + "\n  ".join(problems))


def registry_stacks(stacks_file: Path) -> list[Stack]:
    """The valid stacks of the registry file (none if there is no file): who deploys what, with
    which profile. Invalid entries deploy nothing, so they ask for no profile."""
    if not stacks_file.is_file():
        return []
    return list(load_registry(stacks_file.read_text(), origin=str(stacks_file)).stacks.values())


def verify_chart(chart_dir: str | Path, *, helm: Helm, images: ImageResolver,
                 stacks: Iterable[Stack] = ()) -> tuple[Chart, ImageLock]:
    """Every check publish makes, nothing pushed: :func:`check_chart` (the contract, with the
    profiles ``stacks`` need), helm lint of the defaults and of every profile, then every image
    each profile deploys resolved to its digest (the lock publish puts in the package).
    ``stackyard chart check`` runs exactly this."""
    chart_dir = Path(chart_dir)
    chart = check_chart(chart_dir, stacks)
    for profile in (None, *chart.profiles):
        values = [chart_dir / PROFILES_DIR / profile / "values.yaml"] if profile else []
        try:
            helm.lint(chart_dir, values)
        except ToolError as exc:
            if exc.exit_code != 1:  # helm lint's "the chart has errors"; anything else is helm failing
                raise
            where = f"profile {profile}" if profile else "its defaults"
            raise InputError(f"{chart.name}: helm lint fails with {where}:\n{exc.output_tail}") from None
    check_canary_tracks(chart_dir, chart.name, helm, stacks)
    return chart, lock_images(chart_dir, chart, helm, images)


def check_canary_tracks(chart_dir: Path, chart: str, helm: Helm, stacks: Iterable[Stack]) -> None:
    """For a chart some stack deploys canary first: render it as the stable and as the canary release
    with each such stack's profile and check that it exposes a Service per track (the canary part
    of the contract, :func:`stackyard.core.chart_contract.check_canary`)."""
    stable_release, canary_name = chart, canary_release(chart)
    problems = []
    for profile, users in sorted(canary_users(chart, stacks).items()):
        values = [chart_dir / PROFILES_DIR / profile / "values.yaml"]
        values = [v for v in values if v.is_file()]
        stable = _documents(helm.template(stable_release, chart_dir, namespace="contract", values_files=values))
        canary = _documents(helm.template(canary_name, chart_dir, namespace="contract", values_files=values,
                                          values=canary_values(1)))
        problems += check_canary(chart, stable, canary, stable_release=stable_release, canary_release=canary_name,
                                 needed_by=", ".join(users))
    if problems:
        raise InputError("the chart breaks the chart contract (docs/chart-contract.md):\n  " + "\n  ".join(problems))


def _documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def publish_chart(chart_dir: str | Path, *, registry: ChartRegistry, helm: Helm, images: ImageResolver,
                  stacks: Iterable[Stack] = ()) -> ChartRef:
    """:func:`verify_chart` (with the profiles ``stacks`` need), then package with ``profiles/``
    and the image lock inside, and publish immutably. Nothing is pushed when a check fails or an
    image does not resolve."""
    chart_dir = Path(chart_dir)
    _, lock = verify_chart(chart_dir, helm=helm, images=images, stacks=stacks)
    with tempfile.TemporaryDirectory(prefix="stackyard-package-") as tmp:
        staged = Path(tmp) / chart_dir.name
        shutil.copytree(chart_dir, staged, symlinks=True)
        (staged / IMAGE_LOCK).write_text(lock.to_json())
        package = helm.package(staged, tmp)
        return registry.publish(package)


def pin_of(registry: ChartRegistry, ref: ChartRef) -> ServicePin:
    """What an L3 manifest pins for a published chart: version, package digest, and the image
    digests of the lock inside the package (none for charts published before image locks)."""
    chart = load_chart_bytes(registry.fetch(ref.name, ref.version).read_bytes(), str(ref))
    return ServicePin(ref.version, ref.digest, chart.images.digests() if chart.images else {})


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
