"""Canary analysis: checks that decide from measurements, each returning a
:class:`stackyard.core.canary.CheckResult` (passed, value, threshold, message).

- :class:`PrometheusCheck` — a PromQL instant query (``GET /api/v1/query``) against a threshold;
- :class:`CloudWatchMetricCheck` — a metric statistic (``get_metric_statistics``) against a threshold;
- :class:`CloudWatchAlarmCheck` — an alarm's state (``describe_alarms``);
- :class:`HttpCheck` — a GET expecting a status.

Queries, URLs and dimension values may use ``{service}``, ``{release}``, ``{namespace}``, ``{stack}``
and ``{interval}`` (:func:`stackyard.core.canary.substitute`: values are checked against their
pattern, so a value cannot change the query). A measurement that cannot be taken (the service is
unreachable, no data yet) is a *failed* check with the reason — it counts towards
``max_failed_checks`` like a bad value, as Flagger and Argo Rollouts count it; a query the server
rejects as malformed is an :class:`InputError` (a configuration mistake no retry fixes).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from stackyard.core.canary import CheckResult, substitute
from stackyard.exceptions import InputError, NotFoundError

__all__ = ["CloudWatchAlarmCheck", "CloudWatchMetricCheck", "HttpCheck", "PrometheusCheck", "Threshold"]

USER_AGENT = "stackyard-canary-analysis"


@dataclass(frozen=True)
class Threshold:
    """``max``: the value must be at most this; ``min``: at least this; one or both."""

    max: float | None = None
    min: float | None = None

    def __post_init__(self) -> None:
        if self.max is None and self.min is None:
            raise InputError("threshold: set max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise InputError(f"threshold: min {self.min} is above max {self.max}")

    def judge(self, name: str, value: float) -> CheckResult:
        if math.isnan(value):
            return CheckResult(name, False, None, self.shown(), "the measurement is NaN (no traffic yet?)")
        if self.max is not None and value > self.max:
            return CheckResult(name, False, value, self.max, f"{value:g} is above max {self.max:g}")
        if self.min is not None and value < self.min:
            return CheckResult(name, False, value, self.min, f"{value:g} is below min {self.min:g}")
        return CheckResult(name, True, value, self.shown(), f"{value:g} within {self.describe()}")

    def shown(self) -> float | None:
        return self.max if self.max is not None else self.min

    def describe(self) -> str:
        return " and ".join(p for p in (f"min {self.min:g}" if self.min is not None else "",
                                        f"max {self.max:g}" if self.max is not None else "") if p)

    def worst(self, values: list[float]) -> float:
        """The value to judge when a query returns several series: the one closest to failing."""
        return max(values) if self.max is not None else min(values)


# --- prometheus -------------------------------------------------------------------------------------


class PrometheusCheck:
    """``query`` against ``base_url`` (``http://prometheus:9090``); every series returned must be
    within ``threshold`` (the worst one is reported). No data is a failure."""

    def __init__(self, *, name: str, base_url: str, query: str, threshold: Threshold, timeout: float = 10.0,
                 headers: Mapping[str, str] | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"check {name}: prometheus address {base_url!r} is not an http(s) URL")
        self.name, self.base_url, self.query = name, base_url.rstrip("/"), query
        self.threshold, self.timeout, self.headers = threshold, timeout, dict(headers or {})

    def evaluate(self, context: Mapping[str, str]) -> CheckResult:
        query = substitute(self.query, context, where=f"check {self.name}: query",
                           escape=lambda v: v.replace("\\", "\\\\").replace('"', '\\"'))
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **self.headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s), checked
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            payload = _json_or_none(exc.read())
            if exc.code in (400, 422) and payload and payload.get("errorType") in ("bad_data", "execution"):
                raise InputError(f"check {self.name}: prometheus rejected the query {query!r}: "
                                 f"{payload.get('error')}") from None
            return CheckResult(self.name, False, None, self.threshold.shown(),
                               f"prometheus answered HTTP {exc.code} for {query!r}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return CheckResult(self.name, False, None, self.threshold.shown(),
                               f"prometheus at {self.base_url} unreachable: {getattr(exc, 'reason', exc)}")
        return self._judge(query, body)

    def _judge(self, query: str, body: Mapping[str, Any]) -> CheckResult:
        if body.get("status") != "success":
            return CheckResult(self.name, False, None, self.threshold.shown(),
                               f"prometheus: {body.get('errorType')}: {body.get('error')}")
        data = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            values = [float(result[1])]
        elif kind == "vector":
            values = [float(series["value"][1]) for series in result or []]
        else:
            raise InputError(f"check {self.name}: query {query!r} returns a {kind}; expected a scalar or an "
                             "instant vector (aggregate a range with rate(), avg_over_time(), ...)")
        if not values:
            return CheckResult(self.name, False, None, self.threshold.shown(), f"no data for {query!r}")
        if any(math.isnan(v) for v in values):
            return self.threshold.judge(self.name, math.nan)
        result_ = self.threshold.judge(self.name, self.threshold.worst(values))
        series = f" (worst of {len(values)} series)" if len(values) > 1 else ""
        return CheckResult(result_.name, result_.passed, result_.value, result_.threshold, result_.message + series)


def _json_or_none(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- cloudwatch -------------------------------------------------------------------------------------


STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")


class CloudWatchMetricCheck:
    """The newest ``statistic`` datapoint of ``namespace``/``metric`` (``dimensions``, placeholders
    allowed in values) over the last ``window`` seconds, in ``period``-second buckets, against
    ``threshold``. ``client`` is a boto3 ``cloudwatch`` client (from the AWS connection)."""

    def __init__(self, client: Any, *, name: str, namespace: str, metric: str, statistic: str,
                 threshold: Threshold, dimensions: Mapping[str, str] | None = None, period: int = 60,
                 window: int = 300, clock=lambda: datetime.now(timezone.utc)) -> None:
        if statistic not in STATISTICS:
            raise InputError(f"check {name}: statistic {statistic!r} is not one of {', '.join(STATISTICS)}")
        if period < 1 or window < period:
            raise InputError(f"check {name}: period {period} s and window {window} s: need 1 <= period <= window")
        self.client, self.name, self.namespace, self.metric = client, name, namespace, metric
        self.statistic, self.threshold, self.dimensions = statistic, threshold, dict(dimensions or {})
        self.period, self.window, self.clock = period, window, clock

    def evaluate(self, context: Mapping[str, str]) -> CheckResult:
        dimensions = [{"Name": key, "Value": substitute(value, context, where=f"check {self.name}: dimension {key}")}
                      for key, value in sorted(self.dimensions.items())]
        # end at the next period boundary so the current (partial) period is one of the buckets;
        # CloudWatch aligns buckets to the period anyway
        now = self.clock().timestamp()
        end = datetime.fromtimestamp((now // self.period + 1) * self.period, timezone.utc)
        answer = self.client.get_metric_statistics(
            Namespace=self.namespace, MetricName=self.metric, Dimensions=dimensions,
            StartTime=end - timedelta(seconds=self.window), EndTime=end, Period=self.period,
            Statistics=[self.statistic])
        points = sorted(answer.get("Datapoints") or [], key=lambda p: p["Timestamp"])
        if not points:
            return CheckResult(self.name, False, None, self.threshold.shown(),
                               f"no {self.namespace}/{self.metric} datapoints in the last {self.window} s")
        return self.threshold.judge(self.name, float(points[-1][self.statistic]))


class CloudWatchAlarmCheck:
    """Passes while the alarm is ``OK``; ``ALARM`` fails; ``INSUFFICIENT_DATA`` fails unless
    ``insufficient_data_passes``. The alarm name may use placeholders."""

    def __init__(self, client: Any, *, name: str, alarm: str, insufficient_data_passes: bool = False) -> None:
        self.client, self.name, self.alarm = client, name, alarm
        self.insufficient_data_passes = insufficient_data_passes

    def evaluate(self, context: Mapping[str, str]) -> CheckResult:
        alarm = substitute(self.alarm, context, where=f"check {self.name}: alarm")
        found = self.client.describe_alarms(AlarmNames=[alarm]).get("MetricAlarms") or []
        if not found:
            raise NotFoundError(f"check {self.name}: CloudWatch alarm {alarm!r} does not exist")
        state = found[0]["StateValue"]
        passed = state == "OK" or (state == "INSUFFICIENT_DATA" and self.insufficient_data_passes)
        reason = found[0].get("StateReason", "")
        return CheckResult(self.name, passed, None, None, f"alarm {alarm} is {state}" + (f": {reason}" if reason else ""))


# --- http -------------------------------------------------------------------------------------------


class HttpCheck:
    """GET ``url`` (placeholders allowed); passes on ``expect_status``. No retries: the interval and
    ``max_failed_checks`` are the retries."""

    def __init__(self, *, name: str, url: str, expect_status: int = 200, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"check {name}: {url!r} is not an http(s) URL")
        self.name, self.url, self.expect_status, self.timeout = name, url, expect_status, timeout

    def evaluate(self, context: Mapping[str, str]) -> CheckResult:
        url = substitute(self.url, context, where=f"check {self.name}: url", escape=urllib.parse.quote)
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s), checked
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            return CheckResult(self.name, False, None, float(self.expect_status),
                               f"GET {url}: {getattr(exc, 'reason', exc)}")
        return CheckResult(self.name, status == self.expect_status, float(status), float(self.expect_status),
                           f"GET {url}: status {status}, expected {self.expect_status}")
