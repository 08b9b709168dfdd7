"""The gate's system tests: a release's test hooks run concurrently, each to its end.

Same tests and same verdict as ``helm test`` (rules in :mod:`stackyard.core.system_tests`), but
they run side by side (``STACKYARD_GATE_TEST_PARALLELISM`` at once), the changed service's first,
and the report names every failure instead of the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stackyard.adapters.helm import DEFAULT_TIMEOUT
from stackyard.airflow.operators.helm import TEST_OUTPUT_XCOM_KEY, _HelmOperator
from stackyard.core import system_tests as rules
from stackyard.steps.system_tests import run_tests


class ParallelHelmTestOperator(_HelmOperator):
    """Runs the release's ``helm.sh/hook: test`` resources in parallel; fails when one fails.

    With ``chart_ref``/``chart`` and ``profile`` it first learns the deployment's secrets (values
    discarded) so logs that echo one are redacted. Pushes ``test_run`` (``release``,
    ``namespace``, ``passed``, ``output`` in ``helm test``'s shape, and ``tests``: one small
    record per test) to XCom, pass or fail, and returns it.
    """

    template_fields: Sequence[str] = ("release", "namespace", "timeout", "chart", "chart_ref", "profile",
                                      "changed_service")

    def __init__(self, *, release: str, namespace: str, timeout: str = DEFAULT_TIMEOUT,
                 chart: str | None = None, chart_ref: str | None = None, profile: str | None = None,
                 changed_service: str | None = None, parallelism: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release, self.namespace, self.timeout = release, namespace, timeout
        self.chart, self.chart_ref, self.profile = chart, chart_ref, profile
        self.changed_service, self.parallelism = changed_service, parallelism

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        from stackyard.adapters.test_hooks import KubeTestHooks

        timeout = rules.go_duration_seconds(self.timeout)
        parallelism = self.parallelism or self.settings.gate_test_parallelism
        with self.helm_hook.helm() as helm:
            if self.profile and (self.chart or self.chart_ref):
                package = self.package(helm, self.chart, self.chart_ref)
                self.values_layers(package, profile=self.profile, stack="", namespace=self.namespace)
            hooks = rules.test_hooks(helm.release_hooks(self.release, namespace=self.namespace))
        groups = rules.plan(hooks, self.changed_service or None)
        self.log.info("%d test(s) of %s in %d weight group(s), %d at once; %s first", len(hooks), self.release,
                      len(groups), parallelism, self.changed_service or "no service")
        api_client = KubernetesHook(conn_id=self.kubernetes_conn_id or self.settings.kubernetes_conn_id).api_client
        results = run_tests(groups, KubeTestHooks(api_client, self.namespace), parallelism=parallelism,
                            timeout_seconds=timeout, on_result=self._log_result)
        outcome = rules.verdict(hooks, results)
        result = {
            "release": self.release, "namespace": self.namespace, "passed": outcome.passed,
            "output": rules.report(self.release, self.namespace, results),
            "tests": [r.to_dict() for r in results],
        }
        context["ti"].xcom_push(key=TEST_OUTPUT_XCOM_KEY, value=result)
        if not outcome.passed:
            failed = ", ".join([*outcome.failed, *outcome.missing])
            raise RuntimeError(f"system tests of {self.release} in {self.namespace} failed: {failed}")
        return result

    def _log_result(self, result: rules.TestResult) -> None:
        service = result.service or "(umbrella)"
        reason = f" — {result.reason}" if result.reason else ""
        self.log.info("test %s (%s, %s, weight %d): %s in %.1fs%s", result.name, service, result.kind, result.weight,
                      result.phase.value, result.seconds, reason)
        if result.logs:
            self.log.info("logs of %s:\n%s", result.name, result.logs)
