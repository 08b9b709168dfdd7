"""Container images as artifacts: references, the images a rendered chart deploys, mirrors, pins.

Pure: parsing follows the reference grammar container runtimes use (distribution's
``reference`` package): ``[domain/]path[:tag][@digest]``, where the first component is a domain
only if it has a ``.`` or ``:`` or is ``localhost``; otherwise the image is on Docker Hub and a
single-component path gets ``library/``. A reference with neither tag nor digest means ``latest``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stackyard.exceptions import InputError

DOCKER_HUB = "docker.io"
#: Where Docker Hub's registry API actually answers (``docker.io`` is only the name's domain).
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
                     r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
MAX_REFERENCE = 255 + 128 + 72  # name + tag + digest: anything longer is not a reference


@dataclass(frozen=True, order=True)
class ImageRef:
    """A normalized image reference: ``domain/path`` plus a tag, a digest, or both."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def api_host(self) -> str:
        """The host whose ``/v2/`` API serves this image."""
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def lookup(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def pinned(self, digest: str) -> str:
        """This image at ``digest`` (the tag kept for readers: ``name:tag@sha256:…``)."""
        tag = f":{self.tag}" if self.tag else ""
        return f"{self.name}{tag}@{digest}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def parse_image(text: str) -> ImageRef:
    """Parse and normalize one reference; a bad one raises :class:`InputError` naming it."""
    if not isinstance(text, str) or not text or len(text) > MAX_REFERENCE or text != text.strip():
        raise InputError(f"not an image reference: {text!r}")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InputError(f"image {text!r}: {digest!r} is not a sha256/sha512 digest")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InputError(f"image {text!r}: {tag!r} is not a valid tag")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, remainder
        if not _DOMAIN.fullmatch(domain):
            raise InputError(f"image {text!r}: {domain!r} is not a registry host")
    else:
        domain, path = DOCKER_HUB, rest
    if domain in (DOCKER_HUB, "index.docker.io"):
        domain = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    if not _PATH.fullmatch(path):
        raise InputError(f"image {text!r}: {path!r} is not a valid repository path (lower case, digits, . _ -)")
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(domain, path, tag, digest)


# --- the images a rendered chart deploys ----------------------------------------------------

#: Lists of containers in a pod spec; every workload kind (Deployment, StatefulSet, DaemonSet,
#: ReplicaSet, Job, CronJob, Pod, and custom resources that embed pod templates) nests a pod spec
#: somewhere, so they are found by walking the object, not by a table of kinds.
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class DeployedImage:
    """One image reference in one rendered object: where it was found, for error messages."""

    reference: str
    kind: str
    name: str
    container: str


def images_in(documents: Iterable[Mapping[str, Any] | None]) -> list[DeployedImage]:
    """Every container image of every rendered object (hooks and tests included), in order."""
    found: list[DeployedImage] = []
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        kind = str(doc.get("kind", "?"))
        name = str((doc.get("metadata") or {}).get("name", "?"))
        for container in _containers(doc):
            image = container.get("image")
            if isinstance(image, str) and image:
                found.append(DeployedImage(image, kind, name, str(container.get("name", "?"))))
    return found


def _containers(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in CONTAINER_LISTS and isinstance(value, list):
                yield from (c for c in value if isinstance(c, Mapping))
            elif isinstance(value, (Mapping, list)):
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


# --- mirrors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mirror:
    """``docker.io=127.0.0.1:5000/hub``: images of ``source`` are looked up at ``host``/``prefix``."""

    source: str
    host: str
    prefix: str = ""

    def locate(self, ref: ImageRef) -> ImageRef:
        path = f"{self.prefix}/{ref.path}" if self.prefix else ref.path
        return ImageRef(self.host, path, ref.tag, ref.digest)


def parse_mirrors(text: str | None) -> dict[str, Mirror]:
    """``STACKYARD_IMAGE_MIRRORS``: comma-separated ``registry=host[/prefix]`` pairs."""
    mirrors: dict[str, Mirror] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        source, sep, target = item.partition("=")
        source, target = source.strip(), target.strip()
        host, _, prefix = target.partition("/")
        if not sep or not _DOMAIN.fullmatch(source) or not _DOMAIN.fullmatch(host) or (prefix and not _PATH.fullmatch(prefix)):
            raise InputError(f"STACKYARD_IMAGE_MIRRORS: {item!r} is not registry=host[/prefix]")
        source = DOCKER_HUB if source in ("index.docker.io", DOCKER_HUB_API) else source
        if source in mirrors:
            raise InputError(f"STACKYARD_IMAGE_MIRRORS: {source} is mirrored twice")
        mirrors[source] = Mirror(source, host, prefix)
    return mirrors


# --- pins --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePin:
    """An image reference as the chart writes it, and the digest it resolved to at publish."""

    reference: str
    digest: str
    mirror: str | None = None  # the mirror host the digest came from, when one was used

    def __post_init__(self) -> None:
        parse_image(self.reference)
        if not _DIGEST.fullmatch(self.digest):
            raise InputError(f"image pin {self.reference!r}: {self.digest!r} is not a digest")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"reference": self.reference, "digest": self.digest}
        if self.mirror:
            data["mirror"] = self.mirror
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImagePin:
        extra = set(data) - {"reference", "digest", "mirror"}
        if extra:
            raise InputError(f"image pin: unknown field(s) {', '.join(sorted(extra))}")
        return cls(data.get("reference"), data.get("digest"), data.get("mirror"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Moved:
    """A pinned image whose tag now resolves elsewhere: a mutable tag was pushed again."""

    reference: str
    pinned: str
    current: str

    def __str__(self) -> str:
        return f"{self.reference}: pinned {self.pinned}, the registry now has {self.current}"


def moved(pins: Iterable[ImagePin], current: Mapping[str, str]) -> list[Moved]:
    """The pins whose reference resolves to another digest now (``current``: reference → digest)."""
    return [Moved(p.reference, p.digest, current[p.reference])
            for p in pins if p.reference in current and current[p.reference] != p.digest]


def image_changes(old: Iterable[ImagePin], new: Iterable[ImagePin]) -> list[str]:
    """What a manifest diff says about images, even when the chart version did not change."""
    before = {p.reference: p.digest for p in old}
    after = {p.reference: p.digest for p in new}
    lines = []
    for ref in sorted(before.keys() | after.keys()):
        if ref not in before:
            lines.append(f"+ {ref} {after[ref]}")
        elif ref not in after:
            lines.append(f"- {ref} {before[ref]}")
        elif before[ref] != after[ref]:
            lines.append(f"~ {ref} {before[ref]} -> {after[ref]}")
    return lines


# --- the lock a published chart carries --------------------------------------------------------

#: The file ``stackyard chart publish`` writes into the package: per profile, every image the chart
#: deploys with that profile and the digest it resolved to. The chart is immutable, so its images
#: are too: a tag pushed again later no longer matches the lock.
IMAGE_LOCK = "images.lock.json"
IMAGE_LOCK_SCHEMA = 1
PLACEHOLDER = "stackyard-image-scan"


@dataclass(frozen=True)
class ImageLock:
    profiles: Mapping[str, tuple[ImagePin, ...]]

    def pins(self, profile: str) -> tuple[ImagePin, ...]:
        return tuple(self.profiles.get(profile, ()))

    def digests(self) -> dict[str, str]:
        """Every image of every profile → its digest: what an L3 pin carries."""
        return {p.reference: p.digest for pins in self.profiles.values() for p in pins}

    def to_json(self) -> str:
        import json

        body = {"schema_version": IMAGE_LOCK_SCHEMA,
                "profiles": {name: [p.to_dict() for p in pins] for name, pins in sorted(self.profiles.items())}}
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str = IMAGE_LOCK) -> ImageLock:
        import json

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{source}: not JSON: {exc}") from None
        if not isinstance(data, Mapping) or data.get("schema_version") != IMAGE_LOCK_SCHEMA:
            raise InputError(f"{source}: expected schema_version {IMAGE_LOCK_SCHEMA}")
        profiles = data.get("profiles")
        if not isinstance(profiles, Mapping) or not all(isinstance(v, list) for v in profiles.values()):
            raise InputError(f"{source}: 'profiles' must map profile names to lists of pins")
        return cls({str(k): tuple(ImagePin.from_dict(p) for p in v) for k, v in profiles.items()})


def placeholder_secrets(encrypted: Mapping[str, Any]) -> dict[str, Any]:
    """A SOPS file's structure with every value replaced by a placeholder: enough to render a
    chart's templates (which images it deploys) without decrypting anything."""

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return PLACEHOLDER if isinstance(node, str) else node

    return {k: walk(v) for k, v in encrypted.items() if k != "sops"}
