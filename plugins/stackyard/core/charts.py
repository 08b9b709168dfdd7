"""Service charts and their profiles, read from a chart directory or a packaged ``.tgz``.

A profile is a folder ``profiles/<name>/`` inside the chart holding ``values.yaml`` (plain
overrides) and optionally ``secrets.yaml`` (SOPS-encrypted). ``helm package`` carries the folder
inside the artifact and ``helm install`` ignores it, so one immutable artifact serves every stack.
"""

from __future__ import annotations

import re

import hashlib
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from stackyard.core.images import IMAGE_LOCK, ImageLock
from stackyard.core.manifest import validate_service_name
from stackyard.core.versions import is_semver
from stackyard.exceptions import InputError, NotFoundError

PROFILES_DIR = "profiles"
PROFILE_VALUES = "values.yaml"
PROFILE_SECRETS = "secrets.yaml"


@dataclass(frozen=True)
class Profile:
    """One profile of one chart. ``secrets`` is the encrypted file's bytes, or None."""

    name: str
    values: Mapping[str, Any]
    secrets: bytes | None = field(default=None, repr=False)
    chart: str = ""

    @property
    def secrets_source(self) -> str:
        return f"{self.chart}/{PROFILES_DIR}/{self.name}/{PROFILE_SECRETS}"

    @property
    def values_source(self) -> str:
        return f"{self.chart}/{PROFILES_DIR}/{self.name}/{PROFILE_VALUES}"


@dataclass(frozen=True)
class Chart:
    """What stackyard needs to know of a chart: identity, defaults and profiles."""

    name: str
    version: str
    app_version: str | None
    values: Mapping[str, Any]
    profiles: Mapping[str, Profile]
    #: The image lock publish put in the package (None for a chart directory or an older package).
    images: ImageLock | None = None

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise NotFoundError(
                f"chart {self.name} {self.version} has no profile {name!r} (profiles: {known})"
            ) from None


def load_chart(path: str | Path) -> Chart:
    """Read a chart from a directory or a packaged ``.tgz``."""
    path = Path(path)
    if path.is_dir():
        files = {
            str(p.relative_to(path)): p.read_bytes()
            for p in path.rglob("*")
            if p.is_file() and _is_profile_or_top_file(p.relative_to(path))
        }
        return _chart_from_files(files, origin=str(path))
    if path.is_file():
        return _chart_from_files(_read_tgz(path.read_bytes(), origin=str(path)), origin=str(path))
    raise NotFoundError(f"chart not found: {path}")


def load_chart_bytes(data: bytes, origin: str) -> Chart:
    """Read a packaged chart from memory (for instance straight from a registry)."""
    return _chart_from_files(_read_tgz(data, origin=origin), origin=origin)


def contract_files(source: str | Path | bytes, origin: str = "") -> dict[str, bytes]:
    """Every file the chart contract judges (core.chart_contract): everything under ``profiles/``
    at any depth and ``.sops.yaml``, by path relative to the chart, from a directory or package."""
    def wanted(rel: PurePosixPath) -> bool:
        return rel.parts[:1] == (PROFILES_DIR,) or str(rel) == ".sops.yaml"

    if isinstance(source, bytes):
        try:
            with tarfile.open(fileobj=io.BytesIO(source), mode="r:gz") as tar:
                out = {}
                for member in tar.getmembers():
                    rel = PurePosixPath(*PurePosixPath(member.name).parts[1:])
                    if member.isfile() and rel.parts and wanted(rel):
                        out[str(rel)] = tar.extractfile(member).read()  # type: ignore[union-attr]
                return out
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(f"{origin}: not a packaged chart (.tgz): {exc}") from None
    root = Path(source)
    return {str(PurePosixPath(p.relative_to(root).as_posix())): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and wanted(PurePosixPath(p.relative_to(root).as_posix()))}


def content_digest(data: bytes) -> str:
    """``sha256:<hex>`` of an artifact's bytes: the identity registries and manifests pin."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chart_files_digest(data: bytes) -> str:
    """A digest of a packaged chart's files (paths and contents), independent of tar metadata.

    Two packages of the same chart source differ in timestamps; this tells whether they carry
    the same content, which is what immutability of a published version is about.
    """
    h = hashlib.sha256()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name):
            content = tar.extractfile(member).read()  # type: ignore[union-attr]
            h.update(member.name.encode() + b"\0" + hashlib.sha256(content).digest())
    return "sha256:" + h.hexdigest()


def _is_profile_or_top_file(rel: Path) -> bool:
    parts = rel.parts
    return len(parts) == 1 or (parts[0] == PROFILES_DIR and len(parts) == 3)


def _read_tgz(data: bytes, origin: str) -> dict[str, bytes]:
    """Chart files with the package's top folder stripped; only what this module reads."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            files = {}
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                rel = PurePosixPath(*PurePosixPath(member.name).parts[1:])
                if rel.parts and _is_profile_or_top_file(Path(rel)):
                    files[str(rel)] = tar.extractfile(member).read()  # type: ignore[union-attr]
            return files
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"{origin}: not a packaged chart (.tgz): {exc}") from None


def _parse_yaml(data: bytes, source: str) -> Any:
    try:
        return yaml.safe_load(data) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: invalid YAML: {exc}") from None


def _chart_from_files(files: dict[str, bytes], origin: str) -> Chart:
    if "Chart.yaml" not in files:
        raise InputError(f"{origin}: no Chart.yaml, not a Helm chart")
    meta = _parse_yaml(files["Chart.yaml"], f"{origin}/Chart.yaml")
    for key in ("name", "version"):
        if not meta.get(key):
            raise InputError(f"{origin}/Chart.yaml: missing {key!r}")
    name = validate_service_name(str(meta["name"]), f"{origin}/Chart.yaml: name")
    values = _parse_yaml(files.get("values.yaml", b""), f"{name}/values.yaml")
    if not isinstance(values, Mapping):
        raise InputError(f"{name}/values.yaml: must be a mapping")

    profile_names = sorted({Path(p).parts[1] for p in files if p.startswith(PROFILES_DIR + "/")})
    profiles = {}
    for profile in profile_names:
        base = f"{PROFILES_DIR}/{profile}/"
        source = f"{name}/{base}{PROFILE_VALUES}"
        profile_values = _parse_yaml(files.get(base + PROFILE_VALUES, b""), source)
        if not isinstance(profile_values, Mapping):
            raise InputError(f"{source}: must be a mapping")
        profiles[profile] = Profile(
            name=profile, values=profile_values, secrets=files.get(base + PROFILE_SECRETS), chart=name
        )
    return Chart(
        name=name,
        version=str(meta["version"]),
        app_version=str(meta["appVersion"]) if meta.get("appVersion") is not None else None,
        values=values,
        profiles=profiles,
        images=ImageLock.from_json(files[IMAGE_LOCK], f"{name}/{IMAGE_LOCK}") if IMAGE_LOCK in files else None,
    )


def vendored_charts(data: bytes, origin: str) -> list[Chart]:
    """The subcharts packaged in ``charts/`` of a packaged chart (an umbrella's services)."""
    subcharts = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                parts = PurePosixPath(member.name).parts
                if member.isfile() and len(parts) == 3 and parts[1] == "charts" and parts[2].endswith(".tgz"):
                    inner = tar.extractfile(member).read()  # type: ignore[union-attr]
                    subcharts.append(load_chart_bytes(inner, origin=f"{origin}/charts/{parts[2]}"))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"{origin}: not a packaged chart (.tgz): {exc}") from None
    return subcharts


_FULL_VERSION = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+(?:[-+]|$)")


def split_chart(chart: str) -> tuple[str, str | None]:
    """``helm list``'s ``chart`` column (``name-version``) split at the version, which may itself
    contain hyphens (``l3-6.0.0-candidate-ab12``)."""
    parts = chart.split("-")
    # helm also accepts short versions (``299-1.0.0`` is 299 with a pre-release), so a name with a
    # numeric segment (``svc-299-1.0.0``) would split too early: a full MAJOR.MINOR.PATCH wins first.
    for full in (True, False):
        for index in range(1, len(parts)):
            version = "-".join(parts[index:])
            if is_semver(version) and (not full or _FULL_VERSION.match(version)):
                return "-".join(parts[:index]), version
    return chart, None
