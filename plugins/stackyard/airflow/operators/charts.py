"""Operators on artifacts: decrypt-check a profile (publishing is ``stackyard chart publish`` in CI)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from stackyard.core.charts import load_chart
from stackyard.core.deployment import values_digest
from stackyard.exceptions import InputError
from stackyard.airflow.hooks.helm import HelmHook
from stackyard.airflow.hooks.sops import SopsHook
from stackyard.airflow.operators._base import StackyardOperator
from stackyard.airflow.stores import registry_for
from stackyard.settings import Settings


class SopsDecryptOperator(StackyardOperator):
    """Proves a profile's secrets decrypt with this deployment's keys, before anything is changed.

    ``chart`` is a chart directory or package, or ``chart_ref`` a published ``name:version``.
    Plaintext never leaves the task: it returns ``{source, values_digest}`` only.
    """

    template_fields: Sequence[str] = ("chart", "chart_ref", "profile")

    def __init__(self, *, profile: str, chart: str | None = None, chart_ref: str | None = None,
                 sops_conn_id: str | None = None, aws_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chart, self.chart_ref, self.profile = chart, chart_ref, profile
        self.sops_conn_id, self.aws_conn_id = sops_conn_id, aws_conn_id

    @cached_property
    def sops_hook(self) -> SopsHook:
        settings = Settings.from_env()
        return SopsHook(self.sops_conn_id or settings.sops_conn_id, self.aws_conn_id or settings.aws_conn_id)

    def perform(self, context: Any) -> dict[str, str]:
        if bool(self.chart) == bool(self.chart_ref):
            raise InputError(f"{self.task_id}: give exactly one of chart (a path) or chart_ref (name:version)")
        if self.chart:
            chart = load_chart(Path(self.chart))
        else:
            name, _, version = self.chart_ref.partition(":")
            settings = Settings.from_env()
            with HelmHook(None, plain_http=settings.registry_plain_http).helm() as helm:
                chart = load_chart(registry_for(settings, helm).fetch(name, version))
        profile = chart.profile(self.profile)
        values = self.sops_hook.decrypt_profile(profile)
        return {"source": profile.secrets_source, "values_digest": values_digest(values)}

    def on_kill(self) -> None:
        self.sops_hook.kill()
