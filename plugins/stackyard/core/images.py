"""Container images as artifacts: references, the images a rendered chart deploys, mirrors, pins.

Pure: parsing follows the reference grammar container runtimes use (distribution's
``reference`` package): ``[domain/]path[:tag][@digest]``, where the first component is a domain
only if it has a ``.`` or ``:`` or is ``localhost``; otherwise the image is on Docker Hub and a
single-component path gets ``library/``. A reference with neither tag nor digest means ``latest``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

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


# --- running the pinned digests: rewriting rendered pod specs ----------------------------------
# A stack with ``pin_images`` (docs/images.md) runs every container at the digest its chart
# locked, whatever the chart templates: the rendered objects are rewritten (helm's post-renderer),
# so the rule works for any chart, without a values convention the chart would have to follow.

#: Where helm 4 tells a post-renderer which template an object came from (removed again after).
POSTRENDER_FILENAME = "postrenderer.helm.sh/postrender-filename"
_DOC_SPLIT = re.compile(r"^---[ \t]*$", re.MULTILINE)
_SOURCE_COMMENT = re.compile(r"^# Source: (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class ChartDigests:
    """Per chart (by name): its lock's reference → digest, or None for a chart without a lock.

    ``top`` is the chart deployed (an umbrella or a service), named when an object's template
    path is unknown.
    """

    top: str
    charts: Mapping[str, Mapping[str, str] | None]

    def to_json(self) -> dict[str, Any]:
        return {"top": self.top, "charts": {k: (dict(v) if v is not None else None) for k, v in self.charts.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChartDigests:
        return cls(str(data["top"]), {str(k): (dict(v) if v is not None else None) for k, v in data["charts"].items()})

    def lookup(self, reference: str, chain: list[str]) -> tuple[str | None, str]:
        """(digest, "") from the innermost chart of ``chain`` whose lock has the reference, else
        the one digest the package's locks agree on (an aliased subchart, an object whose template
        is unknown); (None, "chart <name>: why") when there is none."""
        for chart in chain:
            locked = self.charts.get(chart)
            if locked and reference in locked:
                return locked[reference], ""
        found = {locked[reference] for locked in self.charts.values() if locked and reference in locked}
        if len(found) == 1:
            return found.pop(), ""
        known = [c for c in chain if c in self.charts] or [self.top]
        if found:
            return None, f"chart {known[0]}: its charts locked it at {len(found)} different digests"
        if all(self.charts.get(c) is None for c in known):
            return None, (f"chart {known[0]}: has no image lock (published before stackyard locked images; "
                          "publish a new version)")
        return None, f"chart {known[0]}: not in its image lock ({IMAGE_LOCK})"


@dataclass(frozen=True)
class Unpinnable:
    """An image in the rendered output that cannot be run at a pinned digest, and why."""

    image: DeployedImage
    reason: str

    def __str__(self) -> str:
        chart, _, why = self.reason.partition(": ")
        return f"{chart}: {self.image.kind}/{self.image.name} container {self.image.container}: " \
               f"image {self.image.reference}: {why}"


@dataclass(frozen=True)
class PinnedRender:
    """A rendered stream with every container image at its digest, and what could not be pinned."""

    text: str
    pinned: tuple[tuple[DeployedImage, str], ...]  # (as rendered, the image now run)
    unpinnable: tuple[Unpinnable, ...]

    def report(self, what: str) -> str:
        return (f"{what}: {len(self.unpinnable)} image(s) cannot be run at a pinned digest, nothing was deployed:\n  "
                + "\n  ".join(map(str, self.unpinnable)))


def chart_chain(template_path: str | None) -> list[str]:
    """``l3/charts/orders/charts/redis/templates/x.yaml`` → ``[redis, orders, l3]``: the charts an
    object belongs to, innermost first (a subchart's images are locked by the chart vendoring it)."""
    if not template_path:
        return []
    parts = template_path.split("/")
    chain = [parts[0]] + [parts[i + 1] for i in range(len(parts) - 1) if parts[i] == "charts"]
    return [c for c in reversed(chain) if c]


def at_digest(written: str, digest: str) -> str:
    """``nginx:1.25`` at ``sha256:…`` → ``nginx@sha256:…``: the repository as the chart wrote it
    (so a runtime's registry mirrors still apply), the tag replaced by the digest."""
    rest = written.split("@", 1)[0]
    if rest.rfind(":") > rest.rfind("/"):
        rest = rest[:rest.rfind(":")]
    return f"{rest}@{digest}"


def pin_rendered(text: str, digests: ChartDigests) -> PinnedRender:
    """``text`` (a rendered multi-document stream, ``helm template`` output or what helm hands a
    post-renderer) with the image of every container, init container and ephemeral container of
    every object — Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Pods, hooks,
    tests, custom resources embedding pod templates, ``List`` items — replaced by
    ``repository@digest`` from the chart's lock. Everything else is kept byte for byte: only the
    image scalars are spliced. An image already given by digest is kept as written."""
    chunks = _DOC_SPLIT.split(text)
    out: list[str] = []
    pinned: list[tuple[DeployedImage, str]] = []
    unpinnable: list[Unpinnable] = []
    for chunk in chunks:
        if "image" not in chunk:
            out.append(chunk)
            continue
        try:
            root = yaml.compose(chunk, Loader=_MarkedLoader)
        except yaml.YAMLError:
            out.append(chunk)  # not ours to judge: helm reports it
            continue
        source = _SOURCE_COMMENT.search(chunk)
        edits: list[tuple[int, int, str]] = []
        for obj in _objects(root):
            kind = _scalar(obj, "kind") or "?"
            meta = _child(obj, "metadata")
            name = (_scalar(meta, "name") if meta else None) or "?"
            annotations = _child(meta, "annotations") if meta else None
            template = (_scalar(annotations, POSTRENDER_FILENAME) if annotations else None) or (
                source.group(1) if source else None)
            chain = chart_chain(template)
            for container, image in _container_images(obj):
                deployed = DeployedImage(image.value, kind, name, container)
                try:
                    ref = parse_image(image.value)
                except InputError as exc:
                    unpinnable.append(Unpinnable(deployed, f"chart {chain[0] if chain else digests.top}: {exc}"))
                    continue
                if ref.digest:
                    pinned.append((deployed, image.value))
                    continue
                digest, why = digests.lookup(image.value, chain)
                if digest is None:
                    unpinnable.append(Unpinnable(deployed, why))
                    continue
                new = at_digest(image.value, digest)
                edits.append((_value_start(chunk, image.start_mark.index), image.end_mark.index, json_string(new)))
                pinned.append((deployed, new))
        # set(): an alias (``image: *img``) is the anchored node itself, spliced once
        for start, end, replacement in sorted(set(edits), reverse=True):
            chunk = chunk[:start] + replacement + chunk[end:]
        out.append(chunk)
    return PinnedRender("---".join(out), tuple(pinned), tuple(unpinnable))


def json_string(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is valid YAML)."""
    return json.dumps(text)


def _value_start(text: str, start: int) -> int:
    """Where a scalar's value begins: after its anchor (``&img``) and tag (``!!str``), which stay."""
    while text[start:start + 1] in ("&", "!"):
        start = re.compile(r"\S*\s*").match(text, start).end()
    return start


class _MarkedLoader(yaml.SafeLoader):
    """The pure-Python loader: its marks carry character offsets into the text, for splicing."""


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _scalar(node: yaml.Node | None, key: str) -> str | None:
    value = _child(node, key)
    return value.value if isinstance(value, yaml.ScalarNode) else None


def _objects(root: yaml.Node | None) -> Iterator[yaml.MappingNode]:
    """The objects of one document: itself, or the items of a ``List`` kind."""
    if not isinstance(root, yaml.MappingNode):
        return
    items = _child(root, "items")
    if (_scalar(root, "kind") or "").endswith("List") and isinstance(items, yaml.SequenceNode):
        yield from (item for item in items.value if isinstance(item, yaml.MappingNode))
    else:
        yield root


def _container_images(node: yaml.Node) -> Iterator[tuple[str, yaml.ScalarNode]]:
    """(container name, its image scalar) of every container list anywhere below ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value in CONTAINER_LISTS and isinstance(value, yaml.SequenceNode):
                for container in value.value:
                    image = _child(container, "image")
                    if isinstance(image, yaml.ScalarNode) and image.tag == "tag:yaml.org,2002:str" and image.value:
                        yield (_scalar(container, "name") or "?"), image
            else:
                yield from _container_images(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _container_images(item)
