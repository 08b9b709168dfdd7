"""The rollout DAGs' tasks: ``plan``, one ``upgrade`` per service (mapped, one at a time), ``summary``.

``plan`` decides (window, triggerer, source versions against the stack's helm releases) and
hands the steps to the mapped ``upgrade`` task: one task instance per service, named after it.
Each instance upgrades one service (canary first when flagged: stepwise weights through the
traffic provider, analysis between steps, :mod:`stackyard.steps.canary`), waits for readiness, runs
the chart's tests, rolls that one service back on failure and records the attempt in
``stacks/<stack>/rollouts``. An instance starts only if every earlier one succeeded, so the
first failure stops the run and the later services stay as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSkipException

from stackyard.adapters import metrics

from stackyard.airflow import notify
from stackyard.airflow.params import refuse_undeclared_conf
from stackyard.airflow.run_notes import record_note
from stackyard.core.run_notes import rollout_note
from stackyard.steps import rollouts as steps
from stackyard.core.canary import (
    CanaryRecord, CheckResult, check_context as canary_context, describe_checks, progress as canary_progress,
)
from stackyard.core.rollout import (
    PlanStep, RolloutStatus, canary_release, canary_values, failed_before, make_plan, rollout_record,
    stack_namespace_metadata, window_decision,
)
from stackyard.steps import canary as canary_steps
from stackyard.core.stack_registry import HealthySource, Stack
from stackyard.exceptions import StackyardError
from stackyard.airflow.hooks.helm import HelmHook
from stackyard.airflow.stores import aws_client, manifest_store_for, record_store_for, registry_for
from stackyard.airflow.operators._base import error_line, non_retryable
from stackyard.airflow.operators.helm import HelmUpgradeOperator
from stackyard.settings import Settings
from stackyard.adapters.helm import DEFAULT_TIMEOUT
from stackyard.airflow.operators._context import past_slot_reason, triggering_user, user_roles
from stackyard.core.access import refused_trigger
from stackyard.core.times import utc_now


def _checks_named(policy: Any) -> str:
    from stackyard.core.canary import check_names

    return ", ".join(check_names(policy.analysis)) or "chart-tests (at deploy)"


def _weights(plan: Any) -> str:
    return " → ".join(f"{w} %" for w in plan.steps)

OUTCOME_XCOM_KEY = "outcome"
NOT_ATTEMPTED = "not_attempted"
#: How often a service waiting for an earlier one checks again.
WAIT_SECONDS = 3
DECISION_XCOM_KEY = "decision"
#: What a rollout run's conf may hold (the DAGs declare no params: each costs parse time x 200).
RUN_CONF = ("plan_only",)



def _stack(name: str) -> Stack:
    return steps.load_stack(Settings.from_env().stacks_file, name)


def _triggered_by(context: Any) -> str | None:
    """Who triggered a manual run, as Airflow recorded it (for the rollout record)."""
    run = context["dag_run"]
    return getattr(run, "triggering_user_name", None) if str(getattr(run, "run_type", "")).endswith("manual") else None


def check_triggerer(stack: Stack, context: Any) -> None:
    """Defence in depth behind the auth manager: the registry's ``triggerers`` (roles and users)
    and the stack's owner are checked at run start for manual runs, whichever auth manager let
    the trigger through (the simple auth manager has no per-DAG permissions)."""
    user = triggering_user(context)
    refused = refused_trigger(user=user, roles=user_roles(user), allowed_roles=stack.triggerers.roles,
                              allowed_users=stack.triggerers.users, owner=stack.owner)
    if refused:
        raise AirflowFailException(f"{stack.dag_id}: {refused}; nothing changed")


@task(task_id="plan", retries=0)
def plan(stack_name: str, **context: Any) -> list[dict[str, Any]]:
    """What this run will change, in order; [] when up to date, outside the window or frozen."""
    with non_retryable():  # a broken registry entry fails the plan without retries
        stack = _stack(stack_name)
    check_triggerer(stack, context)
    refuse_undeclared_conf(context, RUN_CONF)
    if not isinstance((context["dag_run"].conf or {}).get("plan_only", False), bool):
        raise AirflowFailException(f"{stack.dag_id}: conf plan_only: expected true or false; nothing was done")
    ti = context["ti"]
    stale = past_slot_reason(context, stack.schedule)
    if stale:
        ti.xcom_push(key=DECISION_XCOM_KEY, value={"changed": False, "reason": stale})
        print(f"{stack.dag_id}: {stale}")
        return []
    decision = window_decision(stack.windows, utc_now())
    if not decision.open:
        ti.xcom_push(key=DECISION_XCOM_KEY, value={"changed": False, "reason": decision.reason})
        print(f"{stack.dag_id}: changing nothing: {decision.reason}")
        return []
    settings = Settings.from_env()
    with HelmHook(stack.connection).helm() as helm:
        deployed = steps.deployed_on(helm, stack.namespace)
    from stackyard.core.rollout import deployed_services

    targets, held = steps.targets_for(stack, manifests=manifest_store_for(settings),
                                      records=record_store_for(settings), now=utc_now())
    origin = str(settings.stacks_file)
    try:
        steps.check_services_known(stack, targets, held, origin=origin)
    except InputError as exc:
        raise AirflowFailException(str(exc)) from None
    result = make_plan(stack, targets, deployed_services(deployed.values()), held=held,
                       allow_downgrade=not isinstance(stack.source, HealthySource))
    print(result.summary())
    try:
        with HelmHook(None, plain_http=settings.registry_plain_http).helm() as helm:
            steps.check_profile_in_charts(stack, list(result.steps), registry_for(settings, helm), origin=origin)
    except InputError as exc:
        raise AirflowFailException(f"{exc}; nothing changed") from None
    if (context["dag_run"].conf or {}).get("plan_only"):
        ti.xcom_push(key=DECISION_XCOM_KEY, value={"changed": False, "reason": "plan only (nothing applied)"})
        return []
    reason = "up to date" if not result.steps else f"{len(result.steps)} service(s) to change"
    if result.steps:
        ensure_namespace(stack, context)
    ti.xcom_push(key=DECISION_XCOM_KEY, value={"changed": bool(result.steps), "reason": reason,
                                               "plan": result.to_dict()})
    return [step.to_dict() for step in result.steps]


def ensure_namespace(stack: Stack, context: Any) -> None:
    """Create the stack's namespace on first use; refuse one that is an ephemeral stack."""
    from stackyard.core.ephemeral import LABEL_STACK_TYPE, StackType
    from stackyard.airflow.hooks.namespaces import StackHook

    hook = StackHook(stack.connection)
    existing = hook.get(stack.namespace)
    if existing is None:
        hook.create(stack.namespace, stack_namespace_metadata(
            stack, created=utc_now(), created_by=f"{stack.dag_id}/{context['run_id']}"))
        print(f"created namespace {stack.namespace} for stack {stack.name}")
    elif existing.labels.get(LABEL_STACK_TYPE) == StackType.EPHEMERAL.value:
        raise AirflowFailException(f"namespace {stack.namespace} is an ephemeral stack (the reaper would delete it); "
                                   f"give stack {stack.name} its own namespace")


class ServiceRolloutOperator(HelmUpgradeOperator):
    """Upgrade one service of a stack (mapped over the plan's steps), test it, roll it back on failure.

    Reuses :class:`HelmUpgradeOperator` for every ``helm upgrade`` (package from the registry,
    profile values, decrypted secrets, private values file); the canary release gets the chart's
    canary values as overrides. Pushes the attempt's record under ``outcome`` and appends it to
    ``stacks/<stack>/rollouts``; fails the task unless the upgrade succeeded.
    """

    template_fields: Sequence[str] = ("step", "stack_name", "timeout")

    def __init__(self, *, stack_name: str, step: dict[str, Any], timeout: str = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(release="", namespace="", profile="", stack=stack_name, timeout=timeout, **kwargs)
        self.stack_name, self.step = stack_name, step

    @cached_property
    def stack_config(self) -> Stack:
        return _stack(self.stack_name)

    def perform(self, context: Any) -> dict[str, Any]:
        stack, step = self.stack_config, PlanStep.from_dict(self.step)
        self.kubernetes_conn_id = stack.connection
        # A canary already on (the record says so) is carried on whatever the window: decide() pauses
        # or aborts it as the stack says; skipping it would leave its share set and forgotten.
        running = step.canary and canary_steps.unfinished_canary(
            record_store_for(Settings.from_env()), stack.name, step.service) is not None
        self._guard(context, stack, step, check_window=not running)
        started = utc_now()
        canary: dict[str, Any] | None = None
        try:
            if step.canary and step.from_version is None:
                # nothing runs yet: there is no stable track to take a share from
                status, reason, digest, revision = self._upgrade_and_test(context, stack, step)
                reason += " (first install: no stable release to run a canary against)"
            elif step.canary:
                status, reason, digest, revision, canary = self._canary(context, stack, step)
            else:
                status, reason, digest, revision = self._upgrade_and_test(context, stack, step)
        except AirflowRescheduleException:
            raise  # a canary waiting for its next step: its history is on record already
        except Exception as exc:  # recorded, then re-raised: the attempt must be on record whatever broke
            if step.canary and canary_steps.unfinished_canary(
                    record_store_for(Settings.from_env()), stack.name, step.service) is not None:
                # the canary_running record must stay the newest: it names the share still set, which
                # the next run (or a retry) finishes from; a "failed" record on top would hide it
                notify.send(notify.rollout_failed(
                    stack.name, step.service, step.to_version, from_version=step.from_version,
                    reason=f"canary stopped with its share on record: {error_line(exc)}; the next run "
                           "resumes or aborts it", dag_id=stack.dag_id, run_id=context["run_id"], owner=stack.owner))
                raise
            self._record(context, stack, step, RolloutStatus.FAILED, started, reason=f"unexpected error: {exc}")
            raise
        record = self._record(context, stack, step, status, started, values_digest=digest, revision=revision,
                              reason=reason, canary=canary)
        if status is not RolloutStatus.SUCCEEDED:
            raise AirflowFailException(f"{stack.dag_id}: {step.service} {status.value}: {reason}")
        return record

    # -- one service ---------------------------------------------------------------------------
    def _guard(self, context: Any, stack: Stack, step: PlanStep, *, check_window: bool = True) -> None:
        """One service at a time, in plan order, whatever order the instances are scheduled in:
        wait (reschedule) while an earlier service is unfinished; skip once one did not succeed."""
        ti = context["ti"]
        earlier = [ti.xcom_pull(task_ids=self.task_id, key=OUTCOME_XCOM_KEY, map_indexes=index)
                   for index in range(max(ti.map_index, 0))]
        if any(outcome is None for outcome in earlier):
            self.log.info("%s waits: an earlier service of this run is not finished", step.service)
            raise AirflowRescheduleException(utc_now() + timedelta(seconds=WAIT_SECONDS))
        why = failed_before(earlier)
        if why is None and check_window:
            decision = window_decision(stack.windows, utc_now())
            why = None if decision.open else f"the window closed during the run: {decision.reason}"
        if why:
            ti.xcom_push(key=OUTCOME_XCOM_KEY, value={"service": step.service, "status": NOT_ATTEMPTED, "reason": why})
            raise AirflowSkipException(f"{step.service} not attempted: {why}")

    def _deploy(self, context: Any, stack: Stack, release: str, chart_ref: str,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        self.release, self.chart_ref, self.namespace = release, chart_ref, stack.namespace
        self.profile, self.stack, self.values_overrides = stack.profile, stack.name, overrides
        self.pin_images = stack.pin_images  # the registry's switch: run the locked digests
        return HelmUpgradeOperator.perform(self, context)

    def _upgrade_and_test(self, context: Any, stack: Stack, step: PlanStep):
        """(status, reason, values digest, revision) of upgrading the stable release."""
        with self.helm_hook.helm() as helm:
            previous = steps.deployed_revision(helm, step.release, stack.namespace)
            before = steps.latest_revision(helm, step.release, stack.namespace)
        chart_ref = f"{step.service}:{step.to_version}"
        try:
            deployed = self._deploy(context, stack, step.release, chart_ref)
        except StackyardError as exc:
            return self._after_failure(stack, step, previous, before, f"upgrade failed: {error_line(exc)}") + (None, None)
        with self.helm_hook.helm() as helm:
            test = helm.test(step.release, namespace=stack.namespace, timeout=self.timeout)
        if test.passed:
            return RolloutStatus.SUCCEEDED, "deployed, ready and tested", deployed["values_digest"], deployed["revision"]
        self.log.error("helm test of %s failed:\n%s", step.release, test.output)
        status, reason = self._after_failure(stack, step, previous, before, "chart tests failed")
        return status, reason, deployed["values_digest"], deployed["revision"]

    def _after_failure(self, stack: Stack, step: PlanStep, previous: int | None, before: int | None,
                       why: str) -> tuple[RolloutStatus, str]:
        """Put the one service back as it was, and say what was done.

        ``before`` is the newest revision before the attempt, ``previous`` the one deployed then.
        """
        with self.helm_hook.helm() as helm:
            if steps.latest_revision(helm, step.release, stack.namespace) == before:
                return RolloutStatus.FAILED, f"{why}; nothing was changed on the stack"
            if before is None:
                helm.uninstall(step.release, namespace=stack.namespace)
                return RolloutStatus.ROLLED_BACK, f"{why}; the new release was removed (it had no previous revision)"
            if previous is None:
                return RolloutStatus.FAILED, f"{why}; the release had no healthy revision to return to"
            history = {int(row["revision"]): row for row in helm.history(step.release, namespace=stack.namespace)}
            current = steps.deployed_revision(helm, step.release, stack.namespace)
            if current is not None and history[current].get("chart") == history[previous].get("chart"):
                # helm upgrade --rollback-on-failure already put the previous chart back.
                return RolloutStatus.ROLLED_BACK, f"{why}; helm rolled back to revision {previous}'s chart ({step.from_version})"
            helm.rollback(step.release, previous, namespace=stack.namespace, timeout=self.timeout)
        return RolloutStatus.ROLLED_BACK, f"{why}; rolled back to revision {previous} ({step.from_version})"

    # -- canary first ----------------------------------------------------------------------------
    def _canary(self, context: Any, stack: Stack, step: PlanStep):
        """Canary release → stepwise weights through the traffic provider, analysis between steps →
        promote (stable upgraded, weight back to stable, canary removed) or abort (weight 0, canary
        removed, stable untouched). Waits between steps are reschedules: the history (written ahead
        into the rollout record) carries the canary from one execution, retry or run to the next."""
        policy = stack.canary_for(step.service)
        name = canary_release(step.release)
        records = record_store_for(Settings.from_env())
        run_id = f"{context['run_id']}#{context['ti'].try_number}"
        prior = canary_steps.unfinished_canary(records, stack.name, step.service)
        info = {"release": name, "weight": 0, "check": _checks_named(policy), "provider": policy.traffic.provider}

        def saver(for_step: PlanStep):
            def save(history: list[CanaryRecord]) -> None:  # the write-ahead line, in the rollout record
                state = canary_progress(policy.plan, history)
                records.write(rollout_record(
                    stack=stack, step=for_step, run_id=context["run_id"], started=history[0].time, finished=utc_now(),
                    status=RolloutStatus.CANARY_ABORTED if state.finished == "aborted" and for_step is not step
                    else RolloutStatus.CANARY_RUNNING, triggered_by=_triggered_by(context), reason=history[-1].reason,
                    canary={**info, "weight": state.weight, "state": state.finished or "running",
                            "history": [line.to_dict() for line in history]}))
            return save

        self._promotion = None
        run = self._canary_run(context, stack, step, policy, name, run_id, saver(step))
        if prior is not None and prior.to_version != step.to_version:
            # a canary of another version was left running: end it (weight 0, removed) first
            old = PlanStep.from_dict({**step.to_dict(), "to_version": prior.to_version,
                                      "from_version": prior.from_version})
            stale = self._canary_run(context, stack, old, policy, name, run_id, saver(old))
            stale.history = canary_steps.history_of(prior.canary)
            stale.abort(f"superseded by {step.to_version}")
            prior = None
        if prior is not None:
            run.history = canary_steps.history_of(prior.canary)
            print(f"canary of {step.service} {step.to_version}: continuing from the record "
                  f"(weight {canary_progress(policy.plan, run.history).weight}, last written by "
                  f"{run.history[-1].run_id})")
            with self.helm_hook.helm() as helm:
                gone = steps.latest_revision(helm, name, stack.namespace) is None
            if gone and canary_progress(policy.plan, run.history).pending is None:
                # the canary release was removed behind stackyard's back: no share may point at it
                run.abort(f"the canary release {name} is gone (removed outside stackyard)")
        if not run.history:
            failure = self._deploy_canary(context, stack, step, policy, name)
            if failure:
                return self._canary_ended(step, info, run, RolloutStatus.CANARY_ABORTED,
                                          f"{failure}; canary removed, stable release untouched")
        try:
            action = run.advance() if run.outcome is None else None
        except StackyardError as exc:
            # the provider or the cluster refused mid-canary: take the share away now (abort), on record
            print(f"canary of {step.service}: {error_line(exc)}; aborting")
            run.abort(f"error mid-canary: {error_line(exc)}")
            action = None
        if action is not None and action.name == "wait":
            until = action.until or utc_now() + timedelta(seconds=min(policy.plan.interval, 60))
            print(f"canary of {step.service}: {action.reason}; next look at {until:%H:%M:%S} UTC")
            raise AirflowRescheduleException(until)
        return self._canary_outcome(stack, step, info, run)

    def _canary_run(self, context: Any, stack: Stack, step: PlanStep, policy: Any, name: str, run_id: str,
                    save: Any) -> "canary_steps.CanaryRun":
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        def kube_api() -> Any:
            return KubernetesHook(conn_id=stack.connection).api_client

        settings = Settings.from_env()
        provider = canary_steps.traffic_provider(
            policy.traffic, namespace=stack.namespace, stable_release=step.release, canary_release=name,
            kube_api=kube_api, aws_client=lambda service: aws_client(settings.aws_conn_id, service))
        checks = canary_steps.analysis_checks(
            policy.analysis, aws_client=lambda service: aws_client(settings.aws_conn_id, service),
            chart_tests=lambda check: self._chart_tests(stack, name, check))
        check_context = canary_context(service=step.service, release=name, namespace=stack.namespace,
                                       stack=stack.name, interval_seconds=policy.plan.interval)

        def promote() -> tuple[bool, str]:
            status, reason, digest, revision = self._upgrade_and_test(context, stack, step)
            self._promotion = (status, reason, digest, revision)
            return status is RolloutStatus.SUCCEEDED, reason

        return canary_steps.CanaryRun(
            plan=policy.plan, provider=provider, checks=checks, context=check_context, run_id=run_id, save=save,
            promote_stable=promote, remove=lambda: self._remove_release(stack, name), window=lambda: window_decision(stack.windows, utc_now()),
            clock=utc_now)

    def _deploy_canary(self, context: Any, stack: Stack, step: PlanStep, policy: Any, name: str) -> str | None:
        """Deploy the canary release and run its chart tests once; the failure in words, or None."""
        try:
            self._deploy(context, stack, name, f"{step.service}:{step.to_version}",
                         overrides=canary_values(policy.plan.steps[0]))
        except StackyardError as exc:
            self._remove_release(stack, name)
            return f"canary deploy failed: {error_line(exc)}"
        with self.helm_hook.helm() as helm:
            test = helm.test(name, namespace=stack.namespace, timeout=self.timeout)
        if not test.passed:
            self.log.error("helm test of %s failed:\n%s", name, test.output)
            self._remove_release(stack, name)
            return "canary chart tests failed"
        return None

    def _remove_release(self, stack: Stack, name: str) -> None:
        with self.helm_hook.helm() as helm:
            if steps.latest_revision(helm, name, stack.namespace) is not None:
                helm.uninstall(name, namespace=stack.namespace)

    def _chart_tests(self, stack: Stack, name: str, check: str) -> CheckResult:
        with self.helm_hook.helm() as helm:
            test = helm.test(name, namespace=stack.namespace, timeout=self.timeout)
        if not test.passed:
            self.log.error("helm test of %s failed:\n%s", name, test.output)
        return CheckResult(check, test.passed, None, None, f"helm test {name} {'passed' if test.passed else 'failed'}")

    def _canary_outcome(self, stack: Stack, step: PlanStep, info: dict[str, Any], run: Any):
        promotion = getattr(self, "_promotion", None)
        if run.outcome == "promoted":
            if promotion is None:  # promoted by an earlier execution that stopped before its record
                return self._canary_ended(step, info, run, RolloutStatus.SUCCEEDED,
                                          "canary promoted (finished from the record); canary removed")
            status, reason, digest, revision = promotion
            if status is RolloutStatus.SUCCEEDED:
                reason = f"canary passed {len(run.plan.steps)} step(s) ({_weights(run.plan)}), promoted; canary removed"
            else:
                reason = f"promotion: {reason}; canary removed"
            return self._canary_ended(step, info, run, status, reason, digest, revision)
        failing = run.failing
        why = run.history[-2].reason if len(run.history) >= 2 else "aborted"
        if failing and "failed check" in why:
            why = "canary check failed: " + describe_checks(failing)
        return self._canary_ended(step, info, run, RolloutStatus.CANARY_ABORTED,
                                  f"{why}; weight 0, canary removed, stable release untouched")

    def _canary_ended(self, step: PlanStep, info: dict[str, Any], run: Any, status: RolloutStatus,
                      reason: str, digest: str | None = None, revision: int | None = None):
        if status is RolloutStatus.CANARY_ABORTED:
            self.log.error("canary of %s aborted: %s", step.service, reason)
        state = canary_progress(run.plan, run.history)
        canary = {**info, "weight": state.weight, "state": state.finished or "aborted",
                  "history": [line.to_dict() for line in run.history],
                  "check_detail": "; ".join(f"{c.name}: {c.message}" for line in run.history[-3:] for c in line.checks) or None}
        return status, reason, digest, revision, canary

    # -- record --------------------------------------------------------------------------------
    def _record(self, context: Any, stack: Stack, step: PlanStep, status: RolloutStatus, started: datetime,
                **fields: Any) -> dict[str, Any]:
        record = rollout_record(stack=stack, step=step, status=status, run_id=context["run_id"], started=started,
                                finished=utc_now(), triggered_by=_triggered_by(context), **fields)
        context["ti"].xcom_push(key=OUTCOME_XCOM_KEY, value=record.to_json())
        record_store_for(Settings.from_env()).write(record)
        print(f"{stack.name}: {step} {status.value}: {record.reason}")
        metrics.rollout_finished(stack.name, status.value)
        if status is not RolloutStatus.SUCCEEDED:
            notify.send(notify.rollout_failed(
                stack.name, step.service, step.to_version, from_version=step.from_version,
                rolled_back=status in (RolloutStatus.ROLLED_BACK, RolloutStatus.CANARY_ABORTED),
                reason=record.reason, dag_id=stack.dag_id, run_id=context["run_id"], owner=stack.owner,
            ))
        return record.to_json()


@task(task_id="summary", retries=0, trigger_rule="all_done")
def summary(stack_name: str, **context: Any) -> dict[str, Any]:
    """The run in one line; fails the run naming the service if one did not succeed."""
    ti = context["ti"]
    decision = ti.xcom_pull(task_ids="plan", key=DECISION_XCOM_KEY)
    if decision is None:
        raise AirflowFailException(f"rollout of {stack_name}: the plan failed (see the plan task's log)")
    planned = [s["service"] for s in (decision.get("plan") or {}).get("steps", [])]
    outcomes = [ti.xcom_pull(task_ids="upgrade", key=OUTCOME_XCOM_KEY, map_indexes=index) for index in range(len(planned))]
    outcomes = [o for o in outcomes if o and o["status"] != NOT_ATTEMPTED]
    done = {o["service"]: o for o in outcomes}
    failed = [o for o in outcomes if o["status"] != RolloutStatus.SUCCEEDED.value]
    report = {
        "stack": stack_name, "changed": [o["service"] for o in outcomes if o["status"] == "succeeded"],
        "failed": [{"service": o["service"], "status": o["status"], "reason": o["reason"]} for o in failed],
        "not_attempted": [s for s in planned if s not in done], "decision": decision["reason"],
    }
    record_note(context, rollout_note(stack_name, outcomes, not_attempted=report["not_attempted"],
                                      decision=decision["reason"]))
    if failed:
        first = failed[0]
        raise AirflowFailException(
            f"rollout of {stack_name} stopped at {first['service']} ({first['from_version'] or 'new'} -> "
            f"{first['to_version']}): {first['status']}: {first['reason']}; not attempted: "
            f"{', '.join(report['not_attempted']) or 'none'}"
        )
    if report["not_attempted"]:
        raise AirflowFailException(f"rollout of {stack_name}: not attempted: {', '.join(report['not_attempted'])} "
                                   "(see the upgrade task instances' logs)")
    if not planned:
        print(f"rollout of {stack_name}: {decision['reason']}")
    else:
        print(f"rollout of {stack_name}: upgraded {', '.join(report['changed'])}")
    return report
