"""Canary-first through the rollout DAG with real parts: the Gateway API on the kube sandbox (the
HTTPRoute CRD installed here, as a cluster would have it) and a real Prometheus scraping an exporter
the test controls. One healthy canary is promoted, one unhealthy aborted, and one run stopped
mid-canary is resumed from the rollout record by the next run."""

from __future__ import annotations

import pytest

from stackyard.core.rollout import canary_release, service_release

from tests.e2e.test_rollouts import production, production_charts, qa, rollouts, run  # noqa: F401 (fixtures)
from tests.support.gateway import backend_weights, install_httproute_crd
from tests.support.prometheus import running_prometheus, scraped
from tests.support.webhook import Receiver

pytestmark = [pytest.mark.slow]

QUERY = 'max(shop_error_ratio{service="{service}", namespace="{namespace}", track="canary"})'


@pytest.fixture
def gateway_api(local_stack):
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(local_stack.kubeconfig))
    install_httproute_crd(api_client)
    return api_client


@pytest.fixture
def alerts(monkeypatch):
    import json

    receiver = Receiver()
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": f"http://127.0.0.1:{receiver.port}", "extra": {"format": "json"}}))
    yield receiver
    receiver.server.shutdown()


def test_gateway_canary_promoted_aborted_and_resumed_from_the_record(
        local_stack, rollouts, production_charts, gateway_api, alerts, tmp_path, monkeypatch, capfd):
    prod, stage = rollouts.name("prod"), rollouts.name("stage")
    (tmp_path / "prometheus").mkdir()
    with running_prometheus(tmp_path / "prometheus", service="orders", namespace=prod) as (base, exporter):
        canary = {"steps": [10, 50], "interval": 1, "max_failed_checks": 1,
                  "traffic": {"provider": "gateway-api", "port": 8081, "gateway": "infra/public"},
                  "analysis": [{"type": "prometheus", "name": "errors", "address": base, "query": QUERY, "max": 0.05},
                               {"type": "chart-tests"}]}
        bag = rollouts.dagbag(**{stage: qa(stage, profile="stage", services=["catalog", "orders"]),
                                 prod: production(prod, stage, canary=canary)})
        assert run(bag, f"rollout_{stage}")[0] == "success"
        assert run(bag, f"rollout_{prod}")[0] == "success"  # first install: no canary
        route = service_release(prod, "orders")

        def release(version):
            rollouts.bump("orders", version, source=production_charts["orders"])
            assert run(bag, f"rollout_{stage}")[0] == "success"

        # healthy: 10 % then 50 % through the HTTPRoute, each analysed by a real query, then promoted
        release("1.1.0")
        exporter.values["canary"] = 0.01
        scraped(base, "canary", 0.01)
        state, tasks, upgrades = run(bag, f"rollout_{prod}")
        assert state == "success", (tasks, upgrades)
        promoted = rollouts.rollouts(prod)[-1]
        assert (promoted["status"], promoted["to_version"], promoted["canary"]["provider"]) == ("succeeded", "1.1.0", "gateway-api")
        history = promoted["canary"]["history"]
        assert [(h["kind"], h["weight"]) for h in history] == [
            ("weight", 10), ("check", 10), ("weight", 50), ("check", 50), ("promote", 0), ("finished", 0)]
        assert [(c["name"], c["passed"], c["value"]) for c in history[1]["checks"]] == [("errors", True, 0.01), ("chart-tests", True, None)]
        assert backend_weights(gateway_api, prod, route) == [[(route, 100)]]  # weight back to stable
        assert rollouts.releases(prod) == {"catalog": "1.0.0", "orders": "1.1.0"}  # canary removed
        stable_revisions = len(rollouts.history("orders", prod))

        # unhealthy: the first analysis fails; weight 0 at once, canary removed, stable untouched
        release("1.2.0")
        exporter.values["canary"] = 0.4
        scraped(base, "canary", 0.4)
        state, _, upgrades = run(bag, f"rollout_{prod}")
        assert state == "failed" and upgrades == {"orders": "failed"}
        aborted = rollouts.rollouts(prod)[-1]
        assert aborted["status"] == "canary_aborted" and aborted["canary"]["weight"] == 0
        assert "canary check failed: errors (value 0.4, threshold 0.05): 0.4 is above max 0.05" in aborted["reason"], aborted["reason"]
        assert [h["kind"] for h in aborted["canary"]["history"]] == ["weight", "check", "abort", "finished"]
        assert backend_weights(gateway_api, prod, route) == [[(route, 100)]]
        assert rollouts.releases(prod) == {"catalog": "1.0.0", "orders": "1.1.0"}
        assert len(rollouts.history("orders", prod)) == stable_revisions
        # the owner is alerted, with the failing check and its value
        (alert,) = [body for _, _, body in alerts.requests if body["kind"] == "rollout_failed"]
        assert alert["owner"] == "team-release" and "errors (value 0.4, threshold 0.05)" in alert["text"]
        alerts.requests.clear()

        # stopped mid-canary: the worker dies after 50 % is on record, before the route has it
        release("1.3.0")
        exporter.values["canary"] = 0.01
        scraped(base, "canary", 0.01)
        from stackyard.adapters.traffic import GatewayApiRoute

        original = GatewayApiRoute.set_weight

        def dies_at_50(self, weight):
            if weight == 50:
                raise RuntimeError("worker lost")
            return original(self, weight)

        monkeypatch.setattr(GatewayApiRoute, "set_weight", dies_at_50)
        assert run(bag, f"rollout_{prod}")[0] == "failed"
        left = rollouts.rollouts(prod)[-1]
        assert left["status"] == "canary_running" and left["canary"]["weight"] == 50  # the record covers the share
        assert backend_weights(gateway_api, prod, route) == [[(route, 90), (canary_release(route), 10)]]
        assert canary_release(route) in {r.name for r in local_stack.helm.list(namespace=prod)}
        (alert,) = [body for _, _, body in alerts.requests if body["kind"] == "rollout_failed"]
        assert "canary stopped with its share on record: worker lost" in alert["text"]

        monkeypatch.setattr(GatewayApiRoute, "set_weight", original)
        state, tasks, upgrades = run(bag, f"rollout_{prod}")
        assert state == "success", (tasks, upgrades)
        resumed = rollouts.rollouts(prod)[-1]
        assert resumed["status"] == "succeeded" and resumed["to_version"] == "1.3.0"
        kinds = [(h["kind"], h["weight"]) for h in resumed["canary"]["history"]]
        assert kinds[:3] == [("weight", 10), ("check", 10), ("weight", 50)]
        assert kinds[3:] == [("weight", 50), ("check", 50), ("promote", 0), ("finished", 0)]
        assert "resuming step 2 at weight 50" in resumed["canary"]["history"][3]["reason"]
        assert backend_weights(gateway_api, prod, route) == [[(route, 100)]]
        assert rollouts.releases(prod) == {"catalog": "1.0.0", "orders": "1.3.0"}

        # a canary left on (stopped at 50 %) while a newer version is planned: the old one is aborted
        # first (weight 0, removed; on record as superseded), then the new one runs from the start
        release("1.4.0")
        monkeypatch.setattr(GatewayApiRoute, "set_weight", dies_at_50)
        assert run(bag, f"rollout_{prod}")[0] == "failed"
        assert rollouts.rollouts(prod)[-1]["status"] == "canary_running"
        monkeypatch.setattr(GatewayApiRoute, "set_weight", original)
        release("1.5.0")
        state, tasks, upgrades = run(bag, f"rollout_{prod}")
        assert state == "success", (tasks, upgrades)
        superseded = [r for r in rollouts.rollouts(prod) if r["to_version"] == "1.4.0"][-1]
        assert superseded["status"] == "canary_aborted" and superseded["canary"]["weight"] == 0
        assert superseded["canary"]["history"][-2]["reason"] == "superseded by 1.5.0"
        newest = rollouts.rollouts(prod)[-1]
        assert (newest["status"], newest["to_version"]) == ("succeeded", "1.5.0")
        assert [h["kind"] for h in newest["canary"]["history"]] == ["weight", "check", "weight", "check", "promote", "finished"]
        assert backend_weights(gateway_api, prod, route) == [[(route, 100)]]
        assert rollouts.releases(prod) == {"catalog": "1.0.0", "orders": "1.5.0"}
