"""The gate's system tests: a release's test hooks run concurrently, each to its end, and the
gate's own suite pod.

Same tests and same verdict as ``helm test`` (rules in :mod:`stackyard.core.system_tests`), but
they run side by side (``STACKYARD_GATE_TEST_PARALLELISM`` at once), the changed service's first,
and the report names every failure instead of the first.

The kubernetes client is imported when a task runs, never when the DAG file is parsed: every task
process of a DAG parses its file, and the cncf-kubernetes pod operator's imports (kubernetes,
kubernetes_asyncio, aiohttp) cost each of them more than a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stackyard.adapters.helm import DEFAULT_TIMEOUT
from stackyard.airflow.operators.helm import TEST_OUTPUT_XCOM_KEY, _HelmOperator
from stackyard.core import system_tests as rules
from stackyard.steps.system_tests import Cancelled, run_tests


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

    def perform(self, context: Any) -> dict[str, Any]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        from stackyard.adapters.test_hooks import KubeTestHooks

        timeout = rules.go_duration_seconds(self.timeout)
        parallelism = self.parallelism or self.settings.gate_test_parallelism
        self._stop_if_asked(context)
        with self.helm_hook.helm() as helm:
            if self.profile and (self.chart or self.chart_ref):
                package = self.package(helm, self.chart, self.chart_ref)
                self.values_layers(package, profile=self.profile, stack="", namespace=self.namespace)
                self._stop_if_asked(context)
            hooks = rules.test_hooks(helm.release_hooks(self.release, namespace=self.namespace))
        groups = rules.plan(hooks, self.changed_service or None)
        self.log.info("%d test(s) of %s in %d weight group(s), %d at once; %s first", len(hooks), self.release,
                      len(groups), parallelism, self.changed_service or "no service")
        api_client = KubernetesHook(conn_id=self.kubernetes_conn_id or self.settings.kubernetes_conn_id).api_client
        results = run_tests(groups, KubeTestHooks(api_client, self.namespace), parallelism=parallelism,
                            timeout_seconds=timeout, on_result=lambda result: self.on_result(context, result),
                            stop=lambda: self.stop_reason(context))
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

    def on_result(self, context: Any, result: rules.TestResult) -> None:
        """Each test's outcome as it ends (logged; a subclass may act on a failure at once)."""
        log_result(self.log, result)

    def stop_reason(self, context: Any) -> str | None:
        """Why the run should stop before its end (asked before the tests start and once per
        poll; a reason raises ``Cancelled``)."""
        return None

    def _stop_if_asked(self, context: Any) -> None:
        if reason := self.stop_reason(context):
            raise Cancelled(reason, [])


class SystemTestSuiteOperator(_HelmOperator):
    """The gate's system-test suite (``include/gate.yaml``) as one pod in the candidate's stack.

    Its logs go to the task log, it is deleted after either outcome, and a failure fails the task.
    The pod gets ``STACKYARD_STACK`` and ``STACKYARD_MANIFEST_VERSION`` in its environment.
    """

    template_fields: Sequence[str] = ("namespace", "manifest_version")
    POD_NAME = "system-tests"
    #: Time for the pod to be scheduled and its image pulled, on top of the suite's own timeout.
    STARTUP_SECONDS = 300

    def __init__(self, *, suite: Any, namespace: str, manifest_version: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite, self.namespace, self.manifest_version = suite, namespace, manifest_version

    def perform(self, context: Any) -> dict[str, Any]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        from stackyard.adapters.test_hooks import KubeTestHooks

        pod = rules.pod_test(
            self.POD_NAME, image=self.suite.image, command=self.suite.cmds, args=self.suite.arguments,
            env={"STACKYARD_STACK": self.namespace, "STACKYARD_MANIFEST_VERSION": str(self.manifest_version)},
            labels={"app.kubernetes.io/managed-by": "stackyard", "stackyard.io/purpose": "system-tests"},
            annotations=dict(self.suite.annotations), deadline_seconds=self.suite.timeout_seconds,
        )
        api_client = KubernetesHook(conn_id=self.kubernetes_conn_id or self.settings.kubernetes_conn_id).api_client
        (result,) = run_tests([[pod]], KubeTestHooks(api_client, self.namespace), parallelism=1,
                              timeout_seconds=self.suite.timeout_seconds + self.STARTUP_SECONDS,
                              on_result=self._log_result, log_lines=10_000)
        if result.phase is not rules.Phase.SUCCEEDED:
            raise RuntimeError(f"the system test suite failed in {self.namespace}: {result.reason or 'see its logs'}")
        return {"namespace": self.namespace, "passed": True, "seconds": round(result.seconds, 2)}

    def _log_result(self, result: rules.TestResult) -> None:
        log_result(self.log, result)


def log_result(log: Any, result: rules.TestResult) -> None:
    """One test's outcome, duration and (redacted) logs in the task log, as it finishes."""
    service = result.service or "(umbrella)"
    reason = f" — {result.reason}" if result.reason else ""
    log.info("test %s (%s, %s, weight %d): %s in %.1fs%s", result.name, service, result.kind, result.weight,
             result.phase.value, result.seconds, reason)
    if result.logs:
        log.info("logs of %s:\n%s", result.name, result.logs)
