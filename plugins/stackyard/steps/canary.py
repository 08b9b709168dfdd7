"""A canary run, step by step: the registry's traffic and analysis turned into a provider and checks,
and :class:`CanaryRun`, which applies :func:`stackyard.core.canary.decide` until it must wait or is done.

The history is a write-ahead log (``core.canary``): :class:`CanaryRun` hands every line to ``save``
(which stores it in the rollout record) **before** it calls the provider, and after each analysis.
The callers supply the outside: the provider, the checks, how stable is promoted and how the canary
release is removed, the clock and the window. Nothing here knows Airflow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stackyard.adapters.analysis import (
    CloudWatchAlarmCheck, CloudWatchMetricCheck, HttpCheck, PrometheusCheck, Threshold,
)
from stackyard.adapters.traffic import (
    GatewayApiRoute, IngressNginxCanary, ReplicaRatio, Route53Weighted, TrafficProvider,
)
from stackyard.core.canary import (
    Action, AnalysisCheck, CanaryPlan, CanaryRecord, ChartTestsAnalysis, CheckResult, CloudWatchAnalysis,
    GatewayApiTraffic, HttpAnalysis, IngressNginxTraffic, Kind, PrometheusAnalysis, ReplicasTraffic, Route53Traffic,
    TrafficConfig, check_names, decide, finished_record, progress,
)
from stackyard.core.records import CanaryInfo, RolloutRecord, RolloutStatus, rollouts_stream
from stackyard.core.rollout import WindowDecision
from stackyard.adapters.record_store import RecordStore

__all__ = ["CanaryRun", "Evaluator", "analysis_checks", "traffic_provider", "unfinished_canary", "run_checks"]

#: Rollout records read to find a canary a stopped run left unfinished (newest first).
CANARY_LOOKBACK = 200


def traffic_provider(config: TrafficConfig, *, namespace: str, stable_release: str, canary_release: str,
                     kube_api: Callable[[], Any], aws_client: Callable[[str], Any]) -> TrafficProvider:
    """The provider the registry names, over the stack's cluster or the AWS connection. The chart
    contract (docs/chart-contract.md) gives the defaults: each release has a Service named after it,
    the canary release's pods run in the Deployment ``<canary release>-canary``."""
    if isinstance(config, GatewayApiTraffic):
        return GatewayApiRoute(kube_api(), namespace=namespace, route=config.route or stable_release,
                               stable_service=config.stable_service or stable_release,
                               canary_service=config.canary_service or canary_release, port=config.port,
                               gateway=config.gateway, hostnames=tuple(config.hostnames),
                               path_prefix=config.path_prefix, adopt=config.adopt)
    if isinstance(config, IngressNginxTraffic):
        return IngressNginxCanary(kube_api(), namespace=namespace, stable_ingress=config.ingress or stable_release,
                                  stable_service=config.stable_service or stable_release,
                                  canary_service=config.canary_service or canary_release,
                                  canary_ingress=config.canary_ingress)
    if isinstance(config, Route53Traffic):
        return Route53Weighted(aws_client("route53"), zone_id=config.zone_id, record_name=config.record,
                               stable_value=config.legacy, canary_value=config.ingress, record_type=config.type,
                               ttl=config.ttl)
    if isinstance(config, ReplicasTraffic):
        return ReplicaRatio(kube_api(), namespace=namespace, stable_deployment=config.stable_deployment or stable_release,
                            canary_deployment=config.canary_deployment or f"{canary_release}-canary")
    raise TypeError(f"no traffic provider for {config!r}")


@dataclass(frozen=True)
class Evaluator:
    """One configured check, ready to run: ``evaluate(context) -> CheckResult``."""

    name: str
    evaluate: Callable[[dict[str, str]], CheckResult]


def analysis_checks(checks: Sequence[AnalysisCheck], *, aws_client: Callable[[str], Any],
                    chart_tests: Callable[[str], CheckResult]) -> list[Evaluator]:
    """The registry's checks as evaluators (``chart_tests(name)`` runs ``helm test`` of the canary)."""
    out = []
    for name, check in zip(check_names(checks), checks):
        if isinstance(check, PrometheusAnalysis):
            impl = PrometheusCheck(name=name, base_url=check.address, query=check.query,
                                   threshold=Threshold(max=check.max, min=check.min), timeout=check.timeout_seconds)
            out.append(Evaluator(name, impl.evaluate))
        elif isinstance(check, CloudWatchAnalysis) and check.alarm is not None:
            alarm = CloudWatchAlarmCheck(aws_client("cloudwatch"), name=name, alarm=check.alarm,
                                         insufficient_data_passes=check.insufficient_data_passes)
            out.append(Evaluator(name, alarm.evaluate))
        elif isinstance(check, CloudWatchAnalysis):
            metric = CloudWatchMetricCheck(aws_client("cloudwatch"), name=name, namespace=check.namespace or "",
                                           metric=check.metric or "", statistic=check.statistic,
                                           threshold=Threshold(max=check.max, min=check.min),
                                           dimensions=check.dimensions, period=check.period, window=check.window)
            out.append(Evaluator(name, metric.evaluate))
        elif isinstance(check, HttpAnalysis):
            http = HttpCheck(name=name, url=check.url, expect_status=check.expect_status, timeout=check.timeout_seconds)
            out.append(Evaluator(name, http.evaluate))
        elif isinstance(check, ChartTestsAnalysis):
            out.append(Evaluator(name, lambda _context, name=name: chart_tests(name)))
        else:
            raise TypeError(f"no check for {check!r}")
    return out


def run_checks(evaluators: Sequence[Evaluator], context: dict[str, str]) -> tuple[CheckResult, ...]:
    """Every check's result. A check that cannot run at all (a malformed query, an alarm that does
    not exist, AWS refusing) is a failed check naming the error: the canary then aborts and
    restores the traffic, instead of the task failing with a share still set."""
    results = []
    for evaluator in evaluators:
        try:
            results.append(evaluator.evaluate(context))
        except Exception as error:  # noqa: BLE001 - any failure to measure fails the check, on record
            results.append(CheckResult(evaluator.name, False, None, None, f"{type(error).__name__}: {error}"))
    return tuple(results)


def unfinished_canary(records: RecordStore, stack: str, service: str) -> RolloutRecord | None:
    """The newest rollout record of ``service`` if it is a canary still running (a stopped run's)."""
    for stored in records.read(rollouts_stream(stack), RolloutRecord, limit=CANARY_LOOKBACK,
                               on_invalid=lambda key, error: None):
        record = stored.record
        if record.service != service:
            continue
        if record.status is RolloutStatus.CANARY_RUNNING and record.canary and record.canary.history:
            return record
        return None
    return None


def history_of(info: CanaryInfo | None) -> list[CanaryRecord]:
    return [CanaryRecord.from_dict(line.model_dump(mode="json")) for line in (info.history if info else ())]


@dataclass
class CanaryRun:
    """Drives one service's canary from its history to the next wait, or to the end.

    ``save(history)`` stores the history (called before every effect); ``promote_stable()``
    upgrades the stable release (returns a short reason and whether it succeeded); ``remove()``
    removes the canary release; ``window()`` is the stack's window now.
    """

    plan: CanaryPlan
    provider: TrafficProvider
    checks: Sequence[Evaluator]
    context: dict[str, str]
    run_id: str
    save: Callable[[list[CanaryRecord]], None]
    promote_stable: Callable[[], tuple[bool, str]]
    remove: Callable[[], None]
    window: Callable[[], WindowDecision]
    clock: Callable[[], datetime]
    history: list[CanaryRecord] = field(default_factory=list)
    log: Callable[[str], None] = print
    promotion: tuple[bool, str] | None = None  # the stable upgrade's outcome, when this run promoted

    def advance(self) -> Action:
        """Apply actions until one is ``wait`` or ``done``; return it."""
        while True:
            now, window = self.clock(), self.window()
            # owner_live is False: a rollout DAG has max_active_runs=1, so a record by another run id
            # is by a run (or an earlier try of this task) that is no longer running
            action = decide(self.plan, self.history, now=now, run_id=self.run_id, owner_live=False,
                            window_open=window.open, window_reason=window.reason)
            self.log(f"canary: {action.name}: {action.reason}")
            if action.name in ("wait", "done"):
                return action
            if action.name == "analyse":
                results = run_checks(self.checks, self.context)
                for result in results:
                    self.log(f"canary check {result.name}: {'passed' if result.passed else 'FAILED'}: {result.message}")
                weight = progress(self.plan, self.history).weight
                self._append(CanaryRecord(now, Kind.CHECK, weight, self.run_id, results, action.reason))
                continue
            record = action.record(now, self.run_id)
            assert record is not None  # set_weight, promote and abort all have one
            self._append(record)  # written ahead: a crash from here on leaves this share on record
            for effect in action.effects:
                self._apply(effect)
            if action.name in ("promote", "abort"):
                outcome = "promoted" if action.name == "promote" else "aborted"
                self._append(finished_record(self.clock(), self.run_id, outcome))

    def abort(self, reason: str) -> None:
        """Abort now, whatever the plan says (a superseded or broken canary): weight 0, canary removed."""
        now = self.clock()
        self._append(CanaryRecord(now, Kind.ABORT, 0, self.run_id, (), reason))
        try:
            self._apply(("set_weight", 0))
        except Exception as error:  # noqa: BLE001 - removing the canary below ends its share too
            self.log(f"canary: setting weight 0 failed ({error}); removing the canary ends its share")
        self._apply(("remove",))  # if this fails the ABORT line stays pending: the next run finishes it
        self._append(finished_record(self.clock(), self.run_id, "aborted"))

    def _append(self, record: CanaryRecord) -> None:
        self.history.append(record)
        self.save(list(self.history))

    def _apply(self, effect: tuple[Any, ...]) -> None:
        if effect[0] == "set_weight":
            self.log(f"canary: {self.provider.name}: weight {effect[1]}")
            self.provider.set_weight(effect[1])
        elif effect[0] == "remove":
            self.provider.remove()
            self.remove()
        elif effect[0] == "promote_stable":
            self.promotion = self.promote_stable()
        else:
            raise ValueError(f"unknown canary effect {effect!r}")

    @property
    def outcome(self) -> str | None:
        return progress(self.plan, self.history).finished

    @property
    def failing(self) -> tuple[CheckResult, ...]:
        return progress(self.plan, self.history).failing
