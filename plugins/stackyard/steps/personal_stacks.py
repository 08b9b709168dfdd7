"""Personal ephemeral stacks (the seed's step (e)): a request checked against the stores, the
umbrella it deploys, and what the user is told. Plain functions; the DAGs wire them to tasks.

A personal stack runs an L3 manifest, optionally with some services moved to other published
chart versions (a branch build on top of L3). Its umbrella is published to the chart registry:

- no overrides: the L3 umbrella itself, ``l3:<N>.0.0`` (byte-identical to what the gate builds
  for manifest N);
- with overrides: ``l3:<N>.0.0-overrides-<12 hex>``, the hex being a hash of the resulting pins.
  A SemVer pre-release of N.0.0, so it never sorts as an L3 release.

Both are immutable and content-addressed: the same manifest and overrides give the same bytes,
and two stacks asking for the same combination share one artifact.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from stackyard.core import names
from stackyard.core.charts import load_chart_bytes
from stackyard.core.manifest import Manifest, ServicePin, validate_service_name
from stackyard.core.ephemeral import (
    DEFAULT_TTL, ttl_from_days, validate_personal_stack_name,
)
from stackyard.core.umbrella import UmbrellaTemplate, VendoredChart, build_umbrella, umbrella_version
from stackyard.core.versions import is_semver
from stackyard.exceptions import InputError, NotFoundError
from stackyard.steps.publishing import build_manifest_package
from stackyard.adapters.manifest_store import ManifestStore
from stackyard.adapters.chart_registry import ChartRegistry

#: One release per stack: the umbrella carries every service (as the gate deploys its candidate).
RELEASE = "stack"
DEFAULT_PROFILE = "ephemeral"
#: Personal stacks are throwaway and widely shared: they never get production's values or secrets.
FORBIDDEN_PROFILES = frozenset({"production"})
PROFILE_PATTERN = names.PROFILE_NAME_PATTERN


@dataclass(frozen=True)
class StackRequest:
    """The trigger form of ``stack_create``, checked field by field."""

    name: str
    owner: str
    ttl: timedelta = DEFAULT_TTL
    manifest_version: int | None = None  # None: the latest L3
    overrides: Mapping[str, str] | None = None
    profile: str = DEFAULT_PROFILE

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> StackRequest:
        name = validate_personal_stack_name(params.get("name"))
        owner = params.get("owner")
        if not isinstance(owner, str) or not owner.strip():
            raise InputError("owner: who the stack belongs to is required (a name or an email)")
        names.free_text(owner, "owner")
        ttl_days = params.get("ttl_days")
        ttl = DEFAULT_TTL if ttl_days is None else ttl_from_days(ttl_days)
        version = params.get("manifest_version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise InputError(f"manifest_version: expected an L3 version number >= 1 or empty for the latest, got {version!r}")
        profile = params.get("profile") or DEFAULT_PROFILE
        if not names.is_dns_label(profile):
            raise InputError(f"profile: {profile!r} is not a profile name")
        if profile in FORBIDDEN_PROFILES:
            raise InputError(f"profile: ephemeral stacks cannot use the {profile!r} profile")
        return cls(name=name, owner=owner.strip(), ttl=ttl, manifest_version=version,
                   overrides=_overrides(params.get("overrides")), profile=profile)


def _overrides(value: object) -> dict[str, str]:
    if value in (None, "", {}):
        return {}
    if isinstance(value, str):  # the form's JSON field may arrive as text
        try:
            value = json.loads(value)
        except ValueError:
            raise InputError(f"overrides: {value!r} is not a JSON object like {{\"orders\": \"1.2.0\"}}") from None
    if not isinstance(value, Mapping):
        raise InputError(f"overrides: expected an object of service → chart version, got {type(value).__name__}")
    checked = {}
    for service, version in sorted(value.items()):
        validate_service_name(service, "overrides")
        if not is_semver(version):
            raise InputError(f"overrides.{service}: {version!r} is not a semantic version as helm accepts "
                                 "chart versions (e.g. 1.4.2, v1.19.0)")
        checked[service] = version
    return checked


@dataclass(frozen=True)
class StackPlan:
    """A checked request: the manifest it starts from and the pins it will run."""

    name: str
    owner: str
    ttl: timedelta
    profile: str
    manifest: Manifest
    pins: Mapping[str, ServicePin]
    overrides: Mapping[str, dict[str, str | None]]  # service → {"from", "to"}; only real changes

    @property
    def umbrella_version(self) -> str:
        base = umbrella_version(self.manifest.version)
        if not self.overrides:
            return base
        canonical = json.dumps({k: p.to_dict() for k, p in sorted(self.pins.items())}, sort_keys=True).encode()
        return f"{base}-overrides-{hashlib.sha256(canonical).hexdigest()[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "owner": self.owner, "ttl_days": self.ttl.days, "profile": self.profile,
            "manifest": self.manifest.to_dict(), "pins": {k: p.to_dict() for k, p in self.pins.items()},
            "overrides": dict(self.overrides), "umbrella_version": self.umbrella_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StackPlan:
        return cls(
            name=data["name"], owner=data["owner"], ttl=timedelta(days=data["ttl_days"]), profile=data["profile"],
            manifest=Manifest.from_dict(data["manifest"]),
            pins={k: ServicePin(p["chart_version"], p["digest"]) for k, p in data["pins"].items()},
            overrides=dict(data["overrides"]),
        )


def resolve(request: StackRequest, *, store: ManifestStore, registry: ChartRegistry) -> StackPlan:
    """The plan for ``request``, or an InputError naming the field that cannot be satisfied."""
    if request.manifest_version is None:
        manifest = store.latest()
        if manifest is None:
            raise InputError("manifest_version: there is no L3 manifest yet (seed one: stackyard manifest seed)")
    else:
        try:
            manifest = store.get(request.manifest_version)
        except NotFoundError:
            latest = store.latest()
            raise NotFoundError(
                f"manifest_version: there is no L3 manifest v{request.manifest_version} "
                f"(latest is v{latest.version if latest else 'none'})"
            ) from None
    pins = dict(manifest.services)
    changes: dict[str, dict[str, str | None]] = {}
    for service, version in (request.overrides or {}).items():
        try:
            ref = registry.resolve(service, version)
        except NotFoundError:
            raise NotFoundError(
                f"overrides.{service}: chart {service} {version} is not in the registry {registry.url}; "
                "publish it first (stackyard chart publish)"
            ) from None
        current = pins.get(service)
        if current is not None and current.chart_version == version:
            continue  # the same as L3: not an override
        pins[service] = ServicePin(version, ref.digest)
        changes[service] = {"from": current.chart_version if current else None, "to": version}
    return StackPlan(name=request.name, owner=request.owner, ttl=request.ttl, profile=request.profile,
                     manifest=manifest, pins=pins, overrides=changes)


def build_package(plan: StackPlan, *, registry: ChartRegistry, template: UmbrellaTemplate) -> tuple[str, bytes]:
    """(version, umbrella bytes) for the plan; every chart must have the plan's profile."""
    if not plan.overrides:
        version, data = build_manifest_package(plan.manifest, registry=registry, template=template)
    else:
        charts = []
        for name, pin in sorted(plan.pins.items()):
            ref = registry.resolve(name, pin.chart_version)
            if pin.digest and pin.digest != ref.digest:
                raise InputError(
                    f"{name} {pin.chart_version}: the registry serves {ref.digest} but the plan pins {pin.digest}; "
                    "published artifacts must not change"
                )
            charts.append(VendoredChart(name, pin.chart_version, registry.fetch(name, pin.chart_version).read_bytes()))
        version = plan.umbrella_version
        data = build_umbrella(template, version, charts)
    for chart in charts_of(data):
        if chart.profiles and plan.profile not in chart.profiles:
            raise NotFoundError(
                f"profile: chart {chart.name} {chart.version} has no profile {plan.profile!r} "
                f"(it has {', '.join(sorted(chart.profiles))})"
            )
    return version, data


def charts_of(package: bytes) -> list:
    from stackyard.core.charts import vendored_charts

    return [load_chart_bytes(package, "umbrella"), *vendored_charts(package, "umbrella")]


def publish_package(plan: StackPlan, *, registry: ChartRegistry, template: UmbrellaTemplate) -> dict[str, str]:
    """Publish the plan's umbrella (immutable: publishing it again is a no-op)."""
    version, data = build_package(plan, registry=registry, template=template)
    with tempfile.TemporaryDirectory(prefix="stackyard-stack-") as tmp:
        package = Path(tmp) / f"l3-{version}.tgz"
        package.write_bytes(data)
        ref = registry.publish(package)
    return {"chart_ref": f"{ref.name}:{ref.version}", "digest": ref.digest}


def access_instructions(*, name: str, release: str, context: str | None) -> str:
    """How to reach a stack, printed at the end of stack_create."""
    ctx = f" --context {context}" if context else ""
    return "\n".join([
        f"stack {name} is ready",
        f"  namespace:       {name}",
        f"  release:         {release}",
        f"  kubectl context: {context or '(the current context of the cluster connection)'}",
        f"  pods:            kubectl{ctx} -n {name} get pods",
        f"  services:        kubectl{ctx} -n {name} get services",
        f"  release status:  helm{' --kube-context ' + context if context else ''} -n {name} status {release}",
        "  keep it alive:   trigger stack_touch (it is removed after its TTL of inactivity)",
        "  remove it:       trigger stack_destroy",
    ])


def registry_reserved(stacks_file: Path) -> dict[str, str]:
    """Every name and namespace the stack registry assigns → its stack (entries with errors
    included: their names are taken even while they are invalid). {} when there is no registry."""
    from stackyard.steps.rollouts import load_stacks

    if not stacks_file.exists():
        return {}
    registry = load_stacks(stacks_file)
    reserved = {name: name for name in registry.errors}
    for name, stack in registry.stacks.items():
        reserved[name] = name
        reserved[stack.namespace] = name
    return reserved
