"""The L3 gate's tasks. Each opens what it needs from settings and connections and delegates to
:mod:`stackyard.steps.gate`; XCom carries manifests (pins only) and names, never values.

Every task notes why it failed (``error`` in its XCom); ``deploy`` also notes the classified
helm failure (``failure``). ``reject`` records a rejection only for a verdict on the candidate;
``summary`` says how the run ended (docs/l3-gate.md, "Outcomes").
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.sdk import get_current_context, task

from stackyard.steps import gate as gate_steps
from stackyard.adapters import metrics
from stackyard.airflow import notify
from stackyard.core.cluster_objects import stack_release
from stackyard.core.manifest import Manifest
from stackyard.core.deploy_errors import classify, describe
from stackyard.core.records import DeployFailure, FailureKind, GateOutcome, GateReport, GateTests, VersionRef
from stackyard.core.ephemeral import (
    ANNOTATION_LAST_ACTIVITY, ANNOTATION_OWNER, ANNOTATION_TTL, Purpose, ephemeral_stack_metadata, gate_stack_name,
    timestamp,
)
from stackyard.exceptions import ConflictError, ToolError
from stackyard.airflow.hooks.helm import HelmHook
from stackyard.airflow.hooks.namespaces import StackHook
from stackyard.airflow.stores import manifest_store_for, registry_for
from stackyard.airflow.operators.helm import TEST_OUTPUT_XCOM_KEY, HelmUpgradeOperator
from stackyard.airflow.hooks.sops import SopsHook
from stackyard.steps.publishing import load_umbrella_template, registry_stacks
from stackyard.settings import Settings
from stackyard.airflow.operators._base import (
    ERROR_XCOM_KEY, NON_RETRYABLE, error_line, non_retryable, noting_failure,
)
from stackyard.airflow.operators._context import pulled, record_event, utc_now

PROFILE = gate_steps.PROFILE
KEEP_ON_FAILURE_TTL = "1d"
FAILURE_XCOM_KEY = "failure"


@task(retries=0)
@noting_failure
def validate() -> dict[str, Any]:
    """Refuses bad requests before anything exists: the error names the field."""
    context = get_current_context()
    settings = Settings.from_env()
    with non_retryable():
        request = gate_steps.GateRequest.from_params(context["params"])
        with HelmHook(None, plain_http=settings.registry_plain_http).helm() as helm:
            candidate = gate_steps.validate(
                request, store=manifest_store_for(settings), registry=registry_for(settings, helm),
                now=utc_now(), run_id=context["run_id"], stacks=registry_stacks(settings.stacks_file),
                decrypt=SopsHook(settings.sops_conn_id, settings.aws_conn_id).decrypt_profile,
            )
    print(f"candidate L3 v{candidate.version} = L3 v{candidate.parent} + {candidate.change} (id {candidate.candidate_id})")
    return candidate.to_dict()


@task
@noting_failure
def build_candidate(candidate: dict[str, Any]) -> dict[str, str]:
    settings = Settings.from_env()
    with HelmHook(None, plain_http=settings.registry_plain_http).helm() as helm:
        built = gate_steps.build_candidate(
            Manifest.from_dict(candidate), registry=registry_for(settings, helm),
            template=load_umbrella_template(settings.umbrella_template_dir),
        )
    print(f"candidate package {built['chart_ref']} {built['digest']}")
    return built


@task
@noting_failure
def create_stack(candidate: dict[str, Any]) -> dict[str, str]:
    """The namespace ``l3-<id>``, labelled so the nightly reaper can always remove it."""
    manifest = Manifest.from_dict(candidate)
    context = get_current_context()
    name = gate_stack_name(manifest.candidate_id)
    metadata = ephemeral_stack_metadata(
        owner=manifest.provenance.requested_by or "l3-gate", purpose=Purpose.L3_GATE,
        manifest_version=manifest.version, created=utc_now(), created_by=f"l3_gate/{context['run_id']}",
    )
    # The record proves stackyard made the namespace (the reaper deletes a kept stack only then).
    record_event(name, "created", owner=metadata.annotations.get(ANNOTATION_OWNER), purpose=Purpose.L3_GATE.value,
                 manifest_version=manifest.version)
    created = StackHook(Settings.from_env().kubernetes_conn_id).create(name, metadata)
    print(f"{'created' if created else 'reusing'} ephemeral stack {name}")
    return {"namespace": name, "release": stack_release(name)}


@task
@noting_failure
def promote(candidate: dict[str, Any], **context: Any) -> dict[str, Any]:
    """Compare-and-swap onto L3; if L3 moved meanwhile, skip, which starts ``requeue``."""
    manifest = Manifest.from_dict(candidate)
    try:
        promoted = manifest_store_for(Settings.from_env()).promote(manifest)
    except ConflictError as exc:
        context["ti"].xcom_push(key="conflict", value=str(exc))
        raise AirflowSkipException(f"not promoted: {exc}; a new gate run will test on the new L3") from None
    context["outlet_events"][context["task"].outlets[0]].extra = {"version": promoted.version}
    print(f"promoted: L3 is now v{promoted.version} ({promoted.change})")
    return {"version": promoted.version}


class CandidateDeployOperator(HelmUpgradeOperator):
    """``deploy``: the candidate umbrella into its stack, with helm's failure classified.

    A render or validation error fails at once (no retry can fix it) and is a rejection; a
    conflict with another owner's object fails at once and is an error; workloads not ready keep
    the task's retries and are a rejection; an API or cluster failure keeps its retries and is an
    error. The classified failure (:class:`~stackyard.core.records.DeployFailure`) goes to XCom
    under ``failure`` for ``reject`` and ``summary``.
    """

    def perform(self, context: Any) -> dict[str, Any]:
        try:
            return super().perform(context)
        except ToolError as exc:
            services = sorted((context["ti"].xcom_pull(task_ids="validate") or {}).get("services") or ())
            failure = classify(exc.output_tail, release=self.release, services=services)
            self._note(context, failure)
            if failure.kind in (FailureKind.RENDER, FailureKind.CONFLICT):
                raise AirflowFailException(f"deploy: {describe(failure)}") from exc
            raise
        except NON_RETRYABLE as exc:
            # The candidate's own profile or secrets cannot be used for this stack (a missing
            # profile, secrets encrypted to a key the gate may not use): a verdict on the chart.
            self._note(context, DeployFailure(kind=FailureKind.RENDER, helm_error=error_line(exc)))
            raise
        except Exception as exc:  # registry, key service, cluster: no verdict on the chart
            self._note(context, DeployFailure(kind=FailureKind.TRANSIENT, helm_error=error_line(exc)))
            raise

    @staticmethod
    def _note(context: Any, failure: DeployFailure) -> None:
        context["ti"].xcom_push(key=FAILURE_XCOM_KEY, value=failure.model_dump(mode="json"))


def system_test_suite(suite: gate_steps.SystemTestSuite, *, namespace: str, manifest_version: str):
    """The suite's pod in the candidate's stack; its logs stream into the task log."""
    from stackyard.airflow.operators.system_tests import SystemTestSuiteOperator

    return SystemTestSuiteOperator(task_id="system_test_suite", suite=suite, namespace=namespace,
                                   manifest_version=manifest_version, retries=0)


@task(trigger_rule="one_failed")
@noting_failure
def reject(candidate: dict[str, Any]) -> dict[str, Any]:
    """Records the rejected candidate, when the deploy or the tests failed for the candidate's
    own reasons; L3 is untouched. An infrastructure failure is no verdict: nothing is recorded."""
    if pulled("build_candidate") is None:
        raise AirflowSkipException("nothing was built, so nothing to reject")
    manifest = Manifest.from_dict(candidate)
    failure = pulled("deploy", FAILURE_XCOM_KEY)
    test_run = pulled("system_tests", TEST_OUTPUT_XCOM_KEY)
    verdict = gate_steps.rejection(
        deploy_failure=DeployFailure.model_validate(failure) if failure else None,
        test_run=test_run, suite_failed=bool(test_run and test_run.get("passed")),
    )
    if verdict is None:
        raise AirflowSkipException("not a verdict on the candidate (infrastructure failed): nothing is rejected")
    reason, report = verdict
    manifest_store_for(Settings.from_env()).record_rejection(manifest, reason, report)
    print(f"rejected {manifest.change}: {reason}; L3 stays v{manifest.parent}")
    # Best effort: a webhook outage never fails the gate (send logs and returns False).
    notify.send(notify.gate_rejected(manifest, reason, report.failed_tests, run_id=get_current_context()["run_id"]))
    return {"reason": reason, "failed_tests": report.failed_tests}


@task(trigger_rule="all_done")
@noting_failure
def teardown(**context: Any) -> dict[str, Any]:
    """Always removes the stack (a gone one is fine), unless asked to keep a failed one a day."""
    stack = pulled("create_stack")
    if not stack:
        return {"action": "none", "reason": "no stack was created"}
    name = stack["namespace"]
    hook = StackHook(Settings.from_env().kubernetes_conn_id)
    rejected = pulled("promote") is None and pulled("promote", "conflict") is None  # a requeue is no failure
    if context["params"].get("keep_stack_on_failure") and rejected:
        hook.annotate(name, {ANNOTATION_TTL: KEEP_ON_FAILURE_TTL, ANNOTATION_LAST_ACTIVITY: timestamp(utc_now())})
        print(f"kept stack {name} for inspection; the reaper removes it after {KEEP_ON_FAILURE_TTL}")
        return {"action": "kept", "namespace": name, "ttl": KEEP_ON_FAILURE_TTL}
    with HelmHook(Settings.from_env().kubernetes_conn_id).helm() as helm:
        # Every release in the stack: its own, or ``l3`` for a stack deployed before stacks had their own.
        for release in helm.list(namespace=name):
            helm.uninstall(release.name, namespace=name)
    deleted = hook.delete(name)
    print(f"{'deleted' if deleted else 'already gone:'} stack {name}")
    return {"action": "deleted", "namespace": name}


def _errors() -> dict[str, str]:
    """What each failed step noted, by step."""
    noted = {step: pulled(step, ERROR_XCOM_KEY) for step in gate_steps.STEPS}
    return {step: note["reason"] for step, note in noted.items() if note}


@task(trigger_rule="all_done", retries=0)
def summary(candidate: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    """The report kept with the manifest history; fails the run unless the candidate was promoted."""
    params = context["params"]
    if candidate is None:
        refusal = pulled("validate", ERROR_XCOM_KEY) or {}
        if refusal.get("refused"):
            raise AirflowFailException(f"the request was refused: {refusal['reason']}")
        reason = f"validate: {refusal.get('reason') or 'failed (see its log)'}"
        metrics.gate_finished(GateOutcome.ERROR.value, None)
        notify.send(notify.gate_error(params.get("service"), params.get("chart_version"), reason, run_id=context["run_id"]))
        raise AirflowFailException(f"L3 gate error: {reason}")
    manifest = Manifest.from_dict(candidate)
    promoted, rejected = pulled("promote"), pulled("reject")
    conflict = pulled("promote", "conflict")
    test_run = pulled("system_tests", TEST_OUTPUT_XCOM_KEY) or {}
    failure = pulled("deploy", FAILURE_XCOM_KEY)
    started = context["dag_run"].start_date
    outcome, reason = gate_steps.outcome(promoted=bool(promoted), conflict=conflict,
                                         rejected=(rejected or {}).get("reason"), errors=_errors())
    report = GateReport(
        outcome=outcome,
        change=manifest.change.to_dict() if manifest.change else None,
        before=VersionRef(version=manifest.parent),
        after=VersionRef(version=promoted["version"] if promoted else manifest.parent),
        candidate_id=manifest.candidate_id,
        candidate_package=(pulled("build_candidate") or {}).get("chart_ref"),
        tests=GateTests(passed=test_run.get("passed"), failed=(rejected or {}).get("failed_tests", [])),
        reason=reason,
        teardown=pulled("teardown"),
        run_id=context["run_id"],
        duration_seconds=round((utc_now() - started).total_seconds(), 1) if started else None,
        failure=DeployFailure.model_validate(failure) if failure else None,
    )
    print(f"L3 gate: {outcome.value} {manifest.change} — L3 v{report.before.version} → v{report.after.version}"
          f"{': ' + reason if reason else ''}")
    metrics.gate_finished(outcome.value, report.duration_seconds)
    if outcome is GateOutcome.ERROR:
        # Alert first: the store that failed may be the one the report goes to.
        notify.send(notify.gate_error(manifest.change.service if manifest.change else None,
                                      manifest.change.to_version if manifest.change else None, reason,
                                      candidate=manifest, run_id=context["run_id"]))
    try:
        manifest_store_for(Settings.from_env()).record_report(
            promoted["version"] if promoted else manifest.candidate_id, report
        )
    except Exception as exc:
        if outcome is not GateOutcome.ERROR:
            raise
        reason = f"{reason}; the report could not be stored either: {error_line(exc)}"
    if outcome is not GateOutcome.PROMOTED:
        raise AirflowFailException(f"L3 gate {outcome.value}: {reason}")
    return report.to_json()
