"""Operators that act on a release: upgrade (with profile values and secrets), test, uninstall.

Each owns one action. Values, including decrypted secrets, exist in memory and in a 0600 file
inside a private directory for the life of the helm command only; XCom gets a digest of them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from stackyard.domain.deployment import deployment_layers, values_digest
from stackyard.domain.values import compose
from stackyard.exceptions import InputError
from stackyard.hooks.helm import HelmHook
from stackyard.hooks.sops import SopsHook
from stackyard.settings import Settings
from stackyard.tools.helm import DEFAULT_TIMEOUT


def write_private_values(values: dict[str, Any], directory: Path) -> Path:
    """Values as a 0600 file in ``directory`` (which the caller removes); JSON is valid YAML."""
    path = directory / "values.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return path


class _HelmOperator(BaseOperator):
    ui_color = "#0f1689"
    ui_fgcolor = "#ffffff"

    def __init__(self, *, kubernetes_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id

    @cached_property
    def helm_hook(self) -> HelmHook:
        return HelmHook(self.kubernetes_conn_id or Settings.from_env().kubernetes_conn_id)

    def on_kill(self) -> None:
        self.helm_hook.kill()


class HelmUpgradeOperator(_HelmOperator):
    """``helm upgrade --install`` of a packaged chart (a service or an umbrella) with a profile.

    Returns ``{release, namespace, revision, chart, status, values_digest}``.
    """

    template_fields: Sequence[str] = ("release", "chart", "namespace", "profile", "stack", "timeout")

    def __init__(
        self,
        *,
        release: str,
        chart: str,
        namespace: str,
        profile: str,
        stack: str,
        timeout: str = DEFAULT_TIMEOUT,
        wait: bool = True,
        create_namespace: bool = False,
        sops_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.release, self.chart, self.namespace = release, chart, namespace
        self.profile, self.stack, self.timeout = profile, stack, timeout
        self.wait, self.create_namespace = wait, create_namespace
        self.sops_conn_id, self.aws_conn_id = sops_conn_id, aws_conn_id

    @cached_property
    def sops_hook(self) -> SopsHook:
        settings = Settings.from_env()
        return SopsHook(self.sops_conn_id or settings.sops_conn_id, self.aws_conn_id or settings.aws_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        package = Path(self.chart)
        if not package.is_file():
            raise InputError(f"chart package {self.chart} does not exist")
        layers = deployment_layers(
            package.read_bytes(), origin=package.name, profile=self.profile,
            stack=self.stack, namespace=self.namespace, decrypt=self.sops_hook.decrypt_profile,
        )
        self.log.info("values layers, lowest first: %s", ", ".join(layer.source for layer in layers))
        values = compose(layers)
        with tempfile.TemporaryDirectory(prefix="stackyard-values-") as private, self.helm_hook.helm() as helm:
            release = helm.upgrade_install(
                self.release, package, namespace=self.namespace,
                values_files=[write_private_values(values, Path(private))],
                wait=self.wait, timeout=self.timeout, create_namespace=self.create_namespace,
            )
        return {
            "release": release.name, "namespace": release.namespace, "revision": release.revision,
            "chart": release.chart, "status": release.status, "values_digest": values_digest(values),
        }

    def on_kill(self) -> None:
        super().on_kill()
        self.sops_hook.kill()


class HelmTestOperator(_HelmOperator):
    """``helm test --logs``; the test pods' logs go to the task log. Fails when a test fails."""

    template_fields: Sequence[str] = ("release", "namespace", "timeout")

    def __init__(self, *, release: str, namespace: str, timeout: str = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release, self.namespace, self.timeout = release, namespace, timeout

    def execute(self, context: Any) -> dict[str, Any]:
        with self.helm_hook.helm() as helm:
            run = helm.test(self.release, namespace=self.namespace, timeout=self.timeout)
        if not run.passed:
            raise RuntimeError(f"helm test of {self.release} in {self.namespace} failed:\n{run.output}")
        return {"release": self.release, "namespace": self.namespace, "passed": True}


class HelmUninstallOperator(_HelmOperator):
    """``helm uninstall``; a release that is already gone is success (safe to retry)."""

    template_fields: Sequence[str] = ("release", "namespace")

    def __init__(self, *, release: str, namespace: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release, self.namespace = release, namespace

    def execute(self, context: Any) -> dict[str, Any]:
        with self.helm_hook.helm() as helm:
            removed = helm.uninstall(self.release, namespace=self.namespace)
        if not removed:
            self.log.info("release %s was not installed in %s; nothing to do", self.release, self.namespace)
        return {"release": self.release, "namespace": self.namespace, "removed": removed}
