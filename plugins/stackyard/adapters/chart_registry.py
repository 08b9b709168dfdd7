"""Chart registries: where immutable service charts and umbrella artifacts are published.

Two backends, one contract (``tests/adapters/test_chart_registry.py``):

- :class:`DirectoryRegistry` — a plain folder (``dir:///path``), the zero-setup default.
- :class:`OciRegistry` — any OCI registry (``oci://host/path``: ECR in production, CNCF
  distribution in tests) through ``helm push``/``helm pull``.

Publishing a version that exists with different content is refused; the same content again is a
no-op. "Same content" compares the files inside the package, not the tar's timestamps, so CI may
re-package an unchanged chart. Fetched charts land in a content-addressed cache, and since a
published version never changes, a warm fetch touches no network.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from stackyard.core.charts import chart_files_digest, content_digest, load_chart_bytes
from stackyard.core.manifest import validate_service_name
from stackyard.core.versions import is_semver, semver_sort_key
from stackyard.exceptions import ImmutableArtifactError, InputError, NotFoundError, ToolError, UnavailableError
from stackyard.adapters.helm import Helm

_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


@dataclass(frozen=True)
class ChartRef:
    """A published chart: what a manifest pins."""

    name: str
    version: str
    digest: str  # sha256:<hex> of the .tgz bytes

    def __str__(self) -> str:
        return f"{self.name}:{self.version}@{self.digest}"


class ChartCache:
    """Packaged charts by content digest, plus which digest a (registry, name, version) has."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def blob(self, digest: str) -> Path:
        # The .tgz suffix matters: helm treats a chart path without it as a directory.
        return self.root / "blobs" / f"{digest.replace(':', '-')}.tgz"

    @staticmethod
    def digest_of(blob: Path) -> str:
        return blob.name.removesuffix(".tgz").replace("-", ":", 1)

    def put(self, data: bytes) -> str:
        digest = content_digest(data)
        _atomic_write(self.blob(digest), data)
        return digest

    def remember(self, registry_key: str, name: str, version: str, digest: str) -> None:
        _atomic_write(self._index(registry_key, name, version), digest.encode())

    def lookup(self, registry_key: str, name: str, version: str) -> str | None:
        index = self._index(registry_key, name, version)
        if not index.is_file():
            return None
        digest = index.read_text().strip()
        return digest if self.blob(digest).is_file() else None

    def _index(self, registry_key: str, name: str, version: str) -> Path:
        safe_key = re.sub(r"[^A-Za-z0-9._-]+", "_", registry_key)
        return self.root / "index" / safe_key / name / version


class ChartRegistry(abc.ABC):
    """The registry contract. ``url`` identifies it (and keys the cache)."""

    url: str

    def __init__(self, cache: ChartCache) -> None:
        self.cache = cache

    def publish(self, tgz: str | Path) -> ChartRef:
        """Publish a packaged chart immutably and return what was published."""
        data = Path(tgz).read_bytes()
        chart = load_chart_bytes(data, origin=str(tgz))
        if not is_semver(chart.version):
            raise InputError(f"{chart.name}: chart version {chart.version!r} is not semver as helm accepts it (e.g. 1.4.2, v1.19.0)")
        try:
            existing = self.fetch(chart.name, chart.version)
        except NotFoundError:
            existing = None
        if existing is not None:
            existing_data = existing.read_bytes()
            if chart_files_digest(existing_data) != chart_files_digest(data):
                raise ImmutableArtifactError(
                    f"{chart.name} {chart.version} is already published with different content "
                    f"({content_digest(existing_data)}); publish a new version instead"
                )
            return ChartRef(chart.name, chart.version, content_digest(existing_data))
        self._upload(chart.name, chart.version, data)
        digest = self.cache.put(data)
        self.cache.remember(self.url, chart.name, chart.version, digest)
        return ChartRef(chart.name, chart.version, digest)

    def fetch(self, name: str, version: str) -> Path:
        """The packaged chart in the local cache; NotFoundError when the registry lacks it."""
        validate_service_name(name, "chart name")
        digest = self.cache.lookup(self.url, name, version)
        if digest is None:
            data = self._download(name, version)
            digest = self.cache.put(data)
            self.cache.remember(self.url, name, version, digest)
        return self.cache.blob(digest)

    def resolve(self, name: str, version: str) -> ChartRef:
        path = self.fetch(name, version)
        return ChartRef(name, version, self.cache.digest_of(path))

    def exists(self, name: str, version: str) -> bool:
        try:
            self.fetch(name, version)
        except NotFoundError:
            return False
        return True

    @abc.abstractmethod
    def versions(self, name: str) -> list[str]:
        """Published versions of ``name``, oldest first by semver."""

    @abc.abstractmethod
    def _upload(self, name: str, version: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def _download(self, name: str, version: str) -> bytes: ...


class DirectoryRegistry(ChartRegistry):
    """``<root>/<name>/<name>-<version>.tgz``; a version file is created once, atomically."""

    def __init__(self, root: str | Path, cache: ChartCache) -> None:
        super().__init__(cache)
        self.root = Path(root)
        self.url = f"dir://{self.root.resolve()}"

    def versions(self, name: str) -> list[str]:
        folder = self.root / validate_service_name(name, "chart name")
        prefix = f"{name}-"
        found = [p.name[len(prefix):-4] for p in folder.glob(f"{name}-*.tgz")] if folder.is_dir() else []
        return sorted((v for v in found if is_semver(v)), key=semver_sort_key)

    def _path(self, name: str, version: str) -> Path:
        return self.root / name / f"{name}-{version}.tgz"

    def _upload(self, name: str, version: str, data: bytes) -> None:
        target = self._path(name, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.link(tmp, target)  # fails if another publisher got there first
        except FileExistsError:
            if chart_files_digest(target.read_bytes()) != chart_files_digest(data):
                raise ImmutableArtifactError(f"{name} {version} was just published with different content") from None
        finally:
            os.unlink(tmp)

    def _download(self, name: str, version: str) -> bytes:
        path = self._path(name, version)
        if not path.is_file():
            raise NotFoundError(f"chart {name} version {version} is not in registry {self.url}")
        return path.read_bytes()


class OciRegistry(ChartRegistry):
    """``oci://host[:port]/path`` via the helm CLI. ECR hosts log in with a token from boto3."""

    def __init__(
        self,
        url: str,
        cache: ChartCache,
        helm: Helm,
        *,
        credentials: tuple[str, str] | None = None,
        ecr_token: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(cache)
        parsed = urlparse(url)
        if parsed.scheme != "oci" or not parsed.netloc:
            raise InputError(f"OCI registry URL must look like oci://host/path, got {url!r}")
        self.url = url.rstrip("/")
        self.host = parsed.netloc
        self.helm = helm
        self._credentials = credentials
        self._ecr_token = ecr_token
        self._logged_in = False

    def versions(self, name: str) -> list[str]:
        raise NotImplementedError("listing tags of an OCI repository is not supported; ask for a version")

    def _login(self) -> None:
        if self._logged_in:
            return
        credentials = self._credentials
        if credentials is None and _ECR_HOST.match(self.host.split(":")[0]):
            if self._ecr_token is None:
                raise InputError(f"{self.host} is an ECR registry but no AWS connection was given for its token")
            credentials = self._ecr_token(self.host)
        if credentials is not None:
            self.helm.registry_login(self.host, *credentials)
        self._logged_in = True

    def _upload(self, name: str, version: str, data: bytes) -> None:
        with self._explained(f"push {name} {version}"), tempfile.TemporaryDirectory(prefix="stackyard-push-") as tmp:
            self._login()
            tgz = Path(tmp) / f"{name}-{version}.tgz"
            tgz.write_bytes(data)
            self.helm.push(tgz, self.url)

    def _download(self, name: str, version: str) -> bytes:
        with self._explained(f"pull {name} {version}"), tempfile.TemporaryDirectory(prefix="stackyard-pull-") as tmp:
            self._login()
            return self.helm.pull(f"{self.url}/{name}", version, tmp).read_bytes()

    @contextlib.contextmanager
    def _explained(self, action: str) -> Iterator[None]:
        """helm's failure as a registry error that names the registry (NotFound passes through)."""
        try:
            yield
        except ToolError as exc:
            lines = [line for line in exc.output_tail.splitlines() if line.strip()]
            detail = lines[-1] if lines else str(exc)
            raise UnavailableError(f"chart registry {self.url}: could not {action}: {detail}") from exc


def open_registry(url: str, *, cache_dir: str | Path, helm: Helm | None = None, **oci_options) -> ChartRegistry:
    """A registry from its URL: ``dir:///path`` (or a plain path) or ``oci://host/path``."""
    cache = ChartCache(cache_dir)
    if url.startswith("oci://"):
        if helm is None:
            raise InputError("an OCI registry needs helm")
        return OciRegistry(url, cache, helm, **oci_options)
    if url.startswith("dir://"):
        return DirectoryRegistry(url[len("dir://"):], cache)
    if "://" in url:
        raise InputError(f"unknown registry URL {url!r}: use dir:///path or oci://host/path")
    return DirectoryRegistry(url, cache)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
