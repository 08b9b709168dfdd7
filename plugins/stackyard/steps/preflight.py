"""Before a release is deployed: what it would put outside its namespace, checked against the
cluster, and the CRDs it brings applied by stackyard (docs/chart-contract.md).

Everything is checked before anything is changed: a collision or a refused CRD change raises
InputError (a retry cannot fix it) and the cluster is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stackyard.adapters.cluster import Cluster
from stackyard.adapters.helm import Helm
from stackyard.core.charts import load_chart_bytes, vendored_charts
from stackyard.core.cluster_objects import (
    ANNOTATION_CRD_CHART, cluster_scoped, collisions, crd_plan, parse_render, split_crds,
)
from stackyard.core.images import ChartDigests, pin_rendered
from stackyard.exceptions import InputError


def chart_versions(package: bytes, origin: str) -> dict[str, str]:
    """name → version of a package's chart and every chart it vendors."""
    top = load_chart_bytes(package, origin)
    return {top.name: top.version, **{c.name: c.version for c in vendored_charts(package, origin)}}


def prepare(
    helm: Helm, cluster: Cluster, package: Path, *, release: str, namespace: str,
    values: Mapping[str, Any] | None = None, values_files: Sequence[str | Path] = (), may_upgrade_crds: bool,
    log: Callable[[str], Any] = print, image_digests: ChartDigests | None = None,
) -> dict[str, Any]:
    """Render ``package`` as it will be deployed, refuse collisions, CRD changes the policy
    forbids and (with ``image_digests``) images that cannot run at a pinned digest, then install
    or upgrade its CRDs. Returns what was found and done."""
    text = helm.template(release, package, namespace=namespace, values_files=values_files,
                         values=values, include_crds=True)
    pinned: list[str] = []
    if image_digests is not None:
        result = pin_rendered(text, image_digests)
        if result.unpinnable:
            raise InputError(result.report(f"release {release} in {namespace} (pin_images)"))
        pinned = sorted({image for _, image in result.pinned})
    rendered = parse_render(text)
    crds, objects = split_crds(rendered)
    scoped = cluster_scoped(objects, cluster.scope, crds)
    problems = collisions(scoped, cluster.get_cluster_object, release=release, namespace=namespace)
    if problems:
        raise InputError(f"release {release} in {namespace} collides with another stack's cluster-wide objects:\n  "
                         + "\n  ".join(problems))
    actions = []
    if crds:
        by_chart: dict[str, list[Mapping[str, Any]]] = {}
        for live in cluster.stackyard_crds():
            chart = ((live.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_CRD_CHART)
            by_chart.setdefault(chart or "", []).append(live)
        actions = crd_plan(crds, cluster.get_crd, chart_versions(package.read_bytes(), package.name),
                           may_upgrade=may_upgrade_crds, who=f"stack {namespace}", live_by_chart=by_chart)
    for action in actions:
        if action.action != "keep":
            cluster.apply_crd(action.body())
        log(f"CRD {action.crd.name} ({action.chart} {action.chart_version}): {action.action}, {action.reason}")
    return {
        "cluster_scoped": [str(o) for o in scoped],
        "crds": {a.crd.name: a.action for a in actions},
        "pinned_images": pinned,
    }
