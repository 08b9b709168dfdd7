"""Operators that act on a release: upgrade (with profile values and secrets) and test.

Each owns one action. Values, including decrypted secrets, exist only in memory: this process's
and, through an anonymous in-memory file, helm's (see :mod:`stackyard.adapters.helm`); nothing
survives a SIGKILL of the task. XCom gets a digest of them. Every task start sweeps the values
directories older stackyard versions left in the temp directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from stackyard.core.deployment import deployment_layers, values_digest
from stackyard.core.values import ValuesLayer, compose
from stackyard.exceptions import InputError
from stackyard.airflow.hooks.helm import HelmHook
from stackyard.airflow.operators._base import StackyardOperator
from stackyard.airflow.hooks.sops import SopsHook
from stackyard.airflow.stores import image_resolver_for, registry_for
from stackyard.steps.images import check_package_images, package_digests
from stackyard.settings import Settings
from stackyard.steps import preflight
from stackyard.adapters.helm import DEFAULT_TIMEOUT, Helm, sweep_leftovers

TEST_OUTPUT_XCOM_KEY = "test_run"


class _HelmOperator(StackyardOperator):
    ui_color = "#0f1689"
    ui_fgcolor = "#ffffff"

    def __init__(self, *, kubernetes_conn_id: str | None = None, sops_conn_id: str | None = None,
                 aws_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.sops_conn_id, self.aws_conn_id = sops_conn_id, aws_conn_id

    def pre_execute(self, context: Any) -> None:
        for path in sweep_leftovers():
            self.log.warning("removed %s, left behind by a killed task", path)
        super().pre_execute(context)

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env()

    @cached_property
    def helm_hook(self) -> HelmHook:
        return HelmHook(self.kubernetes_conn_id or self.settings.kubernetes_conn_id,
                        plain_http=self.settings.registry_plain_http,
                        aws_conn_id=self.aws_conn_id or self.settings.aws_conn_id)

    @cached_property
    def sops_hook(self) -> SopsHook:
        return SopsHook(self.sops_conn_id or self.settings.sops_conn_id, self.aws_conn_id or self.settings.aws_conn_id)

    def package(self, helm: Helm, chart: str | None, chart_ref: str | None) -> Path:
        """The packaged chart: a local file (``chart``) or ``name:version`` from the registry."""
        if bool(chart) == bool(chart_ref):
            raise InputError(f"{self.task_id}: give exactly one of chart (a .tgz path) or chart_ref (name:version)")
        if chart:
            if not Path(chart).is_file():
                raise InputError(f"{self.task_id}: chart package {chart} does not exist")
            return Path(chart)
        name, sep, version = chart_ref.partition(":")
        if not sep:
            raise InputError(f"{self.task_id}: chart_ref {chart_ref!r} is not name:version")
        return registry_for(self.settings, helm).fetch(name, version)

    def values_layers(self, package: Path, *, profile: str, stack: str, namespace: str):
        return deployment_layers(
            package.read_bytes(), origin=package.name, profile=profile, stack=stack, namespace=namespace,
            decrypt=self.sops_hook.decrypt_profile,
        )

    def on_kill(self) -> None:
        self.helm_hook.kill()
        self.sops_hook.kill()


class HelmUpgradeOperator(_HelmOperator):
    """``helm upgrade --install`` of a packaged chart (a service or an umbrella) with a profile.

    ``values_overrides`` (plain, non-secret values such as a canary's ``canary.enabled``) is
    applied after every other layer. Before helm runs, the chart is rendered with the same values:
    cluster-wide objects another stack owns are refused, and its CRDs are installed by stackyard
    (upgraded only if ``crd_upgrades``; docs/chart-contract.md) and left out of the release.
    With ``pin_images`` every container runs at the digest its chart locked (docs/images.md); an
    image that cannot be pinned refuses the deploy before anything changes.
    Returns ``{release, namespace, revision, chart, status, values_digest, crds, pinned_images}``.
    """

    template_fields: Sequence[str] = ("release", "chart", "chart_ref", "namespace", "profile", "stack", "timeout")

    def __init__(
        self,
        *,
        release: str,
        namespace: str,
        profile: str,
        stack: str,
        chart: str | None = None,
        chart_ref: str | None = None,
        timeout: str = DEFAULT_TIMEOUT,
        wait: bool = True,
        create_namespace: bool = False,
        values_overrides: dict[str, Any] | None = None,
        crd_upgrades: bool = True,
        pin_images: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.release, self.chart, self.chart_ref, self.namespace = release, chart, chart_ref, namespace
        self.profile, self.stack, self.timeout = profile, stack, timeout
        self.wait, self.create_namespace = wait, create_namespace
        self.values_overrides = values_overrides
        self.crd_upgrades = crd_upgrades
        self.pin_images = pin_images

    def perform(self, context: Any) -> dict[str, Any]:
        with self.helm_hook.helm(stack=self.stack) as helm:
            package = self.package(helm, self.chart, self.chart_ref)
            # Images first: a pinned tag that moved (or vanished) refuses the deploy before anything changes.
            checked = check_package_images(package.read_bytes(), profile=self.profile, resolver=image_resolver_for(self.settings),
                                           origin=package.name, what=f"{self.release} in {self.namespace}")
            self.log.info("%d pinned image(s) still at their digests", checked)
            layers = self.values_layers(package, profile=self.profile, stack=self.stack, namespace=self.namespace)
            if self.values_overrides:
                layers.append(ValuesLayer("overrides", self.values_overrides))
            self.log.info("values layers, lowest first: %s", ", ".join(layer.source for layer in layers))
            values = compose(layers)
            # A collision or a refused CRD change is an InputError: the operator base fails it at
            # once (a retry cannot fix it).
            digests = package_digests(package.read_bytes(), origin=package.name) if self.pin_images else None
            prepared = preflight.prepare(
                helm, self.helm_hook.cluster(), package, release=self.release, namespace=self.namespace,
                values=values, may_upgrade_crds=self.crd_upgrades, log=self.log.info, image_digests=digests,
            )
            for image in prepared["pinned_images"]:
                self.log.info("runs pinned image %s", image)
            release = helm.upgrade_install(
                self.release, package, namespace=self.namespace,
                values=values,
                wait=self.wait, timeout=self.timeout, create_namespace=self.create_namespace, without_crds=True,
                image_digests=digests,
            )
        return {
            "release": release.name, "namespace": release.namespace, "revision": release.revision,
            "chart": release.chart, "status": release.status, "values_digest": values_digest(values),
            "crds": prepared["crds"], "pinned_images": len(prepared["pinned_images"]),
        }


class HelmTestOperator(_HelmOperator):
    """``helm test --logs``; the test pods' logs go to the task log. Fails when a test fails.

    With ``chart_ref``/``chart`` and ``profile`` it first learns the deployment's secrets (values
    discarded), so test logs that echo one are redacted here too. The redacted tail of the
    output is pushed to XCom under ``test_run`` for the gate's report, pass or fail.
    """

    template_fields: Sequence[str] = ("release", "namespace", "timeout", "chart", "chart_ref", "profile")

    def __init__(self, *, release: str, namespace: str, timeout: str = DEFAULT_TIMEOUT,
                 chart: str | None = None, chart_ref: str | None = None, profile: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release, self.namespace, self.timeout = release, namespace, timeout
        self.chart, self.chart_ref, self.profile = chart, chart_ref, profile

    def perform(self, context: Any) -> dict[str, Any]:
        with self.helm_hook.helm() as helm:
            if self.profile and (self.chart or self.chart_ref):
                package = self.package(helm, self.chart, self.chart_ref)
                self.values_layers(package, profile=self.profile, stack="", namespace=self.namespace)
            run = helm.test(self.release, namespace=self.namespace, timeout=self.timeout)
        result = {"release": self.release, "namespace": self.namespace, "passed": run.passed, "output": run.output}
        context["ti"].xcom_push(key=TEST_OUTPUT_XCOM_KEY, value=result)
        if not run.passed:
            raise RuntimeError(f"helm test of {self.release} in {self.namespace} failed:\n{run.output}")
        return result
