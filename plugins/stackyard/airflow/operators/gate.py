"""The L3 gate's tasks. Each opens what it needs from settings and connections and delegates to
:mod:`stackyard.steps.gate`; XCom carries manifests (pins only) and names, never values.

Every task notes why it failed (``error`` in its XCom); ``deploy`` also notes the classified
helm failure (``failure``). ``reject`` records a rejection only for a verdict on the candidate;
``summary`` says how the run ended (docs/l3-gate.md, "Outcomes").
"""

from __future__ import annotations

from typing import Any, NoReturn

import time
from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import PokeReturnValue, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSkipException

from stackyard.steps import gate as gate_steps
from stackyard.steps import gate_queue as queue_steps
from stackyard.core.gate_queue import Settlement, Turn
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
from stackyard.airflow.stores import gate_queue_for, manifest_store_for, registry_for
from stackyard.airflow.operators.helm import TEST_OUTPUT_XCOM_KEY, HelmUpgradeOperator
from stackyard.airflow.operators.system_tests import ParallelHelmTestOperator
from stackyard.core.system_tests import Phase, TestResult
from stackyard.steps.system_tests import Cancelled
from stackyard.airflow.hooks.sops import SopsHook
from stackyard.steps.publishing import load_umbrella_template, registry_stacks
from stackyard.settings import Settings
from stackyard.airflow.operators._base import (
    ERROR_XCOM_KEY, NON_RETRYABLE, error_line, non_retryable, noting_failure,
)
from stackyard.airflow.operators._context import pulled, record_event, utc_now
from stackyard.airflow.run_notes import record_note
from stackyard.core.run_notes import gate_note

PROFILE = gate_steps.PROFILE
DAG_ID = "l3_gate"
QUEUE_XCOM_KEY = "queue"               # {"seq": the queued change, "attempt": this run's test of it}
POSITION_XCOM_KEY = "queue_position"   # where it stands (stackyard gate --wait shows it)
REQUEUE_XCOM_KEY = "requeue"           # the run id of the run that tests it again
SUPERSEDED_XCOM_KEY = "superseded"
WINDOW_POKE_SECONDS = 5                # how often a change beyond the window looks again
QUEUE_TIMEOUT_SECONDS = 6 * 3600       # how long a change may wait for the window
TURN_WAIT_IN_TASK_SECONDS = 20         # promote/reject wait for their turn this long in the task...
TURN_RESCHEDULE_SECONDS = 3            # ...then look again this much later, holding no worker slot
QUEUE_LOOK_SECONDS = 1.0               # how often the tests look whether their attempt still counts
KEEP_ON_FAILURE_TTL = "1d"
FAILURE_XCOM_KEY = "failure"


@task.sensor(retries=0, mode="reschedule", poke_interval=WINDOW_POKE_SECONDS, exponential_backoff=True,
             max_wait=timedelta(minutes=1), timeout=QUEUE_TIMEOUT_SECONDS)
@noting_failure
def validate() -> PokeReturnValue:
    """Refuses bad requests before anything exists (the error names the field), queues the
    change, and waits (rescheduled, holding no worker) until it is inside the queue's window;
    then returns its candidate: L3 + the changes ahead of it + this one."""
    context = get_current_context()
    settings = Settings.from_env()
    queue, store, run_id = gate_queue_for(settings), manifest_store_for(settings), context["run_id"]
    with non_retryable():
        request = gate_steps.GateRequest.from_params(context["params"])
        item = queue_steps.taken_up(queue, run_id=run_id, service=request.service, version=request.chart_version)
        if item is None:
            with HelmHook(None, plain_http=settings.registry_plain_http).helm() as helm:
                _, pin = gate_steps.check_request(
                    request, store=store, registry=registry_for(settings, helm),
                    stacks=registry_stacks(settings.stacks_file),
                    decrypt=SopsHook(settings.sops_conn_id, settings.aws_conn_id).decrypt_profile,
                )
            item = queue_steps.join(queue, service=request.service, version=request.chart_version, pin=pin,
                                    run_id=run_id, requested_by=request.requested_by)
        context["ti"].xcom_push(key=QUEUE_XCOM_KEY, value={"seq": item.seq, "attempt": None})
        started = queue_steps.start(queue, store, item, window=settings.gate_window, run_id=run_id, now=utc_now(),
                                    provenance=gate_steps.provenance_of(request, run_id))
    if isinstance(started, queue_steps.Position):
        print(started)
        context["ti"].xcom_push(key=POSITION_XCOM_KEY, value=started.to_dict())
        if started.place == 0:  # superseded while it waited
            context["ti"].xcom_push(key=SUPERSEDED_XCOM_KEY, value=started.state)
            raise AirflowFailException(f"not tested: {started.state}")
        return PokeReturnValue(is_done=False)
    candidate = started.candidate
    print(started.position)
    context["ti"].xcom_push(key=POSITION_XCOM_KEY, value=started.position.to_dict())
    context["ti"].xcom_push(key=QUEUE_XCOM_KEY, value={"seq": item.seq, "attempt": started.attempt})
    print(f"candidate L3 v{candidate.version} = L3 v{candidate.parent} + {candidate.change} (id {candidate.candidate_id})")
    return PokeReturnValue(is_done=True, xcom_value=candidate.to_dict())


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


def _turn(passed: bool, context: Any) -> Turn:
    """Record this attempt's result, then wait until the queue lets it be decided on."""
    settings = Settings.from_env()
    queue, queued = gate_queue_for(settings), pulled("validate", QUEUE_XCOM_KEY)
    queue.record_result(queued["seq"], queued["attempt"], passed=passed, run_id=context["run_id"])

    def report(position: queue_steps.Position) -> None:
        print(position)
        context["ti"].xcom_push(key=POSITION_XCOM_KEY, value=position.to_dict())

    try:
        decision = queue_steps.wait_turn(queue, manifest_store_for(settings), queued["seq"],
                                         window=settings.gate_window, alive=_run_alive,
                                         deadline=time.monotonic() + TURN_WAIT_IN_TASK_SECONDS, report=report)
    except TimeoutError:  # still behind others: look again later without holding a worker slot
        raise AirflowRescheduleException(utc_now() + timedelta(seconds=TURN_RESCHEDULE_SECONDS)) from None
    if decision is Turn.SUPERSEDED:
        detail = (queue.settled(queued["seq"]) or None)
        reason = detail.detail if detail and detail.detail else "a newer version of this service was queued"
        context["ti"].xcom_push(key=SUPERSEDED_XCOM_KEY, value=reason)
        raise AirflowFailException(f"not decided: {reason}")
    if decision is Turn.RETEST:
        _requeue(context, queue_steps.retest_reason(queue, manifest_store_for(settings), queued["seq"]))
    return decision


def _requeue(context: Any, reason: str) -> NoReturn:
    """Hand the change over to a new run (``requeue`` triggers it), then skip."""
    queued = pulled("validate", QUEUE_XCOM_KEY)
    run_id = queue_steps.requeue_run_id(queued["seq"], queued["attempt"], utc_now().strftime("%Y%m%dT%H%M%S"))
    gate_queue_for(Settings.from_env()).hand_over(queued["seq"], queued["attempt"], run_id=run_id)
    context["ti"].xcom_push(key="conflict", value=reason)
    context["ti"].xcom_push(key=REQUEUE_XCOM_KEY, value=run_id)
    raise AirflowSkipException(f"not decided: {reason}; {run_id} tests it again")


def _handed_over(key: str = REQUEUE_XCOM_KEY) -> Any:
    """What the task that handed the change over pushed under ``key`` (None: no hand-over)."""
    return next((value for task_id in gate_steps.HANDING_OVER if (value := pulled(task_id, key))), None)


def _run_alive(run_id: str) -> bool:
    """Whether the gate run ``run_id`` is still queued or running (a missing run is not)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    try:
        return RuntimeTaskInstance.get_dagrun_state(DAG_ID, run_id) in ("queued", "running")
    except Exception:  # noqa: BLE001 - no such run (it was deleted, or never triggered)
        return False


@task
@noting_failure
def promote(candidate: dict[str, Any], **context: Any) -> dict[str, Any]:
    """Once every change ahead has left the queue, compare-and-swap exactly what was tested onto
    L3; if the queue or L3 moved meanwhile, skip, which starts ``requeue``."""
    manifest = Manifest.from_dict(candidate)
    _turn(True, context)
    try:
        promoted = manifest_store_for(Settings.from_env()).promote(manifest)
    except ConflictError as exc:
        _requeue(context, str(exc))
    queued = pulled("validate", QUEUE_XCOM_KEY)
    gate_queue_for(Settings.from_env()).settle(queued["seq"], Settlement.PROMOTED, run_id=context["run_id"],
                                               l3_version=promoted.version)
    context["outlet_events"][context["task"].outlets[0]].extra = {"version": promoted.version}
    print(f"promoted: L3 is now v{promoted.version} ({promoted.change})")
    return {"version": promoted.version}


class RequeueOperator(TriggerDagRunOperator):
    """``requeue``: a new gate run for the same request when ``system_tests``, ``promote`` or
    ``reject`` handed the change over (its run id names the queued change, which keeps its place);
    otherwise skipped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            trigger_dag_id=DAG_ID, conf="{{ dag_run.conf | tojson }}", retries=0, trigger_rule="all_done",
            # Just before this run's own place in Airflow's queue of runs (ordered by run_after):
            # a change tested again keeps its place ahead of the changes queued after it.
            logical_date="{{ (dag_run.run_after - macros.timedelta(milliseconds=1)).isoformat() }}",
            trigger_run_id="{{ %s or '' }}" % " or ".join(
                f"ti.xcom_pull(task_ids='{task_id}', key='{REQUEUE_XCOM_KEY}')" for task_id in gate_steps.HANDING_OVER),
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        if not self.trigger_run_id:
            raise AirflowSkipException("nothing to test again")
        return super().execute(context)


class CandidateTestOperator(ParallelHelmTestOperator):
    """``system_tests``: the candidate's test hooks (all at once), watching the queue meanwhile.

    A failed test is recorded as the attempt's result at once, so the changes tested behind this
    one learn of it before every test has ended. When what this attempt tests can no longer be
    promoted (a change ahead of it failed, or left the queue unpromoted), the tests stop and the
    change is handed over to a new run (``requeue``), as Zuul restarts the changes behind a
    failure instead of letting their doomed jobs finish.
    """

    def perform(self, context: Any) -> dict[str, Any]:
        self._looked, self._failure_noted = 0.0, False
        try:
            return super().perform(context)
        except Cancelled as exc:
            print(f"stopped after {len(exc.results)} finished test(s): {exc.reason}")
            _requeue(context, exc.reason)

    def on_result(self, context: Any, result: TestResult) -> None:
        super().on_result(context, result)
        if result.phase is Phase.FAILED and not self._failure_noted:
            self._failure_noted = True
            queued = pulled("validate", QUEUE_XCOM_KEY)
            try:
                gate_queue_for(Settings.from_env()).record_result(queued["seq"], queued["attempt"], passed=False,
                                                                  run_id=context["run_id"])
            except Exception as exc:  # noqa: BLE001 - early news only: reject records the result anyway
                self.log.warning("could not record the failure in the gate queue yet: %s", error_line(exc))

    def stop_reason(self, context: Any) -> str | None:
        if time.monotonic() - self._looked < QUEUE_LOOK_SECONDS:
            return None
        self._looked = time.monotonic()
        settings, queued = Settings.from_env(), pulled("validate", QUEUE_XCOM_KEY)
        try:
            return queue_steps.outdated(gate_queue_for(settings), manifest_store_for(settings), queued["seq"])
        except Exception as exc:  # noqa: BLE001 - an unreadable queue is no reason to stop the tests
            self.log.warning("could not look at the gate queue: %s", error_line(exc))
            return None


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
def reject(candidate: dict[str, Any], **context: Any) -> dict[str, Any]:
    """Records the rejected candidate, when the deploy or the tests failed for the candidate's
    own reasons and the queue says it is the head, tested exactly as L3 plus itself; L3 is
    untouched. An infrastructure failure is no verdict: nothing is recorded."""
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
    _turn(False, context)
    reason, report = verdict
    manifest_store_for(Settings.from_env()).record_rejection(manifest, reason, report)
    queued = pulled("validate", QUEUE_XCOM_KEY)
    gate_queue_for(Settings.from_env()).settle(queued["seq"], Settlement.REJECTED, run_id=context["run_id"],
                                               detail=reason)
    print(f"rejected {manifest.change}: {reason}; L3 stays v{manifest.parent}")
    # Best effort: a webhook outage never fails the gate (send logs and returns False).
    notify.send(notify.gate_rejected(manifest, reason, report.failed_tests, run_id=context["run_id"]))
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
    rejected = pulled("promote") is None and not _handed_over()  # a requeue is no failure
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


def _leave_queue_unless_decided(context: Any) -> None:
    """A run that ends without a verdict or a hand-over takes its change out of the queue, so the
    changes behind it need not wait for it (a settled change is left as it is)."""
    queued = pulled("validate", QUEUE_XCOM_KEY)
    if not queued or _handed_over():
        return
    try:
        queue_steps.abandon(gate_queue_for(Settings.from_env()), queued["seq"], run_id=context["run_id"],
                            reason=f"gate run {context['run_id']} ended without a verdict")
    except Exception as exc:  # noqa: BLE001 - the waiting runs also notice a dead run themselves
        print(f"could not take change #{queued['seq']} out of the queue: {error_line(exc)}")


def _errors() -> dict[str, str]:
    """What each failed step noted, by step."""
    noted = {step: pulled(step, ERROR_XCOM_KEY) for step in gate_steps.STEPS}
    return {step: note["reason"] for step, note in noted.items() if note}


@task(trigger_rule="all_done", retries=0)
def summary(candidate: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    """The report kept with the manifest history; fails the run unless the candidate was promoted."""
    params = context["params"]
    _leave_queue_unless_decided(context)
    if candidate is None:
        superseded = pulled("validate", SUPERSEDED_XCOM_KEY)
        asked = (params.get("service"), params.get("chart_version"))
        if superseded:  # replaced by a newer version before it was tested: no verdict, no alert
            record_note(context, gate_note(*asked, GateOutcome.SUPERSEDED.value, reason=superseded))
            metrics.gate_finished(GateOutcome.SUPERSEDED.value, None)
            raise AirflowFailException(f"L3 gate {GateOutcome.SUPERSEDED.value}: {superseded}")
        refusal = pulled("validate", ERROR_XCOM_KEY) or {}
        if refusal.get("refused"):
            record_note(context, gate_note(*asked, "refused", reason=refusal["reason"]))
            raise AirflowFailException(f"the request was refused: {refusal['reason']}")
        reason = f"validate: {refusal.get('reason') or 'failed (see its log)'}"
        record_note(context, gate_note(*asked, GateOutcome.ERROR.value, reason=reason))
        metrics.gate_finished(GateOutcome.ERROR.value, None)
        notify.send(notify.gate_error(params.get("service"), params.get("chart_version"), reason, run_id=context["run_id"]))
        raise AirflowFailException(f"L3 gate error: {reason}")
    manifest = Manifest.from_dict(candidate)
    promoted, rejected = pulled("promote"), pulled("reject")
    conflict = _handed_over("conflict")
    superseded = pulled("promote", SUPERSEDED_XCOM_KEY) or pulled("reject", SUPERSEDED_XCOM_KEY)
    test_run = pulled("system_tests", TEST_OUTPUT_XCOM_KEY) or {}
    failure = pulled("deploy", FAILURE_XCOM_KEY)
    started = context["dag_run"].start_date
    outcome, reason = gate_steps.outcome(promoted=bool(promoted), conflict=conflict,
                                         rejected=(rejected or {}).get("reason"), errors=_errors(),
                                         superseded=superseded)
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
    record_note(context, gate_note(manifest.change.service if manifest.change else None,
                                   manifest.change.to_version if manifest.change else None, outcome.value,
                                   reason=reason, l3_version=report.after.version))
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
