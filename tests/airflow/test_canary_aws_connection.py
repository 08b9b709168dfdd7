"""The canary's AWS clients come from the AWS connection (region and endpoint included): Route 53
weights and a CloudWatch alarm through ``airflow.operators.rollouts.aws_client`` on moto_server."""

from __future__ import annotations

import time

import pytest

from stackyard.airflow.stores import aws_client
from stackyard.core.canary import CloudWatchAnalysis, Route53Traffic, check_context
from stackyard.steps.canary import analysis_checks, traffic_provider


def test_route53_and_cloudwatch_clients_from_the_aws_connection(aws_connection):
    def client(service):
        return aws_client(aws_connection, service)

    zone = client("route53").create_hosted_zone(Name="example.org", CallerReference=str(time.time_ns()))
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    config = Route53Traffic(provider="route53", zone_id=zone_id, record="shop.example.org", legacy="legacy.example.net",
                            ingress="ingress.example.net")
    provider = traffic_provider(config, namespace="n", stable_release="s", canary_release="s-canary",
                                kube_api=lambda: None, aws_client=client)
    provider.set_weight(25)
    assert provider.current() == 25
    provider.remove()
    assert provider.current() == 0

    alarm = f"shop-{time.time_ns()}"
    client("cloudwatch").put_metric_alarm(AlarmName=alarm, MetricName="m", Namespace="n", Statistic="Sum", Period=60,
                                          EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    client("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="too many")
    [check] = analysis_checks([CloudWatchAnalysis(type="cloudwatch", alarm=alarm)], aws_client=client,
                              chart_tests=lambda name: None)
    result = check.evaluate(check_context(service="shop", release="shop-canary", namespace="n", stack="k",
                                          interval_seconds=60))
    assert (check.name, result.passed) == ("cloudwatch", False) and "ALARM: too many" in result.message
