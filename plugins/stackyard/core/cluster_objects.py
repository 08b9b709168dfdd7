"""What a rendered release puts on the cluster outside its namespace: the stack-isolation and
CRD rules of docs/chart-contract.md.

- Each stack's release name is its own (:func:`stack_release`), so two stacks of one L3 never
  ask for the same release-named cluster-scoped objects.
- Before a deploy, every cluster-scoped object of the render is compared with the live one:
  an object owned by another release (helm's ``meta.helm.sh/release-*`` annotations) is a
  collision, refused naming both stacks (:func:`collisions`).
- CRDs are cluster infrastructure: split out of every release (:func:`split_crds`), applied by
  stackyard with a label and annotations naming the chart and version that brought them, never
  downgraded nor losing a version (:func:`crd_plan`).

Pure: callers pass the scopes the cluster's discovery reports and the live objects.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from stackyard.core.versions import compare_semver, is_semver
from stackyard.exceptions import InputError

MAX_RELEASE_NAME = 53  # helm's limit

ANNOTATION_RELEASE_NAME = "meta.helm.sh/release-name"
ANNOTATION_RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
ANNOTATION_HELM_RESOURCE_POLICY = "helm.sh/resource-policy"
CRD_KIND = "CustomResourceDefinition"
CRD_API_GROUP = "apiextensions.k8s.io"
FIELD_MANAGER = "stackyard"
LABEL_CRD_MANAGED = "stackyard.io/crd"
ANNOTATION_CRD_CHART = "stackyard.io/crd-chart"
ANNOTATION_CRD_CHART_VERSION = "stackyard.io/crd-chart-version"
_SOURCE = re.compile(r"^# Source: (\S+)", re.MULTILINE)
_DOC_SPLIT = re.compile(r"^---[ \t]*$", re.MULTILINE)


def stack_release(namespace: str) -> str:
    """The umbrella release of the stack in ``namespace``: the namespace name itself, or (past
    helm's 53 characters) its first 44 characters and 8 hex of its hash: unique per stack."""
    if len(namespace) <= MAX_RELEASE_NAME:
        return namespace
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:8]
    return f"{namespace[:MAX_RELEASE_NAME - 9].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class Rendered:
    """One object of a render, with the chart path helm's ``# Source:`` comment names."""

    body: dict[str, Any]
    source: str = ""

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion") or "")

    @property
    def kind(self) -> str:
        return str(self.body.get("kind") or "")

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name") or "")

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    @property
    def chart(self) -> str:
        """The (sub)chart that brought it: the last ``charts/<name>`` of the source path, else
        the top chart's name."""
        parts = self.source.split("/")
        names = [parts[i + 1] for i, part in enumerate(parts[:-1]) if part == "charts"]
        return names[-1] if names else (parts[0] if self.source else "")

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def parse_render(text: str) -> list[Rendered]:
    """The objects of ``helm template`` output (``List`` kinds expanded); InputError if not YAML."""
    out: list[Rendered] = []
    for chunk in _DOC_SPLIT.split(text):
        source = _SOURCE.search(chunk)
        try:
            doc = yaml.safe_load(chunk)
        except yaml.YAMLError as exc:
            where = f" ({source.group(1)})" if source else ""
            raise InputError(f"the rendered chart is not valid YAML{where}: {exc}") from None
        if not isinstance(doc, dict):
            continue
        items = doc.get("items") if str(doc.get("kind", "")).endswith("List") else [doc]
        out += [Rendered(item, source.group(1) if source else "") for item in items or [] if isinstance(item, dict)]
    return out


def is_crd(obj: Rendered) -> bool:
    return obj.kind == CRD_KIND and obj.group == CRD_API_GROUP


def split_crds(objects: Iterable[Rendered]) -> tuple[list[Rendered], list[Rendered]]:
    """(CRDs, everything else)."""
    objects = list(objects)
    return [o for o in objects if is_crd(o)], [o for o in objects if not is_crd(o)]


def without_crds(text: str) -> str:
    """``text`` (a multi-document YAML stream) minus its CRD documents, the others byte for byte:
    what the post-renderer hands helm, so a stack's release never owns a CRD."""
    kept = []
    for chunk in _DOC_SPLIT.split(text):
        try:
            doc = yaml.safe_load(chunk)
        except yaml.YAMLError:
            doc = None  # not ours to judge: helm reports it
        if isinstance(doc, dict) and doc.get("kind") == CRD_KIND and str(doc.get("apiVersion", "")).startswith(
                f"{CRD_API_GROUP}/"):
            continue
        kept.append(chunk)
    return "---".join(kept)


#: (group, kind) → True if namespaced, False if cluster-scoped, None if the cluster does not know it.
Scopes = Callable[[str, str], "bool | None"]


def cluster_scoped(objects: Iterable[Rendered], scopes: Scopes, crds: Iterable[Rendered] = ()) -> list[Rendered]:
    """The objects that live outside any namespace. The cluster's discovery decides; kinds it
    does not serve yet are decided by the render's own CRDs (``spec.scope``); others are left
    to helm (which reports them)."""
    declared = {
        (str((c.body.get("spec") or {}).get("group") or ""),
         str(((c.body.get("spec") or {}).get("names") or {}).get("kind") or "")):
            (c.body.get("spec") or {}).get("scope", "Namespaced") == "Namespaced"
        for c in crds
    }
    out = []
    for obj in objects:
        namespaced = scopes(obj.group, obj.kind)
        if namespaced is None:
            namespaced = declared.get((obj.group, obj.kind))
        if namespaced is False:
            out.append(obj)
    return out


def owner_of(live: Mapping[str, Any]) -> tuple[str, str] | None:
    """(release, namespace) that owns a live object, from helm's annotations; None if no release."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    name = annotations.get(ANNOTATION_RELEASE_NAME)
    return (name, annotations.get(ANNOTATION_RELEASE_NAMESPACE, "")) if name else None


def collisions(
    wanted: Iterable[Rendered], live: Callable[[Rendered], Mapping[str, Any] | None], *, release: str, namespace: str,
) -> list[str]:
    """One message per cluster-scoped object that exists and is not this release's."""
    problems = []
    for obj in wanted:
        current = live(obj)
        if current is None:
            continue
        owner = owner_of(current)
        if owner == (release, namespace):
            continue
        mine = f"release {release} of stack {namespace}"
        if owner is None:
            problems.append(f"{obj} ({obj.source or 'the chart'}) already exists on the cluster and belongs to no "
                            f"helm release; {mine} would take it over")
        else:
            problems.append(f"{obj} ({obj.source or 'the chart'}) is owned by release {owner[0]} of stack "
                            f"{owner[1] or '(unknown namespace)'}; {mine} wants the same object")
    return problems


# --- CRDs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrdAction:
    """What stackyard does with one CRD a deploy brings: ``install``, ``upgrade`` or ``keep``."""

    action: str
    crd: Rendered
    chart: str
    chart_version: str
    reason: str

    def body(self) -> dict[str, Any]:
        """The object stackyard applies: the chart's CRD plus the marks naming where it came from."""
        body = {k: v for k, v in self.crd.body.items() if k != "status"}
        meta = dict(body.get("metadata") or {})
        labels = dict(meta.get("labels") or {})
        labels[LABEL_CRD_MANAGED] = "true"
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k not in (ANNOTATION_RELEASE_NAME, ANNOTATION_RELEASE_NAMESPACE)}
        annotations[ANNOTATION_CRD_CHART] = self.chart
        annotations[ANNOTATION_CRD_CHART_VERSION] = self.chart_version
        # helm deletes what leaves a release's manifest unless the live object says keep: a
        # release that still lists this CRD (deployed before this policy) must not remove it.
        annotations[ANNOTATION_HELM_RESOURCE_POLICY] = "keep"
        meta.update(labels=labels, annotations=annotations)
        body["metadata"] = meta
        return body


def crd_versions(body: Mapping[str, Any]) -> list[str]:
    return [str(v.get("name")) for v in (body.get("spec") or {}).get("versions") or [] if isinstance(v, Mapping)]


def crd_plan(
    crds: Iterable[Rendered], live: Callable[[str], Mapping[str, Any] | None], chart_versions: Mapping[str, str],
    *, may_upgrade: bool, who: str, live_by_chart: Mapping[str, list[Mapping[str, Any]]] | None = None,
) -> list[CrdAction]:
    """Per CRD of the render: install when absent, upgrade when its chart is newer than the one
    that installed it (only if ``may_upgrade``: the gate and rollouts of promoted versions),
    keep when equal or older-but-compatible. Raises InputError, naming the CRD, the charts and
    ``who`` asks, for a downgrade, a removed stored version, a CRD its chart no longer brings, or
    an upgrade asked outside the gate."""
    actions, problems = [], []
    wanted_names: dict[str, set[str]] = {}
    for crd in crds:
        chart = crd.chart
        version = chart_versions.get(chart, "")
        wanted_names.setdefault(chart, set()).add(crd.name)
        current = live(crd.name)
        if current is None:
            actions.append(CrdAction("install", crd, chart, version, "not on the cluster yet"))
            continue
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        had_chart = annotations.get(ANNOTATION_CRD_CHART)
        had_version = annotations.get(ANNOTATION_CRD_CHART_VERSION, "")
        stored = list((current.get("status") or {}).get("storedVersions") or crd_versions(current))
        lost = [v for v in stored if v not in crd_versions(crd.body)]
        origin = f"{had_chart} {had_version}" if had_chart else "outside stackyard"
        if lost:
            problems.append(f"CRD {crd.name}: {chart} {version} drops version(s) {', '.join(lost)} that the cluster "
                            f"stores (installed by {origin}); a CRD must keep every stored version")
            continue
        if had_chart and had_chart != chart:
            problems.append(f"CRD {crd.name}: {who} brings it from {chart} {version} but {origin} installed it; "
                            "one CRD has one chart")
            continue
        if not had_chart and not may_upgrade:
            actions.append(CrdAction("keep", crd, chart, version, "managed outside stackyard; left as it is"))
            continue
        order = _order(version, had_version) if had_chart else 1
        if order < 0:
            problems.append(f"CRD {crd.name}: {who} brings it from {chart} {version}, older than {had_chart} "
                            f"{had_version} that installed it; CRD downgrades are refused")
        elif order == 0:
            actions.append(CrdAction("keep", crd, chart, version, f"installed by {origin}"))
        elif not may_upgrade:
            problems.append(f"CRD {crd.name}: {who} brings it from {chart} {version}, newer than {origin}; a CRD "
                            "change reaches the cluster only through the L3 gate (gate that chart version first)")
        else:
            actions.append(CrdAction("upgrade", crd, chart, version, f"replaces {origin}"))
    for chart, lives in (live_by_chart or {}).items():
        if chart not in wanted_names:
            continue
        for current in lives:
            name = (current.get("metadata") or {}).get("name", "")
            if name not in wanted_names[chart]:
                problems.append(f"CRD {name}: {who} deploys {chart} {chart_versions.get(chart, '')} which no longer "
                                "brings it; stackyard never removes a CRD (remove it by hand once nothing uses it)")
    if problems:
        raise InputError("CRDs refused:\n  " + "\n  ".join(problems))
    return actions


def _order(new: str, old: str) -> int:
    if is_semver(new) and is_semver(old):
        return compare_semver(new, old)
    return 0 if new == old else 1
