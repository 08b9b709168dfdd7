"""Canary analysis (adapters/analysis.py) from real measurements: a real Prometheus (Debian's
``prometheus`` binary, started here) scraping a tiny exporter this test serves and controls;
CloudWatch on moto_server; an HTTP server on loopback."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stackyard.adapters.analysis import (
    CloudWatchAlarmCheck, CloudWatchMetricCheck, HttpCheck, PrometheusCheck, Threshold,
)
from stackyard.core.canary import check_context
from stackyard.exceptions import InputError, NotFoundError
from tests.support.oci_registry import free_port
from tests.support.prometheus import running_prometheus, scraped

CONTEXT = check_context(service="shop", release="shop-canary", namespace="prod", stack="prod", interval_seconds=30)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with running_prometheus(tmp_path_factory.mktemp("prometheus")) as (base, exporter):
        yield base, exporter


ERROR_RATIO = 'max(shop_error_ratio{service="{service}", namespace="{namespace}", track="canary"})'


def test_prometheus_healthy_then_unhealthy_canary_from_real_queries(prometheus):
    base, exporter = prometheus
    check = PrometheusCheck(name="error-ratio", base_url=base, query=ERROR_RATIO, threshold=Threshold(max=0.05))
    exporter.values["canary"] = 0.02
    scraped(base, "canary", 0.02)
    healthy = check.evaluate(CONTEXT)
    assert (healthy.passed, healthy.value, healthy.threshold) == (True, 0.02, 0.05)
    exporter.values["canary"] = 0.4
    scraped(base, "canary", 0.4)
    sick = check.evaluate(CONTEXT)
    assert (sick.passed, sick.value, sick.threshold) == (False, 0.4, 0.05)
    assert "above max 0.05" in sick.message


def test_prometheus_interval_placeholder_min_threshold_and_worst_series(prometheus):
    base, exporter = prometheus
    exporter.values.update(stable=0.9, canary=0.95)
    scraped(base, "stable", 0.9)
    scraped(base, "canary", 0.95)
    success = PrometheusCheck(name="success", base_url=base, threshold=Threshold(min=0.92),
                              query='min_over_time(shop_error_ratio{service="{service}"}[{interval}])')
    result = success.evaluate(CONTEXT)  # two series (both tracks): the lowest is judged
    assert not result.passed and result.value <= 0.9 and "worst of 2 series" in result.message


def test_prometheus_no_data_and_unreachable_fail_and_a_malformed_query_is_an_input_error(prometheus):
    base, _ = prometheus
    none = PrometheusCheck(name="n", base_url=base, query='shop_error_ratio{service="other"}',
                           threshold=Threshold(max=1)).evaluate(CONTEXT)
    assert not none.passed and "no data" in none.message
    gone = PrometheusCheck(name="g", base_url=f"http://127.0.0.1:{free_port()}", query="up",
                           threshold=Threshold(max=1)).evaluate(CONTEXT)
    assert not gone.passed and "unreachable" in gone.message
    with pytest.raises(InputError, match="rejected the query"):
        PrometheusCheck(name="bad", base_url=base, query="sum(", threshold=Threshold(max=1)).evaluate(CONTEXT)


@pytest.mark.parametrize("query, words", [
    ('up{service="{servce}"}', "unknown placeholder {servce}"),
    ('up{service="{service}"}', "is not a valid service"),
])
def test_prometheus_placeholders_are_substituted_safely(query, words):
    context = {**CONTEXT, "service": 'x"} or vector(1) #'}
    check = PrometheusCheck(name="p", base_url="http://127.0.0.1:1", query=query, threshold=Threshold(max=1))
    with pytest.raises(InputError, match=words.replace("{", r"\{").replace("}", r"\}")):
        check.evaluate(context)


# Recorded /api/v1/query response bodies (shapes from Prometheus 2.42's API, copied from real
# answers): the parsing rules, independent of the live server above.
RECORDED = {
    "scalar": {"status": "success", "data": {"resultType": "scalar", "result": [1733050000.1, "0.5"]}},
    "nan": {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": {}, "value": [1733050000.1, "NaN"]}]}},
    "matrix": {"status": "success", "data": {"resultType": "matrix", "result": []}},
}


def test_recorded_scalar_nan_and_matrix_answers():
    check = PrometheusCheck(name="r", base_url="http://127.0.0.1:1", query="q", threshold=Threshold(max=1))
    assert check._judge("q", RECORDED["scalar"]).passed
    nan = check._judge("q", RECORDED["nan"])
    assert not nan.passed and "NaN" in nan.message
    with pytest.raises(InputError, match="returns a matrix"):
        check._judge("q", RECORDED["matrix"])


def test_threshold_needs_a_bound():
    with pytest.raises(InputError, match="max, min"):
        Threshold()
    with pytest.raises(InputError, match="above max"):
        Threshold(max=1, min=2)


# --- cloudwatch ---

@pytest.fixture
def cloudwatch(moto_endpoint):
    import boto3

    from tests.support.moto import FAKE_CREDENTIALS

    return boto3.client("cloudwatch", endpoint_url=moto_endpoint, **FAKE_CREDENTIALS)


def test_cloudwatch_metric_statistic_decides_healthy_and_unhealthy(cloudwatch):
    namespace = f"Stackyard/Test{time.time_ns()}"
    check = CloudWatchMetricCheck(cloudwatch, name="5xx", namespace=namespace, metric="HTTPCode_5XX",
                                  statistic="Sum", threshold=Threshold(max=10),
                                  dimensions={"Service": "{service}", "Stack": "{stack}"})
    empty = check.evaluate(CONTEXT)
    assert not empty.passed and "no " in empty.message
    dims = [{"Name": "Service", "Value": "shop"}, {"Name": "Stack", "Value": "prod"}]
    now = datetime.now(timezone.utc)
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "HTTPCode_5XX", "Dimensions": dims, "Timestamp": now, "Value": 3.0}])
    healthy = check.evaluate(CONTEXT)
    assert (healthy.passed, healthy.value, healthy.threshold) == (True, 3.0, 10)
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "HTTPCode_5XX", "Dimensions": dims, "Timestamp": now, "Value": 40.0}])
    sick = check.evaluate(CONTEXT)
    assert (sick.passed, sick.value) == (False, 43.0)
    with pytest.raises(InputError, match="statistic"):
        CloudWatchMetricCheck(cloudwatch, name="x", namespace="n", metric="m", statistic="p99",
                              threshold=Threshold(max=1))


def test_cloudwatch_alarm_state(cloudwatch):
    name = f"shop-prod-5xx-{time.time_ns()}"
    cloudwatch.put_metric_alarm(AlarmName=name, MetricName="HTTPCode_5XX", Namespace="Stackyard", Statistic="Sum",
                                Period=60, EvaluationPeriods=1, Threshold=10, ComparisonOperator="GreaterThanThreshold")
    check = CloudWatchAlarmCheck(cloudwatch, name="alarm", alarm=name)
    # (moto creates alarms OK; AWS creates them INSUFFICIENT_DATA: set it, as AWS would have it)
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="INSUFFICIENT_DATA", StateReason="new")
    assert not check.evaluate(CONTEXT).passed
    assert CloudWatchAlarmCheck(cloudwatch, name="a", alarm=name, insufficient_data_passes=True).evaluate(CONTEXT).passed
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="quiet")
    assert check.evaluate(CONTEXT).passed
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="5xx over 10")
    result = check.evaluate(CONTEXT)
    assert not result.passed and "ALARM: 5xx over 10" in result.message
    with pytest.raises(NotFoundError, match="does not exist"):
        CloudWatchAlarmCheck(cloudwatch, name="a", alarm="nope").evaluate(CONTEXT)


# --- http ---

def test_http_check_expects_a_status():
    statuses = {"/healthz/shop": 200, "/healthz/broken": 503}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(statuses.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        ok = HttpCheck(name="h", url=base + "/healthz/{service}").evaluate(CONTEXT)
        assert ok.passed and ok.value == 200
        bad = HttpCheck(name="h", url=base + "/healthz/broken").evaluate(CONTEXT)
        assert not bad.passed and "status 503, expected 200" in bad.message
    finally:
        server.shutdown()
    down = HttpCheck(name="h", url=base + "/healthz/shop", timeout=2).evaluate(CONTEXT)
    assert not down.passed
