"""The registry's canary fields (steps, traffic, analysis, per-service overrides) and the first form
(weight/check) that old registry files still use."""

from __future__ import annotations

import pytest
import yaml

from stackyard.core.canary import CanaryPlan, GatewayApiTraffic, HttpAnalysis, PrometheusAnalysis, Route53Traffic
from stackyard.core.stack_registry import load_registry

MINIMAL = {"owner": "team-qa", "type": "persistent", "profile": "qa1", "services": ["catalog", "orders"]}
ORIGIN = "conf/stacks.yaml"


def load(canary=None, services=None):
    entry = {**MINIMAL, **({"canary": canary} if canary is not None else {}), **({"services": services} if services else {})}
    return load_registry(yaml.safe_dump({"stacks": {"shop": entry}}), ORIGIN)


def stack(canary=None, services=None):
    loaded = load(canary, services)
    assert loaded.errors == {}, loaded.errors
    return loaded.stacks["shop"]


def test_every_field_of_the_current_form_is_read():
    canary = {
        "steps": [5, 25, 50], "interval": 120, "max_failed_checks": 2, "on_window_close": "abort",
        "on_crash": "abort", "resume_within": 600,
        "traffic": {"provider": "gateway-api", "port": 8081, "gateway": "infra/public", "hostnames": ["shop.example.com"]},
        "analysis": [
            {"type": "prometheus", "name": "errors", "address": "http://prometheus:9090",
             "query": 'sum(rate(http_errors_total{service="{service}"}[{interval}]))', "max": 0.01},
            {"type": "cloudwatch", "namespace": "AWS/ApplicationELB", "metric": "HTTPCode_Target_5XX_Count",
             "statistic": "Sum", "dimensions": {"TargetGroup": "{release}"}, "max": 5},
            {"type": "cloudwatch", "name": "alarm", "alarm": "{stack}-{service}-latency"},
            {"type": "http", "url": "http://{release}.{namespace}.svc:8081/healthz"},
            {"type": "chart-tests"},
        ],
    }
    policy = stack(canary).canary
    assert policy.plan == CanaryPlan(steps=(5, 25, 50), interval=120, max_failed_checks=2, on_window_close="abort",
                                     on_crash="abort", resume_within=600)
    assert isinstance(policy.traffic, GatewayApiTraffic) and policy.traffic.gateway == "infra/public"
    assert [c.type for c in policy.analysis] == ["prometheus", "cloudwatch", "cloudwatch", "http", "chart-tests"]
    assert isinstance(policy.analysis[0], PrometheusAnalysis) and policy.analysis[0].max == 0.01
    assert not policy.migrated


@pytest.mark.parametrize("first, steps, analysis", [
    ({"weight": 10, "check": {"type": "none"}}, (10,), []),
    ({"weight": 5, "check": {"type": "http", "url": "http://{release}.{namespace}.svc/healthz", "expect_status": 204}},
     (5,), [HttpAnalysis(type="http", url="http://{release}.{namespace}.svc/healthz", expect_status=204)]),
    ({"weight": 20}, (20,), []),
])
def test_the_first_form_still_loads_as_one_step_without_a_router(first, steps, analysis):
    policy = stack(first).canary
    assert policy.plan.steps == steps and list(policy.analysis) == analysis and policy.plan.interval == 1
    assert policy.traffic.provider == "replicas" and policy.migrated


def test_unnamed_checks_are_named_after_their_type_numbered_when_it_repeats():
    from stackyard.core.canary import check_names

    policy = stack({"analysis": [{"type": "http", "url": "http://a/"}, {"type": "chart-tests"},
                                 {"type": "http", "url": "http://b/"}, {"type": "http", "name": "mine", "url": "http://c/"}]}).canary
    assert check_names(policy.analysis) == ["http-1", "chart-tests", "http-2", "mine"]


def test_a_service_mapping_replaces_the_stacks_fields_one_by_one():
    route53 = {"provider": "route53", "zone_id": "Z123", "record": "orders.example.com", "legacy": "legacy.example.com",
               "ingress": "k8s-ingress.example.com"}
    shop = stack({"steps": [10, 50], "interval": 60},
                 ["catalog", {"name": "orders", "canary": {"traffic": route53, "steps": [1, 5, 20]}}])
    assert shop.canary_services == {"orders"}
    orders = shop.canary_for("orders")
    assert orders.plan.steps == (1, 5, 20) and orders.plan.interval == 60  # interval kept from the stack
    assert isinstance(orders.traffic, Route53Traffic) and orders.traffic.ttl == 60
    assert shop.canary_for("catalog") == shop.canary


BAD = [
    ({"steps": [25, 5]}, None, "stack shop: canary.steps: weights [25, 5] must increase strictly"),
    ({"steps": [5, 100]}, None, "stack shop: canary.steps: weight 100 is not between 1 and 99"),
    ({"steps": []}, None, "stack shop: canary.steps:"),
    ({"interval": "5m"}, None, "stack shop: canary.interval: expected seconds, an integer of at least 1"),
    ({"max_failed_checks": 0}, None, "stack shop: canary.max_failed_checks: expected an integer of at least 1"),
    ({"on_window_close": "stop"}, None, "stack shop: canary.on_window_close: 'stop' is not one of pause, abort"),
    ({"weight": 10, "steps": [10]}, None, "stack shop: canary: weight is the first form of steps"),
    ({"check": {"type": "none"}, "analysis": []}, None, "stack shop: canary: check is the first form of analysis"),
    ({"traffic": {"provider": "istio"}}, None, "stack shop: canary.traffic: expected a mapping with a provider"),
    ({"traffic": {"provider": "gateway-api", "port": 80}}, None, "stack shop: canary.traffic: a route stackyard creates needs gateway"),
    ({"traffic": {"provider": "gateway-api", "port": 80, "adopt": True}}, None, "stack shop: canary.traffic: adopt: true needs the route"),
    ({"traffic": {"provider": "gateway-api", "gateway": "gw"}}, None, "stack shop: canary.traffic.port: is required"),
    ({"traffic": {"provider": "ingress-nginx", "ingres": "web"}}, None,
     "stack shop: canary.traffic: unknown field(s) for type ingress-nginx: ingres"),
    ({"traffic": {"provider": "route53", "zone_id": "Z1", "record": "a.example.com", "legacy": "l"}}, None,
     "stack shop: canary.traffic.ingress: is required"),
    ({"analysis": [{"type": "prometheus", "address": "http://p:9090", "query": "up"}]}, None,
     "stack shop: canary.analysis[0]: set max, min or both"),
    ({"analysis": [{"type": "prometheus", "address": "http://p:9090", "query": "x{job=\"{jobb}\"}", "max": 1}]}, None,
     "stack shop: canary.analysis[0].query: unknown placeholder {jobb}"),
    ({"analysis": [{"type": "prometheus", "address": "file:///etc", "query": "up", "max": 1}]}, None,
     "stack shop: canary.analysis[0].address: expected an http(s) URL"),
    ({"analysis": [{"type": "cloudwatch", "metric": "m", "max": 1}]}, None,
     "stack shop: canary.analysis[0]: a metric needs its namespace"),
    ({"analysis": [{"type": "cloudwatch", "namespace": "AWS/ApplicationELB", "metric": "m", "max": 1, "min": 2}]},
     None, "stack shop: canary.analysis[0]: min 2 is above max 1"),
    ({"analysis": [{"type": "datadog"}]}, None, "stack shop: canary.analysis[0].type: 'datadog' is not one of prometheus, cloudwatch, http, chart-tests"),
    ({"analysis": [{"type": "http", "name": "up", "url": "http://a/"}, {"type": "chart-tests", "name": "up"}]}, None,
     "stack shop: canary: analysis: check name(s) up repeated"),
    (None, ["catalog", {"name": "orders", "canary": {"steps": [50, 5]}}],
     "stack shop: services[1].canary.steps: weights [50, 5] must increase strictly"),
    (None, ["catalog", {"name": "orders", "canary": {"steps": "all"}}],
     "stack shop: services[1].canary.steps: expected a list of weights"),
]


@pytest.mark.parametrize("canary, services, message", BAD, ids=[case[2].split(": ", 2)[1] + f"-{i}" for i, case in enumerate(BAD)])
def test_a_bad_canary_field_drops_only_its_stack_naming_file_stack_and_field(canary, services, message):
    loaded = load(canary, services)
    assert "shop" not in loaded.stacks
    assert loaded.errors["shop"].startswith(message), loaded.errors["shop"]
    assert loaded.error_report(ORIGIN).startswith(f"{ORIGIN}: 1 invalid stack entry")
