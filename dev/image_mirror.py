"""Local mode's image mirror: a loopback OCI registry holding a small image under the name of every
image the example charts deploy, so ``make demo``, ``make up`` and the tests resolve image digests
without the internet (``STACKYARD_IMAGE_MIRRORS`` maps each public registry to it, as a container
runtime's registry mirror would).

The images are synthetic (one config, one layer naming the reference): the kube sandbox runs
nothing, so only their existence and digests matter. Their content is fixed by the reference, so
digests are the same on every machine and every run. ``make setup`` seeds the store
(``python -m dev.image_mirror seed``); :func:`serve` tops it up and serves it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

from dev.oci_images import push_image
from dev.oci_registry import local_oci_registry
from stackyard.core.images import DOCKER_HUB, parse_image, parse_mirrors

ROOT = Path(__file__).resolve().parents[1]


def store_dir(home: Path) -> Path:
    return home / "images"


def example_images(root: Path = ROOT) -> list[str]:
    """Every image the example charts deploy (defaults and every profile), and the images of the
    chart ``stackyard chart init`` writes, so a new chart publishes offline too."""
    import os
    import shutil
    import tempfile

    from stackyard.adapters.helm import Helm, HelmConfig
    from stackyard.core.charts import load_chart
    from stackyard.steps.images import rendered_images

    found: dict[str, None] = {}
    with tempfile.TemporaryDirectory(prefix="stackyard-mirror-") as tmp:
        helm = Helm(HelmConfig(home=Path(tmp) / "helm", binary=shutil.which("helm") or "helm", base_env=os.environ))
        charts = [c for c in sorted((root / "include" / "charts").iterdir()) if (c / "Chart.yaml").is_file()]
        scaffold = root / "plugins" / "stackyard" / "cli" / "templates" / "chart"
        if (scaffold / "Chart.yaml").is_file():
            charts.append(_instantiated(scaffold, Path(tmp) / "scaffold"))
        for chart_dir in charts:
            for images in rendered_images(chart_dir, load_chart(chart_dir), helm).values():
                found.update((i.reference, None) for i in images)
    return list(found)


def _instantiated(template: Path, dest: Path) -> Path:
    """The scaffold template with its placeholders filled, enough to render its images."""
    import shutil

    shutil.copytree(template, dest)
    for path in dest.rglob("*"):
        if path.is_file():
            text = path.read_text()
            path.write_text(text.replace("__SERVICE__", "scaffold").replace("__PROFILES__", ""))
    return dest


def mirrors_for(host: str, images: Iterable[str]) -> str:
    """The ``STACKYARD_IMAGE_MIRRORS`` value: each public registry at ``host/<registry>``."""
    domains = sorted({parse_image(i).domain for i in images} - {"localhost"})
    return ",".join(f"{d}={host}/{_prefix(d)}" for d in domains if not d.startswith("127."))


def _prefix(domain: str) -> str:
    return domain.replace(":", "-") if domain != DOCKER_HUB else "docker.io"


def _exists(host: str, path: str, tag: str) -> bool:
    request = urllib.request.Request(f"http://{host}/v2/{path}/manifests/{tag}", method="HEAD",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=5):
            return True
    except urllib.error.HTTPError:
        return False


def push_missing(host: str, images: Iterable[str]) -> int:
    pushed = 0
    for reference in images:
        ref = parse_image(reference)
        if ref.domain.startswith("127.") or ref.digest:
            continue  # loopback images are the tests' own; digest references cannot be made up
        path, tag = f"{_prefix(ref.domain)}/{ref.path}", ref.tag or "latest"
        if not _exists(host, path, tag):
            push_image(host, path, tag, content=f"stackyard local mirror: {ref}".encode())
            pushed += 1
    return pushed


def push_images(mirrors: str, references: Iterable[str]) -> int:
    """What CI's image build does, against the mirror: push a small image under each reference
    (to the mirror host that ``mirrors`` maps its registry to). Returns how many were new."""
    located = parse_mirrors(mirrors)
    pushed = 0
    for reference in references:
        ref = parse_image(reference)
        mirror = located.get(ref.domain)
        if mirror is None:
            raise ValueError(f"{reference}: no mirror for {ref.domain} in {mirrors!r}")
        target = mirror.locate(ref)
        if not _exists(target.domain, target.path, target.tag or "latest"):
            push_image(target.domain, target.path, target.tag or "latest", content=f"stackyard local mirror: {ref}".encode())
            pushed += 1
    return pushed


def pulled_digest(mirrors: str):
    """For the kube sandbox (``Sandbox(image_digest=...)``): the digest a runtime pulling a tag
    through these mirrors gets now, so pods' ``imageID`` is the mirror's content (None when the
    mirror does not have it). Not cached: a tag pushed again shows in the next pod that starts."""
    from stackyard.adapters.image_registry import ImageResolver

    located = parse_mirrors(mirrors)

    def digest(reference: str) -> str | None:
        try:
            if parse_image(reference).domain not in located:
                return None  # only the mirror is asked: the tests' made-up registries do not exist
            return ImageResolver(mirrors=located, timeout=2.0).resolve(reference).digest
        except Exception:  # noqa: BLE001 - not in the mirror: the sandbox makes one up
            return None

    return digest


@contextlib.contextmanager
def serve(home: Path, images: Iterable[str] | None = None) -> Iterator[str]:
    """Serve the mirror; yields the ``STACKYARD_IMAGE_MIRRORS`` value for the processes that use it."""
    images = list(example_images() if images is None else images)
    with local_oci_registry(store_dir(home)) as host:
        push_missing(host, images)
        yield mirrors_for(host, images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.image_mirror", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["seed", "list"])
    parser.add_argument("--home", type=Path, default=ROOT / ".stackyard")
    args = parser.parse_args(argv)
    images = example_images()
    if args.command == "list":
        print("\n".join(images))
        return 0
    with local_oci_registry(store_dir(args.home)) as host:
        pushed = push_missing(host, images)
    print(f"image mirror: {len(images)} images ({pushed} new) in {store_dir(args.home)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
