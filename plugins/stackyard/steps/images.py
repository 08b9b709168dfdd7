"""The images a chart deploys, resolved to digests: at publish (the lock inside the package) and
before a deploy (nothing changes if a pinned tag now points elsewhere).

Rendering needs no key: each profile is rendered with its values and its secrets' *structure*
(every encrypted value replaced by a placeholder), so CI can lock images without KMS access.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import yaml

from stackyard.adapters.helm import Helm
from stackyard.adapters.image_registry import ImageResolver, Resolved
from stackyard.core.charts import Chart, load_chart_bytes, vendored_charts
from stackyard.core.images import (
    ChartDigests, DeployedImage, ImageLock, ImagePin, Moved, images_in, moved, placeholder_secrets,
)
from stackyard.exceptions import AccessDeniedError, InputError, NotFoundError, ToolError, UnavailableError

#: The profile name under which the chart's own defaults (no profile) are locked.
DEFAULTS = "_defaults"


def rendered_images(chart_dir: Path, chart: Chart, helm: Helm) -> dict[str, list[DeployedImage]]:
    """Per profile (and the defaults), every image the rendered chart deploys, hooks included."""
    found: dict[str, list[DeployedImage]] = {}
    with tempfile.TemporaryDirectory(prefix="stackyard-imagescan-") as tmp:
        for name in [DEFAULTS, *sorted(chart.profiles)]:
            files: list[Path] = []
            if name != DEFAULTS:
                profile = chart.profiles[name]
                values = Path(tmp) / f"{name}-values.json"
                values.write_text(json.dumps(dict(profile.values)))
                files.append(values)
                if profile.secrets is not None:
                    shape = Path(tmp) / f"{name}-secrets-shape.json"
                    shape.write_text(json.dumps(placeholder_secrets(yaml.safe_load(profile.secrets) or {})))
                    files.append(shape)
            try:
                manifest = helm.template(chart.name, chart_dir, namespace="stackyard-image-scan", values_files=files)
            except ToolError as exc:
                where = "its defaults" if name == DEFAULTS else f"profile {name}"
                raise InputError(f"{chart.name}: {where} does not render, so its images cannot be locked "
                                 f"(secrets are given by their structure only): {exc.output_tail}") from None
            found[name] = images_in(yaml.safe_load_all(manifest))
    return found


def lock_images(chart_dir: str | Path, chart: Chart, helm: Helm, resolver: ImageResolver) -> ImageLock:
    """Resolve every image of every profile; refuse (naming chart, profile, image, registry) when
    any image does not exist or cannot be asked for. Nothing is published on failure."""
    per_profile = rendered_images(Path(chart_dir), chart, helm)
    results = resolver.resolve_all(i.reference for images in per_profile.values() for i in images)
    problems = []
    for profile, images in per_profile.items():
        for image in images:
            result = results[image.reference]
            if isinstance(result, Exception):
                where = "its defaults" if profile == DEFAULTS else f"profile {profile}"
                problems.append(f"{chart.name} ({where}, {image.kind}/{image.name} container {image.container}): {result}")
    if problems:
        kinds = {type(results[i.reference]) for images in per_profile.values() for i in images
                 if isinstance(results[i.reference], Exception)}
        message = "images could not be resolved, nothing was published:\n  " + "\n  ".join(dict.fromkeys(problems))
        if kinds <= {NotFoundError}:
            raise NotFoundError(message)
        if AccessDeniedError in kinds:
            raise AccessDeniedError(message)
        raise UnavailableError(message)
    return ImageLock({
        profile: tuple(_pin(results[ref]) for ref in dict.fromkeys(i.reference for i in images))  # type: ignore[arg-type]
        for profile, images in per_profile.items()
    })


def _pin(resolved: Resolved) -> ImagePin:
    return ImagePin(resolved.reference, resolved.digest, resolved.mirror)


def check_pinned(pins: Iterable[ImagePin], resolver: ImageResolver, *, what: str) -> None:
    """Before a deploy: every pinned image still resolves to its pinned digest, else refuse."""
    pins = list(pins)
    results = resolver.resolve_all(p.reference for p in pins)
    failures = {ref: r for ref, r in results.items() if isinstance(r, Exception)}
    if failures:
        first = next(iter(failures.values()))
        raise type(first)(f"{what}: " + "; ".join(str(e) for e in failures.values()))
    drifted: list[Moved] = moved(pins, {ref: r.digest for ref, r in results.items()})  # type: ignore[union-attr]
    if drifted:
        raise InputError(f"{what}: pinned images moved, nothing was deployed: " + "; ".join(map(str, drifted)))


def package_pins(package: bytes, *, profile: str, origin: str) -> list[ImagePin]:
    """The image pins a packaged chart deploys with ``profile``: its own lock's and, for an
    umbrella, every vendored service chart's (charts published before image locks add none)."""
    pins: list[ImagePin] = []
    for chart in [load_chart_bytes(package, origin), *vendored_charts(package, origin)]:
        if chart.images is not None:
            pins += chart.images.pins(profile) or chart.images.pins(DEFAULTS)
    return list(dict.fromkeys(pins))


def check_package_images(package: bytes, *, profile: str, resolver: ImageResolver, origin: str, what: str) -> int:
    """Before a deploy changes anything: refuse when a pinned image moved or is gone. Returns how
    many images were checked."""
    pins = package_pins(package, profile=profile, origin=origin)
    if pins:
        check_pinned(pins, resolver, what=what)
    return len(pins)


def package_digests(package: bytes, *, origin: str) -> ChartDigests:
    """What a stack with ``pin_images`` runs: per chart of the package (the chart and, for an
    umbrella, every vendored service chart), its lock's reference → digest (None: no lock)."""
    top = load_chart_bytes(package, origin)
    charts = [top, *vendored_charts(package, origin)]
    return ChartDigests(top.name, {c.name: (c.images.digests() if c.images is not None else None) for c in charts})
