"""steps.canary.CanaryRun with real parts: an HTTPRoute on the kube sandbox (CRD installed here) whose
weights really move, and a real Prometheus scraping an exporter the test controls. A healthy canary
is promoted, an unhealthy one aborted, and a run killed mid-canary is resumed or aborted from its
write-ahead history — never a forgotten share."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from stackyard.adapters.traffic import GatewayApiRoute
from stackyard.core.canary import CanaryPlan, CanaryRecord, Kind, PrometheusAnalysis, check_context, progress
from stackyard.core.rollout import WindowDecision
from stackyard.steps.canary import CanaryRun, analysis_checks

from tests.support.gateway import backend_weights, sandbox_with_httproutes
from tests.support.prometheus import running_prometheus, scraped

NS = "default"
OPEN = WindowDecision(True, "always open")


@pytest.fixture(scope="module")
def kube():
    with sandbox_with_httproutes() as api_client:
        yield api_client


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), service="shop", namespace=NS) as found:
        yield found


class Killed(BaseException):
    """The worker dying between the record and the provider call (not an Exception: nothing catches it)."""


class Recorder:
    """The write-ahead store and the provider side by side: every provider call must find its weight
    already on record (the newest line's weight is at least the share being set)."""

    def __init__(self, provider, kill_at: int | None = None):
        self.provider, self.kill_at = provider, kill_at
        self.saved: list[CanaryRecord] = []
        self.name = provider.name
        self.removed = self.promoted = 0

    def save(self, history):
        self.saved = list(history)

    def set_weight(self, weight):
        state = progress(PLAN, self.saved)
        assert self.saved and self.saved[-1].kind in (Kind.WEIGHT, Kind.ABORT, Kind.PROMOTE)
        assert state.weight >= weight or self.saved[-1].kind is not Kind.WEIGHT, "a share set before its record"
        if weight == self.kill_at:
            raise Killed(f"killed before weight {weight} reached the route")
        self.provider.set_weight(weight)

    def current(self):
        return self.provider.current()

    def remove(self):
        self.provider.remove()


PLAN = CanaryPlan(steps=(10, 50), interval=1, max_failed_checks=1)
QUERY = 'max(shop_error_ratio{service="{service}", namespace="{namespace}", track="canary"})'


def route(kube, name):
    return GatewayApiRoute(kube, namespace=NS, route=name, stable_service="shop", canary_service="shop-canary",
                           port=8080, gateway="infra/public")


def canary_run(kube, base, name, *, run_id="run-1#1", kill_at=None, history=(), plan=PLAN):
    recorder = Recorder(route(kube, name), kill_at)
    recorder.saved = list(history)
    checks = analysis_checks([PrometheusAnalysis(type="prometheus", name="errors", address=base, query=QUERY, max=0.05)],
                             aws_client=lambda service: None, chart_tests=lambda name: None)

    def promote():
        recorder.promoted += 1
        return True, "stable upgraded"

    def remove():
        recorder.removed += 1

    run = CanaryRun(plan=plan, provider=recorder, checks=checks, run_id=run_id, save=recorder.save,
                    context=check_context(service="shop", release="shop-canary", namespace=NS, stack="prod",
                                          interval_seconds=plan.interval),
                    promote_stable=promote, remove=remove, window=lambda: OPEN,
                    clock=lambda: datetime.now(timezone.utc), history=list(history), log=lambda line: None)
    return run, recorder


def until_done(run):
    """What the operator does by rescheduling: wait until the action's time, then advance again."""
    for _ in range(50):
        action = run.advance()
        if action.name == "done":
            return action
        assert action.name == "wait" and action.until is not None, action
        time.sleep(max(0.0, (action.until - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    pytest.fail("the canary never finished")


def test_a_healthy_canary_steps_through_real_weights_and_is_promoted(kube, prometheus):
    base, exporter = prometheus
    exporter.values["canary"] = 0.01
    scraped(base, "canary", 0.01)
    run, recorder = canary_run(kube, base, "healthy")
    seen = []
    original = recorder.provider.set_weight
    recorder.provider.set_weight = lambda w: (original(w), seen.append(backend_weights(kube, NS, "healthy")))
    until_done(run)
    assert run.outcome == "promoted" and recorder.promoted == 1 and recorder.removed == 1
    assert seen[:2] == [[[("shop", 90), ("shop-canary", 10)]], [[("shop", 50), ("shop-canary", 50)]]]
    assert backend_weights(kube, NS, "healthy") == [[("shop", 100)]]  # back to stable, canary backendRef gone
    kinds = [(line.kind.value, line.weight) for line in recorder.saved]
    assert kinds == [("weight", 10), ("check", 10), ("weight", 50), ("check", 50), ("promote", 0), ("finished", 0)]
    check = recorder.saved[1].checks[0]
    assert (check.name, check.passed, check.value, check.threshold) == ("errors", True, 0.01, 0.05)


def test_an_unhealthy_canary_is_aborted_at_once_naming_the_check_and_its_value(kube, prometheus):
    base, exporter = prometheus
    exporter.values["canary"] = 0.4
    scraped(base, "canary", 0.4)
    run, recorder = canary_run(kube, base, "unhealthy")
    until_done(run)
    assert run.outcome == "aborted" and recorder.promoted == 0 and recorder.removed == 1
    assert backend_weights(kube, NS, "unhealthy") == [[("shop", 100)]]
    abort = next(line for line in recorder.saved if line.kind is Kind.ABORT)
    assert "errors (value 0.4, threshold 0.05)" in abort.reason and "above max 0.05" in abort.reason
    assert [line.kind.value for line in recorder.saved] == ["weight", "check", "abort", "finished"]


@pytest.mark.parametrize("on_crash", ["resume", "abort"])
def test_a_run_killed_mid_canary_is_resumed_or_aborted_from_its_record(kube, prometheus, on_crash):
    base, exporter = prometheus
    exporter.values["canary"] = 0.01
    scraped(base, "canary", 0.01)
    plan = CanaryPlan(steps=(10, 50), interval=1, on_crash=on_crash)
    name = f"killed-{on_crash}"
    first, recorder = canary_run(kube, base, name, kill_at=50, plan=plan)
    with pytest.raises(Killed):
        until_done(first)
    # the record says 50 (written ahead); the route still has 10: the record covers the live share
    assert recorder.saved[-1].kind is Kind.WEIGHT and recorder.saved[-1].weight == 50
    assert backend_weights(kube, NS, name) == [[("shop", 90), ("shop-canary", 10)]]

    # the next run (or a retry: another run id) reads the record and carries on
    second, after = canary_run(kube, base, name, run_id="run-2#1", history=recorder.saved, plan=plan)
    until_done(second)
    assert backend_weights(kube, NS, name) == [[("shop", 100)]] and after.removed == 1
    kinds = [line.kind.value for line in after.saved[len(recorder.saved):]]
    if on_crash == "resume":
        assert second.outcome == "promoted" and after.promoted == 1
        assert kinds == ["weight", "check", "promote", "finished"] and after.saved[len(recorder.saved)].weight == 50
        assert "resuming step 2 at weight 50 after run run-1#1 stopped" in after.saved[len(recorder.saved)].reason
    else:
        assert second.outcome == "aborted" and after.promoted == 0
        assert kinds == ["abort", "finished"]
        assert "stopped mid-canary at weight 50; on_crash is abort" in after.saved[-2].reason


@pytest.mark.parametrize("on_window_close", ["pause", "abort"])
def test_a_window_closing_mid_canary_pauses_or_aborts_it(kube, prometheus, on_window_close):
    base, exporter = prometheus
    exporter.values["canary"] = 0.01
    scraped(base, "canary", 0.01)
    plan = CanaryPlan(steps=(10, 50), interval=1, on_window_close=on_window_close)
    name = f"window-{on_window_close}"
    run, recorder = canary_run(kube, base, name, plan=plan)
    window = {"now": OPEN}
    run.window = lambda: window["now"]
    assert run.advance().name == "wait"  # weight 10 set, observed for an interval
    window["now"] = WindowDecision(False, "outside mon-thu 09:00-16:00 Europe/Berlin")
    time.sleep(1.1)
    action = run.advance()
    if on_window_close == "abort":
        assert action.name == "done" and run.outcome == "aborted"
        assert "the window closed mid-canary (on_window_close is abort)" in recorder.saved[-2].reason
        assert backend_weights(kube, NS, name) == [[("shop", 100)]]
        return
    # paused: the share is held, and the held share is still analysed every interval
    assert action.name == "wait" and "paused at weight 10" in action.reason
    assert backend_weights(kube, NS, name) == [[("shop", 90), ("shop-canary", 10)]]
    time.sleep(1.1)
    checks_before = sum(line.kind is Kind.CHECK for line in recorder.saved)
    assert run.advance().name == "wait"
    assert sum(line.kind is Kind.CHECK for line in recorder.saved) == checks_before + 1
    assert backend_weights(kube, NS, name) == [[("shop", 90), ("shop-canary", 10)]]
    window["now"] = OPEN  # the window opens again: the canary carries on to promotion
    until_done(run)
    assert run.outcome == "promoted" and backend_weights(kube, NS, name) == [[("shop", 100)]]


def test_ingress_nginx_from_a_registry_entry_steps_the_canary_ingress_and_removes_it(kube, prometheus):
    """The registry's ``ingress-nginx`` traffic, built by steps.canary.traffic_provider with the
    chart contract's defaults (the stable Ingress and Service are named after the stable release)."""
    import yaml
    from kubernetes.client import NetworkingV1Api

    from stackyard.core.stack_registry import load_registry
    from stackyard.steps.canary import traffic_provider

    base, exporter = prometheus
    exporter.values["canary"] = 0.01
    scraped(base, "canary", 0.01)
    net = NetworkingV1Api(kube)
    net.create_namespaced_ingress(NS, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "shop-orders"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "orders.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "shop-orders", "port": {"number": 8081}}}}]}}]}})
    entry = {"owner": "team-shop", "type": "persistent", "profile": "qa1", "services": [{"name": "orders", "canary": {
        "steps": [20, 40], "interval": 1, "traffic": {"provider": "ingress-nginx"},
        "analysis": [{"type": "prometheus", "name": "errors", "address": base, "query": QUERY, "max": 0.05}]}}]}
    policy = load_registry(yaml.safe_dump({"stacks": {"shop": entry}})).stacks["shop"].canary_for("orders")
    provider = traffic_provider(policy.traffic, namespace=NS, stable_release="shop-orders",
                                canary_release="shop-orders-canary", kube_api=lambda: kube, aws_client=lambda s: None)
    seen = []
    set_weight = provider.set_weight

    def observed(weight):
        set_weight(weight)
        found = net.read_namespaced_ingress("shop-orders-canary", NS) if weight else None
        seen.append(found and (found.metadata.annotations["nginx.ingress.kubernetes.io/canary-weight"],
                               found.spec.rules[0].http.paths[0].backend.service.name))

    provider.set_weight = observed
    saved = []
    run = CanaryRun(plan=policy.plan, provider=provider,
                    checks=analysis_checks(policy.analysis, aws_client=lambda s: None, chart_tests=lambda n: None),
                    context=check_context(service="shop", release="shop-orders-canary", namespace=NS, stack="shop",
                                          interval_seconds=1),
                    run_id="r#1", save=saved.append, promote_stable=lambda: (True, "ok"), remove=lambda: None,
                    window=lambda: OPEN, clock=lambda: datetime.now(timezone.utc), log=lambda line: None)
    until_done(run)
    assert run.outcome == "promoted"
    assert seen == [("20", "shop-orders-canary"), ("40", "shop-orders-canary"), None]
    assert [i.metadata.name for i in net.list_namespaced_ingress(NS).items if i.metadata.name.startswith("shop-orders")] == ["shop-orders"]
