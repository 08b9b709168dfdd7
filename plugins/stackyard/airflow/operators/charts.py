"""Operators on artifacts: package and publish a service chart, decrypt-check a profile."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from stackyard.core.charts import content_digest, load_chart
from stackyard.core.deployment import values_digest
from stackyard.exceptions import InputError
from stackyard.airflow.hooks.helm import HelmHook
from stackyard.airflow.hooks.sops import SopsHook
from stackyard.airflow.stores import image_resolver_for, registry_for
from stackyard.steps.publishing import check_chart, publish_chart, registry_stacks
from stackyard.settings import Settings


class ChartPackageOperator(BaseOperator):
    """``helm package`` after the profile checks, into ``destination``; returns ``{path, digest}``.

    For pipelines that test a package before publishing it; ChartPublishOperator does both.
    """

    template_fields: Sequence[str] = ("chart_dir", "destination")

    def __init__(self, *, chart_dir: str, destination: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chart_dir, self.destination = chart_dir, destination

    @cached_property
    def helm_hook(self) -> HelmHook:
        return HelmHook(kubernetes_conn_id=None)

    def execute(self, context: Any) -> dict[str, str]:
        check_chart(self.chart_dir, registry_stacks(Settings.from_env().stacks_file))
        Path(self.destination).mkdir(parents=True, exist_ok=True)
        with self.helm_hook.helm() as helm:
            package = helm.package(self.chart_dir, self.destination)
        return {"path": str(package), "digest": content_digest(package.read_bytes())}

    def on_kill(self) -> None:
        self.helm_hook.kill()


class ChartPublishOperator(BaseOperator):
    """Lint, check profiles, package with ``profiles/`` inside and publish immutably.

    Returns ``{name, version, digest}``.
    """

    template_fields: Sequence[str] = ("chart_dir",)

    def __init__(self, *, chart_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chart_dir = chart_dir

    @cached_property
    def helm_hook(self) -> HelmHook:
        return HelmHook(kubernetes_conn_id=None, plain_http=Settings.from_env().registry_plain_http)

    def execute(self, context: Any) -> dict[str, str]:
        settings = Settings.from_env()
        with self.helm_hook.helm() as helm:
            ref = publish_chart(self.chart_dir, registry=registry_for(settings, helm), helm=helm,
                                images=image_resolver_for(settings), stacks=registry_stacks(settings.stacks_file))
        self.log.info("published %s", ref)
        return {"name": ref.name, "version": ref.version, "digest": ref.digest}

    def on_kill(self) -> None:
        self.helm_hook.kill()


class SopsDecryptOperator(BaseOperator):
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

    def execute(self, context: Any) -> dict[str, str]:
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
