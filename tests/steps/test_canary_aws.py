"""A service leaving legacy, canaried by DNS: the registry's ``route53`` traffic and ``cloudwatch``
checks, built by steps.canary from a registry entry, driven by CanaryRun against moto_server."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import yaml

from stackyard.core.canary import check_context
from stackyard.core.rollout import WindowDecision
from stackyard.core.stack_registry import load_registry
from stackyard.steps.canary import CanaryRun, analysis_checks, traffic_provider

from tests.support.moto import FAKE_CREDENTIALS


@pytest.fixture
def aws(moto_endpoint):
    import boto3

    def client(service):
        return boto3.client(service, endpoint_url=moto_endpoint, **FAKE_CREDENTIALS)

    zone = client("route53").create_hosted_zone(Name="example.com", CallerReference=str(time.time_ns()))
    return client, zone["HostedZone"]["Id"].rsplit("/", 1)[-1]


def registry_policy(zone: str, namespace: str, alarm: str):
    entry = {"owner": "team-shop", "type": "persistent", "profile": "qa1", "services": [
        {"name": "orders", "canary": {
            "steps": [20, 60], "interval": 1,
            "traffic": {"provider": "route53", "zone_id": zone, "record": "orders.example.com",
                        "legacy": "legacy-lb.example.net", "ingress": "k8s-ingress.example.net"},
            "analysis": [{"type": "cloudwatch", "name": "5xx", "namespace": namespace, "metric": "HTTPCode_5XX",
                          "statistic": "Sum", "dimensions": {"Service": "{service}"}, "max": 10, "period": 60,
                          "window": 600},
                         {"type": "cloudwatch", "name": "latency-alarm", "alarm": alarm}]}}]}
    loaded = load_registry(yaml.safe_dump({"stacks": {"shop": entry}}), "stacks.yaml")
    assert loaded.errors == {}
    return loaded.stacks["shop"].canary_for("orders")


def weighted(client, zone):
    sets = client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return sorted((s["SetIdentifier"], s["Weight"], s["ResourceRecords"][0]["Value"])
                  for s in sets if s["Name"] == "orders.example.com." and "SetIdentifier" in s)


def drive(policy, client, zone, *, on_weight=lambda weight: None):
    provider = traffic_provider(policy.traffic, namespace="shop", stable_release="shop-orders",
                                canary_release="shop-orders-canary", kube_api=lambda: None, aws_client=client)
    seen = []
    set_weight = provider.set_weight

    def recorded_set(weight):
        set_weight(weight)
        seen.append(weighted(client, zone))
        on_weight(weight)

    provider.set_weight = recorded_set
    saved = []
    run = CanaryRun(plan=policy.plan, provider=provider,
                    checks=analysis_checks(policy.analysis, aws_client=client, chart_tests=lambda name: None),
                    context=check_context(service="orders", release="shop-orders-canary", namespace="shop",
                                          stack="shop", interval_seconds=1),
                    run_id="r#1", save=lambda history: saved.append(history), promote_stable=lambda: (True, "ok"),
                    remove=lambda: None, window=lambda: WindowDecision(True, "open"),
                    clock=lambda: datetime.now(timezone.utc), log=lambda line: None)
    for _ in range(20):
        action = run.advance()
        if action.name == "done":
            return run, seen, saved[-1]
        time.sleep(max(0.0, (action.until - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    pytest.fail("the canary never finished")


def test_route53_canary_with_cloudwatch_checks_promoted_then_aborted(aws):
    client, zone = aws
    cloudwatch = client("cloudwatch")
    namespace, alarm = f"Stackyard/Canary{time.time_ns()}", f"orders-latency-{time.time_ns()}"
    cloudwatch.put_metric_alarm(AlarmName=alarm, MetricName="Latency", Namespace=namespace, Statistic="Average",
                                Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="quiet")
    dims = [{"Name": "Service", "Value": "orders"}]
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "HTTPCode_5XX", "Dimensions": dims, "Timestamp": datetime.now(timezone.utc), "Value": 2.0}])
    policy = registry_policy(zone, namespace, alarm)

    run, seen, history = drive(policy, client, zone)
    assert run.outcome == "promoted"
    assert seen[:2] == [[("canary", 20, "k8s-ingress.example.net"), ("stable", 80, "legacy-lb.example.net")],
                        [("canary", 60, "k8s-ingress.example.net"), ("stable", 40, "legacy-lb.example.net")]]
    assert weighted(client, zone) == [("stable", 100, "legacy-lb.example.net")]
    assert [c.name for c in history[1].checks] == ["5xx", "latency-alarm"] and history[1].passed

    # the alarm fires while the canary takes its first share: aborted, the legacy endpoint gets it all
    def alarm_fires(weight):
        if weight == 20:
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="p99 over 1 s")

    run, seen, history = drive(policy, client, zone, on_weight=alarm_fires)
    assert run.outcome == "aborted"
    assert weighted(client, zone) == [("stable", 100, "legacy-lb.example.net")]
    failing = [c for c in history[1].checks if not c.passed]
    assert [c.name for c in failing] == ["latency-alarm"] and "ALARM: p99 over 1 s" in failing[0].message
    assert "latency-alarm" in history[2].reason and history[2].kind.value == "abort"
