"""Traffic providers (adapters/traffic.py) against real APIs: the kube sandbox (HTTPRoute CRD installed
by the test, as a cluster with the Gateway API has it; Ingresses; Deployments' scale) and Route 53 on
moto_server."""

from __future__ import annotations

import time

import pytest

from stackyard.adapters.traffic import (
    GatewayApiRoute, IngressNginxCanary, ReplicaRatio, Route53Weighted, TrafficProvider,
)
from stackyard.exceptions import ConflictError, InputError, NotFoundError
from tests.support.gateway import sandbox_with_httproutes

NS = "default"
G, V, P = "gateway.networking.k8s.io", "v1", "httproutes"


@pytest.fixture(scope="module")
def kube():
    with sandbox_with_httproutes() as api_client:
        yield api_client


def custom(api_client):
    from kubernetes.client import CustomObjectsApi

    return CustomObjectsApi(api_client)


def weights(api_client, name):
    route = custom(api_client).get_namespaced_custom_object(G, V, NS, P, name)
    return [[(r["name"], r.get("weight")) for r in rule["backendRefs"]] for rule in route["spec"]["rules"]]


# --- gateway-api ---

def test_gateway_route_is_created_owned_split_and_restored(kube):
    provider = GatewayApiRoute(kube, namespace=NS, route="shop", stable_service="shop", canary_service="shop-canary",
                               port=8080, gateway="infra/public", hostnames=("shop.example.com",))
    assert isinstance(provider, TrafficProvider) and provider.current() == 0
    provider.set_weight(5)
    route = custom(kube).get_namespaced_custom_object(G, V, NS, P, "shop")
    assert route["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "stackyard"
    assert route["spec"]["parentRefs"] == [{"group": G, "kind": "Gateway", "name": "public", "namespace": "infra"}]
    assert weights(kube, "shop") == [[("shop", 95), ("shop-canary", 5)]]
    provider.set_weight(25)
    provider.set_weight(25)  # idempotent
    assert weights(kube, "shop") == [[("shop", 75), ("shop-canary", 25)]] and provider.current() == 25
    provider.set_weight(0)
    assert provider.current() == 0
    provider.remove()
    assert weights(kube, "shop") == [[("shop", 100)]]  # the route stays: it carries the stable traffic
    provider.remove()


def test_gateway_adopts_a_named_route_and_touches_only_the_stable_rules(kube):
    custom(kube).create_namespaced_custom_object(G, V, NS, P, {
        "apiVersion": f"{G}/{V}", "kind": "HTTPRoute", "metadata": {"name": "edge"},
        "spec": {"parentRefs": [{"name": "public"}], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
             "backendRefs": [{"name": "orders", "port": 80}]},
            {"backendRefs": [{"name": "catalog", "port": 80}]}]}})
    foreign = GatewayApiRoute(kube, namespace=NS, route="edge", stable_service="orders",
                              canary_service="orders-canary", port=80, gateway="public")
    with pytest.raises(ConflictError, match="not managed by stackyard"):
        foreign.set_weight(5)
    assert weights(kube, "edge") == [[("orders", None)], [("catalog", None)]]  # nothing changed
    adopted = GatewayApiRoute(kube, namespace=NS, route="edge", stable_service="orders",
                              canary_service="orders-canary", port=80, adopt=True)
    adopted.set_weight(50)
    assert weights(kube, "edge") == [[("orders", 50), ("orders-canary", 50)], [("catalog", None)]]
    adopted.remove()
    assert weights(kube, "edge") == [[("orders", 100)], [("catalog", None)]]


def test_gateway_refuses_what_it_cannot_do(kube):
    with pytest.raises(NotFoundError, match="adopted, but it does not exist"):
        GatewayApiRoute(kube, namespace=NS, route="nope", stable_service="a", canary_service="b", port=1,
                        adopt=True).set_weight(5)
    with pytest.raises(InputError, match="needs a gateway"):
        GatewayApiRoute(kube, namespace=NS, route="nope", stable_service="a", canary_service="b", port=1)
    provider = GatewayApiRoute(kube, namespace=NS, route="shop2", stable_service="a", canary_service="b", port=1,
                               gateway="g")
    with pytest.raises(InputError, match="0 to 100"):
        provider.set_weight(101)
    with pytest.raises(NotFoundError, match="Gateway API"):
        GatewayApiRoute(kube, namespace="no-such-ns", route="x", stable_service="a", canary_service="b", port=1,
                        gateway="g").set_weight(5)


# --- ingress-nginx ---

def stable_ingress(api_client, name="web"):
    from kubernetes.client import NetworkingV1Api

    NetworkingV1Api(api_client).create_namespaced_ingress(NS, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
        "spec": {"ingressClassName": "nginx", "rules": [
            {"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/static", "pathType": "Prefix",
                 "backend": {"service": {"name": "cdn", "port": {"number": 80}}}}]}}]}})
    return NetworkingV1Api(api_client)


def test_ingress_nginx_canary_mirrors_the_stable_paths_with_the_weight(kube):
    net = stable_ingress(kube)
    provider = IngressNginxCanary(kube, namespace=NS, stable_ingress="web", stable_service="web",
                                  canary_service="web-canary")
    assert provider.current() == 0
    provider.set_weight(5)
    provider.set_weight(25)
    canary = net.read_namespaced_ingress("web-canary", NS)
    assert canary.metadata.annotations["nginx.ingress.kubernetes.io/canary"] == "true"
    assert canary.metadata.annotations["nginx.ingress.kubernetes.io/canary-weight"] == "25"
    assert canary.spec.ingress_class_name == "nginx"
    [rule] = canary.spec.rules
    assert rule.host == "web.example.com"
    assert [(p.path, p.backend.service.name, p.backend.service.port.number) for p in rule.http.paths] == \
        [("/", "web-canary", 80)]  # /static goes to another service: not mirrored
    assert provider.current() == 25
    provider.remove()
    assert provider.current() == 0 and [i.metadata.name for i in net.list_namespaced_ingress(NS).items] == ["web"]
    provider.remove()


def test_ingress_nginx_refuses_a_foreign_canary_ingress_and_a_missing_stable(kube):
    net = stable_ingress(kube, "blog")
    net.create_namespaced_ingress(NS, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                       "metadata": {"name": "blog-canary"},
                                       "spec": {"defaultBackend": {"service": {"name": "x", "port": {"number": 1}}}}})
    provider = IngressNginxCanary(kube, namespace=NS, stable_ingress="blog", stable_service="web",
                                  canary_service="web-canary")
    with pytest.raises(ConflictError, match="not managed by stackyard"):
        provider.set_weight(5)
    with pytest.raises(ConflictError):
        provider.remove()
    assert net.read_namespaced_ingress("blog-canary", NS).metadata.annotations is None
    with pytest.raises(NotFoundError, match="stable Ingress"):
        IngressNginxCanary(kube, namespace=NS, stable_ingress="gone", stable_service="web",
                           canary_service="c").set_weight(5)
    with pytest.raises(InputError, match="no path sending"):
        IngressNginxCanary(kube, namespace=NS, stable_ingress="blog", stable_service="other",
                           canary_service="c", canary_ingress="blog-canary2").set_weight(5)


# --- replicas ---

def deployment(name, replicas):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "api", "track": name}},
                     "template": {"metadata": {"labels": {"app": "api", "track": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


@pytest.mark.parametrize("total, weight, expected", [(4, 0, 0), (4, 5, 1), (4, 25, 1), (4, 50, 2), (10, 25, 2),
                                                     (10, 26, 3), (1, 99, 1)])
def test_replica_ratio_rounds_and_keeps_one_pod_while_weighted(total, weight, expected):
    assert ReplicaRatio.canary_replicas(total, weight) == expected


def test_replica_ratio_scales_the_canary_deployment(kube):
    from kubernetes.client import AppsV1Api

    apps = AppsV1Api(kube)
    apps.create_namespaced_deployment(NS, deployment("api", 8))
    apps.create_namespaced_deployment(NS, deployment("api-canary", 0))
    provider = ReplicaRatio(kube, namespace=NS, stable_deployment="api", canary_deployment="api-canary")
    provider.set_weight(25)
    assert apps.read_namespaced_deployment("api-canary", NS).spec.replicas == 2
    assert apps.read_namespaced_deployment("api", NS).spec.replicas == 8  # stable untouched
    assert provider.current() == 20  # 2 of 10 pods: the approximation, said as it is
    provider.remove()
    assert apps.read_namespaced_deployment("api-canary", NS).spec.replicas == 0
    with pytest.raises(NotFoundError, match="canary Deployment"):
        ReplicaRatio(kube, namespace=NS, stable_deployment="api", canary_deployment="nope").set_weight(5)


# --- route53 ---

@pytest.fixture
def route53(moto_endpoint):
    import boto3

    from tests.support.moto import FAKE_CREDENTIALS

    client = boto3.client("route53", endpoint_url=moto_endpoint, **FAKE_CREDENTIALS)
    zone = client.create_hosted_zone(Name="example.com", CallerReference=str(time.time_ns()))["HostedZone"]["Id"]
    return client, zone


def record_sets(client, zone, name="shop.example.com."):
    sets = client.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return sorted((s["SetIdentifier"], s["Weight"], s["ResourceRecords"][0]["Value"])
                  for s in sets if s["Name"] == name and "SetIdentifier" in s)


def test_route53_weighted_records_move_between_legacy_and_kubernetes(route53):
    client, zone = route53
    provider = Route53Weighted(client, zone_id=zone, record_name="shop.example.com",
                               stable_value="legacy-lb.example.net", canary_value="k8s-ingress.example.net")
    assert provider.current() == 0
    provider.set_weight(5)
    assert record_sets(client, zone) == [("canary", 5, "k8s-ingress.example.net"),
                                         ("stable", 95, "legacy-lb.example.net")]
    provider.set_weight(50)
    provider.set_weight(50)
    assert provider.current() == 50
    provider.remove()
    assert record_sets(client, zone) == [("stable", 100, "legacy-lb.example.net")]
    provider.remove()
    assert provider.current() == 0
    with pytest.raises(InputError, match="0 to 100"):
        provider.set_weight(-1)
    assert record_sets(client, zone) == [("stable", 100, "legacy-lb.example.net")]


def test_gateway_a_concurrent_change_is_a_conflict_not_lost(kube):
    provider = GatewayApiRoute(kube, namespace=NS, route="race", stable_service="s", canary_service="c", port=80,
                               gateway="g")
    provider.set_weight(5)
    stale = provider._read()
    fresh = provider._read()
    fresh["spec"]["hostnames"] = ["someone.else.example.com"]
    custom(kube).replace_namespaced_custom_object(G, V, NS, P, "race", fresh)
    provider._read = lambda: stale  # this run read the route before the other writer changed it
    with pytest.raises(ConflictError, match="changed while"):
        provider.set_weight(25)
    route = custom(kube).get_namespaced_custom_object(G, V, NS, P, "race")
    assert route["spec"]["hostnames"] == ["someone.else.example.com"] and weights(kube, "race") == [[("s", 95), ("c", 5)]]
