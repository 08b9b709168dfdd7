"""HelmRenderOperator: does a chart render for a stack type, with that profile's real secrets?

It runs ``helm lint`` and ``helm template`` with exactly the values a deployment would get and
reports what would be created (kinds and names). The rendered manifests themselves never leave
the task: they contain the decrypted secrets. Used by the ``profile_check`` DAG.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import yaml

from stackyard.core.deployment import values_digest
from stackyard.core.values import compose
from stackyard.airflow.operators.helm import _HelmOperator


class HelmRenderOperator(_HelmOperator):
    """Lint and render a packaged chart (file or ``chart_ref``) with a profile; returns a summary."""

    template_fields: Sequence[str] = ("chart", "chart_ref", "profile", "stack", "namespace")

    def __init__(self, *, profile: str, stack: str = "render", namespace: str = "render",
                 chart: str | None = None, chart_ref: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chart, self.chart_ref, self.profile = chart, chart_ref, profile
        self.stack, self.namespace = stack, namespace

    def perform(self, context: Any) -> dict[str, Any]:
        with self.helm_hook.helm() as helm:
            package = self.package(helm, self.chart, self.chart_ref)
            layers = self.values_layers(package, profile=self.profile, stack=self.stack, namespace=self.namespace)
            values = compose(layers)
            helm.lint(package, values=values)
            rendered = helm.template(self.stack, package, namespace=self.namespace, values=values)
        objects = [doc for doc in yaml.safe_load_all(rendered) if isinstance(doc, dict) and doc.get("kind")]
        kinds = Counter(doc["kind"] for doc in objects)
        for doc in objects:
            self.log.info("would create %s %s", doc["kind"], doc.get("metadata", {}).get("name"))
        return {"objects": len(objects), "kinds": dict(sorted(kinds.items())), "values_digest": values_digest(values)}
