"""A stepwise canary: the plan, its recorded history, and the one function that decides what is next.

The history is a **write-ahead log**: the operator records an action *before* applying it, and every
action is idempotent (setting a weight twice, removing a removed canary, upgrading the stable release
to the version it already runs are no-ops). So after a crash at any point the last record says a share
at least as large as the one really set, or an unfinished promotion/abort to finish — a share is never
forgotten. :func:`decide` reads the history and returns one :class:`Action`; its ``effects`` are the
provider calls to make, in order.

The rules (each has a named test in ``tests/core/test_canary.py``):

1. No record: set the first step's weight (inside the window; outside it, wait — a canary never starts
   outside its window).
2. After a weight is set, or after a failing check, wait ``interval`` seconds, then analyse.
3. A passing check advances to the next step; after the last step it promotes (stable → new version,
   weight back to 0, canary removed, in that order).
4. Failing checks are counted over the whole canary; when the count reaches ``max_failed_checks`` it
   aborts: weight 0 first, then the canary is removed. Abort is allowed at any time, window or not.
5. A closed window (or a freeze) blocks what moves traffic forward (a higher weight, a promotion):
   ``on_window_close: pause`` holds the current weight (checks keep running every interval, so a
   failing check still aborts); ``abort`` aborts a canary that has started.
6. A recorded, unfinished promotion or abort is finished first, by whichever run comes next.
7. Crash recovery: when the last record was written by another run that is no longer live, a recorded
   weight > 0 is resumed (the weight is set again and its step is observed for a full interval anew;
   failures already counted stay counted) if ``on_crash: resume`` and the record is younger than
   ``resume_within`` seconds (when set); otherwise the canary aborts. A run that is still live owns
   the canary: the others wait.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from stackyard.core.schema import Schema, problems
from stackyard.core.times import format_utc, parse_utc
from stackyard.exceptions import InputError

__all__ = ["Action", "AnalysisCheck", "CanaryPlan", "TrafficConfig", "CHECK_TYPES", "TRAFFIC_PROVIDERS", "check_names", "describe_checks", "CanaryRecord", "CheckResult", "Kind", "Progress", "decide", "finished_record",
           "parse_plan", "progress", "PLACEHOLDERS", "check_context", "substitute"]


# --- the plan ---------------------------------------------------------------------------------------


class CanaryPlan(Schema):
    """``canary:`` of a stack (or service) in ``include/stacks.yaml``."""

    steps: tuple[int, ...] = Field(default=(5, 25, 50), min_length=1)
    interval: int = Field(default=300, ge=1, description="seconds between a weight change and its analysis")
    max_failed_checks: int = Field(default=1, ge=1)
    on_window_close: Literal["pause", "abort"] = "pause"
    on_crash: Literal["resume", "abort"] = "resume"
    resume_within: int | None = Field(default=None, ge=1, description="seconds; older records abort")

    @field_validator("steps", mode="before")
    @classmethod
    def _listed(cls, steps: Any) -> Any:
        return tuple(steps) if isinstance(steps, list) else steps  # YAML lists; the model holds tuples

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        for weight in steps:
            if not 1 <= weight <= 99:
                raise ValueError(f"weight {weight} is not between 1 and 99 (100 is promotion, not a step)")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"weights {list(steps)} must increase strictly")
        return steps


def parse_plan(data: Mapping[str, Any] | None, where: str) -> CanaryPlan:
    """The plan from its YAML mapping; ``where`` names the file and stack (``include/stacks.yaml:
    stack prod``) and comes first in every error."""
    if data is None:
        return CanaryPlan()
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: canary: expected a mapping, got {type(data).__name__}")
    try:
        # YAML lists arrive as lists; the model holds tuples (frozen).
        fixed = {k: tuple(v) if k == "steps" and isinstance(v, list) else v for k, v in data.items()}
        return _InStack.model_validate({"canary": fixed}).canary
    except ValidationError as error:
        raise InputError(f"{where}: " + "; ".join(problems(error, expected=_EXPECTED))) from None


_EXPECTED = {"canary.interval": "seconds, an integer of at least 1",
             "canary.max_failed_checks": "an integer of at least 1",
             "canary.resume_within": "seconds, an integer of at least 1",
             "canary.steps": "a list of weights (integers 1..99)", "canary.steps[]": "a weight, an integer 1..99"}


class _InStack(Schema):
    canary: CanaryPlan  # so every error path starts with ``canary.``


# --- where traffic is shifted, and what is measured (the registry's canary.traffic / .analysis) -------


def _template(text: str) -> str:
    """A query, URL, alarm name or dimension value: only the known ``{placeholders}``."""
    try:
        substitute(text, _SAMPLE, where="template")
    except InputError as error:
        raise ValueError(str(error).removeprefix("template: ")) from None
    return text


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    return _template(url)


def _dns_name(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", text):
        raise ValueError(f"{text!r} is not a Kubernetes object name (DNS-1123)")
    return text


_Template = Annotated[str, AfterValidator(_template), Field(min_length=1, max_length=4000)]
_ObjectName = Annotated[str, AfterValidator(_dns_name)]
_CheckName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$")]


class GatewayApiTraffic(Schema):
    """An HTTPRoute's backendRefs (stable Service ``100-w``, canary Service ``w``). ``route`` defaults
    to the stable release's name; ``adopt: true`` adopts an existing route instead of creating one
    (which then needs ``gateway``, ``[namespace/]name``)."""

    provider: Literal["gateway-api"]
    port: int = Field(ge=1, le=65535)
    route: _ObjectName | None = None
    gateway: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")] | None = None
    adopt: bool = False
    hostnames: list[Annotated[str, Field(min_length=1, max_length=253)]] = []
    path_prefix: Annotated[str, Field(pattern=r"^/")] = "/"
    stable_service: _ObjectName | None = None
    canary_service: _ObjectName | None = None

    @model_validator(mode="after")
    def _attached(self) -> "GatewayApiTraffic":
        if not self.adopt and not self.gateway:
            raise ValueError("a route stackyard creates needs gateway ([namespace/]name); or adopt: true with route")
        if self.adopt and not self.route:
            raise ValueError("adopt: true needs the route to adopt (route: <name>)")
        return self


class IngressNginxTraffic(Schema):
    """A canary Ingress beside the stable one (``ingress``, default: the stable release's name)."""

    provider: Literal["ingress-nginx"]
    ingress: _ObjectName | None = None
    canary_ingress: _ObjectName | None = None
    stable_service: _ObjectName | None = None
    canary_service: _ObjectName | None = None


class Route53Traffic(Schema):
    """Weighted record sets of ``record`` in ``zone_id``: ``legacy`` (stable) and ``ingress`` (the
    Kubernetes ingress, canary), through the AWS connection."""

    provider: Literal["route53"]
    zone_id: Annotated[str, Field(pattern=r"^(/hostedzone/)?[A-Z0-9]{1,32}$")]
    record: Annotated[str, Field(pattern=r"^[A-Za-z0-9*]([-A-Za-z0-9_.]{0,252})$")]
    legacy: Annotated[str, Field(min_length=1, max_length=255)]
    ingress: Annotated[str, Field(min_length=1, max_length=255)]
    type: Literal["CNAME", "A", "AAAA"] = "CNAME"
    ttl: int = Field(default=60, ge=0, le=172800)


class ReplicasTraffic(Schema):
    """No traffic layer: the canary Deployment's share of pods (an approximation, see the docs)."""

    provider: Literal["replicas"]
    stable_deployment: _ObjectName | None = None
    canary_deployment: _ObjectName | None = None


TRAFFIC_PROVIDERS = ("gateway-api", "ingress-nginx", "route53", "replicas")


def _tag(key: str) -> Callable[[Any], str | None]:
    def tag(value: Any) -> str | None:
        return f"{key}={value.get(key)}" if isinstance(value, Mapping) else None
    return tag


TrafficConfig = Annotated[Union[
    Annotated[GatewayApiTraffic, Tag("provider=gateway-api")], Annotated[IngressNginxTraffic, Tag("provider=ingress-nginx")],
    Annotated[Route53Traffic, Tag("provider=route53")], Annotated[ReplicasTraffic, Tag("provider=replicas")],
], Discriminator(_tag("provider"))]


class _Bounded(Schema):
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _a_bound(self):
        _check_bounds(self.max, self.min, "set max, min or both")
        return self


def _check_bounds(max_: float | None, min_: float | None, missing: str) -> None:
    """At least one bound, and min not above max (``missing``: what to say when neither is set)."""
    if max_ is None and min_ is None:
        raise ValueError(missing)
    if max_ is not None and min_ is not None and min_ > max_:
        raise ValueError(f"min {min_:g} is above max {max_:g}")


class PrometheusAnalysis(_Bounded):
    """A PromQL instant query against ``address`` (the Prometheus HTTP API); every series within bounds."""

    type: Literal["prometheus"]
    name: _CheckName | None = None
    address: Annotated[str, AfterValidator(_http_url)]
    query: _Template
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class CloudWatchAnalysis(Schema):
    """A metric statistic against max/min, or an alarm's state (exactly one of ``metric``, ``alarm``)."""

    type: Literal["cloudwatch"]
    name: _CheckName | None = None
    alarm: _Template | None = None
    insufficient_data_passes: bool = False
    namespace: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    metric: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    statistic: Literal["Average", "Sum", "Minimum", "Maximum", "SampleCount"] = "Average"
    dimensions: dict[Annotated[str, Field(min_length=1, max_length=255)], _Template] = {}
    period: int = Field(default=60, ge=1)
    window: int = Field(default=300, ge=1)
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "CloudWatchAnalysis":
        if (self.alarm is None) == (self.metric is None):
            raise ValueError("give either alarm (an alarm's state) or metric with namespace and max/min")
        if self.metric is not None:
            if self.namespace is None:
                raise ValueError("a metric needs its namespace (e.g. AWS/ApplicationELB)")
            _check_bounds(self.max, self.min, "a metric needs max, min or both")
            if self.window < self.period:
                raise ValueError(f"window {self.window} s is shorter than period {self.period} s")
        return self


class HttpAnalysis(Schema):
    """A GET that must answer ``expect_status``."""

    type: Literal["http"]
    name: _CheckName | None = None
    url: Annotated[str, AfterValidator(_http_url)]
    expect_status: int = Field(default=200, ge=100, le=599)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class ChartTestsAnalysis(Schema):
    """The chart's own tests (``helm test`` of the canary release), run again at every analysis."""

    type: Literal["chart-tests"]
    name: _CheckName | None = None


CHECK_TYPES = ("prometheus", "cloudwatch", "http", "chart-tests")

AnalysisCheck = Annotated[Union[
    Annotated[PrometheusAnalysis, Tag("type=prometheus")], Annotated[CloudWatchAnalysis, Tag("type=cloudwatch")],
    Annotated[HttpAnalysis, Tag("type=http")], Annotated[ChartTestsAnalysis, Tag("type=chart-tests")],
], Discriminator(_tag("type"))]


def check_names(checks: Sequence[Any]) -> list[str]:
    """Each check's name in records: its own, else its type (``<type>-<n>`` when the type repeats)."""
    types = [c.type for c in checks]
    return [c.name or (c.type if types.count(c.type) == 1 else f"{c.type}-{types[:i].count(c.type) + 1}")
            for i, c in enumerate(checks)]


# --- the history ------------------------------------------------------------------------------------


class Kind(str, Enum):
    WEIGHT = "weight"      # the canary's share is (being) set to ``weight``
    CHECK = "check"        # analysis ran at ``weight``; ``checks`` holds the results
    PROMOTE = "promote"    # promotion started: stable → new version, weight 0, canary removed
    ABORT = "abort"        # abort started: weight 0, canary removed
    FINISHED = "finished"  # the promotion or abort is complete (``reason`` says which)


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, from a measurement. ``value``/``threshold`` are None when not numeric."""

    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "value": self.value, "threshold": self.threshold,
                "message": self.message}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CheckResult":
        return cls(str(data["name"]), bool(data["passed"]), data.get("value"), data.get("threshold"),
                   str(data.get("message", "")))


@dataclass(frozen=True)
class CanaryRecord:
    """One line of the canary's history (stored in the rollout record, newest last)."""

    time: datetime
    kind: Kind
    weight: int
    run_id: str
    checks: tuple[CheckResult, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"time": format_utc(self.time), "kind": self.kind.value, "weight": self.weight,
                "run_id": self.run_id, "checks": [c.to_dict() for c in self.checks], "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CanaryRecord":
        try:
            kind = Kind(data["kind"])
            weight = data["weight"]
            if not isinstance(weight, int) or not 0 <= weight <= 100:
                raise ValueError(f"weight {weight!r} is not an integer 0..100")
            return cls(parse_utc(data["time"], "canary record time"), kind, weight, str(data["run_id"]),
                       tuple(CheckResult.from_dict(c) for c in data.get("checks") or ()), str(data.get("reason", "")))
        except (KeyError, ValueError, TypeError) as error:
            raise InputError(f"canary record {dict(data)!r}: {error}") from None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass(frozen=True)
class Progress:
    """What the history says, folded: the weight recorded, the step, failures so far."""

    weight: int = 0
    step: int = -1                         # index into plan.steps; -1 before the first weight
    failed_checks: int = 0
    observed_since: datetime | None = None  # the last weight change or check
    last: CanaryRecord | None = None
    pending: Kind | None = None             # an unfinished PROMOTE or ABORT
    finished: str | None = None             # "promoted" / "aborted"
    failing: tuple[CheckResult, ...] = ()   # the checks that failed last


def progress(plan: CanaryPlan, history: Sequence[CanaryRecord]) -> Progress:
    state = Progress()
    for record in history:
        if record.kind is Kind.WEIGHT:
            # the highest step at or below the weight: a plan edited mid-canary continues from there
            step = bisect.bisect_right(plan.steps, record.weight) - 1
            state = Progress(record.weight, step, state.failed_checks, record.time, record, None, None, state.failing)
        elif record.kind is Kind.CHECK:
            failed = state.failed_checks + (0 if record.passed else 1)
            failing = tuple(c for c in record.checks if not c.passed) or state.failing
            state = Progress(state.weight, state.step, failed, record.time, record, None, None, failing)
        elif record.kind in (Kind.PROMOTE, Kind.ABORT):
            # the share stays recorded until FINISHED: a crash mid-abort must not look like weight 0
            state = Progress(state.weight, state.step, state.failed_checks, record.time, record, record.kind,
                             None, state.failing)
        else:
            state = Progress(0, state.step, state.failed_checks, record.time, record, None,
                             "promoted" if state.pending is Kind.PROMOTE else "aborted", state.failing)
    return state


# --- the decision -----------------------------------------------------------------------------------


ActionName = Literal["set_weight", "wait", "analyse", "promote", "abort", "done"]


@dataclass(frozen=True)
class Action:
    """What to do next. ``record`` is the history line to write **before** the effects are applied
    (None for wait/analyse/done: analysis records its own CHECK line with the results). ``effects``
    are provider calls in order: ``("set_weight", n)``, ``("promote_stable",)``, ``("remove",)``."""

    name: ActionName
    reason: str
    weight: int | None = None
    until: datetime | None = None  # wait: until when (None: until something outside changes)
    effects: tuple[tuple[Any, ...], ...] = field(default=())

    def record(self, now: datetime, run_id: str) -> CanaryRecord | None:
        kind = {"set_weight": Kind.WEIGHT, "promote": Kind.PROMOTE, "abort": Kind.ABORT}.get(self.name)
        if kind is None:
            return None
        return CanaryRecord(now, kind, self.weight if self.name == "set_weight" else 0, run_id, (), self.reason)


def _set(weight: int, reason: str) -> Action:
    return Action("set_weight", reason, weight=weight, effects=(("set_weight", weight),))


def _abort(reason: str) -> Action:
    return Action("abort", reason, weight=0, effects=(("set_weight", 0), ("remove",)))


def _promote(reason: str) -> Action:
    return Action("promote", reason, weight=0, effects=(("promote_stable",), ("set_weight", 0), ("remove",)))


def finished_record(now: datetime, run_id: str, outcome: str) -> CanaryRecord:
    """The line written after a promotion's or abort's effects all succeeded."""
    return CanaryRecord(now, Kind.FINISHED, 0, run_id, (), outcome)


def describe_checks(failing: Iterable[CheckResult]) -> str:
    """Failing checks in words, with their values: ``errors (value 0.4, threshold 0.05): ...``."""
    parts = []
    for check in failing:
        threshold = "" if check.threshold is None else f", threshold {check.threshold:g}"
        value = "" if check.value is None else f" (value {check.value:g}{threshold})"
        parts.append(f"{check.name}{value}{': ' + check.message if check.message else ''}")
    return "; ".join(parts) or "a check failed"


def decide(plan: CanaryPlan, history: Sequence[CanaryRecord], *, now: datetime, run_id: str,
           owner_live: bool = False, window_open: bool = True, window_reason: str = "") -> Action:
    """The next action of run ``run_id`` at ``now`` (timezone-aware).

    ``run_id`` must differ per attempt (``<dag run id>#<try number>``): a retry then counts as a
    crash and re-applies the recorded weight (rule 7) instead of trusting that it was applied.
    ``owner_live``: whether the run that wrote the last record (if another) is still running.
    ``window_open``/``window_reason``: the stack's deployment window at ``now``
    (``core.rollout.window_decision``).
    """
    if now.tzinfo is None:
        raise InputError("now: expected a timezone-aware datetime")
    state = progress(plan, history)
    last = state.last
    if state.finished:
        return Action("done", f"the canary was {state.finished}")
    if last is not None and last.run_id != run_id and owner_live:
        return Action("wait", f"run {last.run_id} is running this canary")
    # rule 6: finish what was started (both are idempotent)
    if state.pending is Kind.ABORT:
        return _abort(f"finishing the abort recorded at {format_utc(last.time)}: {last.reason}")
    if state.pending is Kind.PROMOTE:
        return _promote(f"finishing the promotion recorded at {format_utc(last.time)}")
    # rule 4: too many failures abort, window or not
    if state.failed_checks >= plan.max_failed_checks:
        return _abort(f"{state.failed_checks} failed check(s) of {plan.max_failed_checks} allowed: "
                      f"{describe_checks(state.failing)}")
    crashed = last is not None and last.run_id != run_id
    if crashed:  # rule 7
        if plan.on_crash == "abort":
            return _abort(f"run {last.run_id} stopped mid-canary at weight {state.weight}; on_crash is abort")
        if plan.resume_within is not None and now - last.time > timedelta(seconds=plan.resume_within):
            return _abort(f"run {last.run_id} stopped mid-canary at weight {state.weight} and its last record "
                          f"is older than resume_within ({plan.resume_within} s)")
        if state.weight > 0:
            return _guard(plan, _set(state.weight, f"resuming step {state.step + 1} at weight "
                                                   f"{state.weight} after run {last.run_id} stopped"),
                          window_open, window_reason)
    if last is None or state.step < 0:  # rule 1
        if not window_open:
            return Action("wait", f"not starting the canary outside the window: {window_reason}")
        return _set(plan.steps[0], f"step 1 of {len(plan.steps)}: weight {plan.steps[0]}")
    due = state.observed_since + timedelta(seconds=plan.interval)
    if last.kind is Kind.CHECK and last.passed:  # rule 3
        forward = (_promote(f"all {len(plan.steps)} steps passed their checks")
                   if state.step == len(plan.steps) - 1 else
                   _set(plan.steps[state.step + 1], f"step {state.step + 2} of {len(plan.steps)}: "
                                                    f"weight {plan.steps[state.step + 1]}"))
        if window_open:
            return forward
        if plan.on_window_close == "abort":
            return _abort(f"the window closed mid-canary (on_window_close is abort): {window_reason}")
        if now >= due:  # paused: keep watching the held share
            return Action("analyse", f"paused at weight {state.weight}; checking the held share")
        return Action("wait", f"paused at weight {state.weight}: {window_reason}", until=due)
    if not window_open and plan.on_window_close == "abort":
        return _abort(f"the window closed mid-canary (on_window_close is abort): {window_reason}")
    if now < due:  # rule 2
        return Action("wait", f"observing weight {state.weight} until {format_utc(due)}", until=due)
    return Action("analyse", f"weight {state.weight} observed for {plan.interval} s")


def _guard(plan: CanaryPlan, action: Action, window_open: bool, window_reason: str) -> Action:
    """Re-setting a recorded weight restores a share that is (or may be) live, so it is allowed in a
    closed window under ``pause``; under ``abort`` the closed window aborts."""
    if window_open or plan.on_window_close == "pause":
        return action
    return _abort(f"the window closed mid-canary (on_window_close is abort): {window_reason}")


# --- placeholders in check queries ------------------------------------------------------------------


#: What a check's query, URL or dimension may say; each value must match its pattern, so nothing a
#: value holds can change the query around it (a quote, a brace, a PromQL operator).
PLACEHOLDERS: dict[str, re.Pattern[str]] = {
    "service": re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"),
    "release": re.compile(r"[a-z0-9]([-a-z0-9.]{0,51}[a-z0-9])?"),
    "namespace": re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"),
    "stack": re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"),
    "interval": re.compile(r"[0-9]{1,7}[smhd]"),
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SAMPLE = {"service": "s", "release": "r", "namespace": "n", "stack": "k", "interval": "1s"}


def check_context(*, service: str, release: str, namespace: str, stack: str, interval_seconds: int) -> dict[str, str]:
    """The placeholder values of one canary step (``{interval}`` in Prometheus duration form)."""
    return {"service": service, "release": release, "namespace": namespace, "stack": stack,
            "interval": f"{int(interval_seconds)}s"}


def substitute(template: str, values: Mapping[str, str], *, where: str,
               escape: Callable[[str], str] = lambda text: text) -> str:
    """``template`` with each ``{name}`` of :data:`PLACEHOLDERS` replaced by ``escape(value)``. Other
    braces (PromQL label matchers ``{job="x"}``) stay as they are; an unknown ``{word}`` or a value
    that does not match its pattern is an InputError naming ``where``."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            raise InputError(f"{where}: unknown placeholder {{{name}}} (known: "
                             f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
        if name not in values:
            raise InputError(f"{where}: no value for {{{name}}}")
        value = str(values[name])
        if not PLACEHOLDERS[name].fullmatch(value):
            raise InputError(f"{where}: {{{name}}} value {value!r} is not a valid {name}")
        return escape(value)

    return _PLACEHOLDER.sub(one, template)
