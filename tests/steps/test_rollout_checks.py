"""What a rollout's plan checks before it changes anything: services the source knows, and the
stack's profile in every chart it would deploy (the DAG processor can read neither)."""

from __future__ import annotations

import pytest

from stackyard.core.rollout import PlanStep, Target
from stackyard.core.stack_registry import parse_stack
from stackyard.exceptions import InputError
from stackyard.steps.rollouts import check_profile_in_charts, check_services_known

QA = {"owner": "team-qa", "type": "persistent", "profile": "qa1"}


def test_a_listed_service_the_l3_manifest_lacks_is_refused_naming_file_stack_and_field():
    stack = parse_stack("qa2", {**QA, "services": ["catalog", "ordres"]})
    with pytest.raises(InputError) as caught:
        check_services_known(stack, {"catalog": Target("1.0.0", 3), "orders": Target("1.0.0", 3)}, {},
                             origin="include/stacks.yaml")
    assert str(caught.value).startswith("include/stacks.yaml: stack qa2: services[1]: unknown service 'ordres'")
    assert "has catalog, orders" in str(caught.value)


def test_known_services_and_all_pass():
    targets = {"catalog": Target("1.0.0", 3)}
    check_services_known(parse_stack("qa2", {**QA, "services": ["catalog"]}), targets, {}, origin="f")
    check_services_known(parse_stack("qa2", QA), targets, {}, origin="f")


class FakeRegistry:
    def __init__(self, charts):
        self.charts = charts

    def fetch(self, name, version):
        return self.charts[(name, version)]


def test_a_chart_without_the_stacks_profile_is_refused_before_anything_changes(chart_copy, helm_bin, tmp_path):
    import subprocess

    packages = {}
    for service in ("catalog", "orders"):
        source = chart_copy(service)
        if service == "orders":
            subprocess.run(["rm", "-rf", str(source / "profiles" / "qa1")], check=True)
        subprocess.run(["helm", "package", str(source), "-d", str(tmp_path / service)], check=True, capture_output=True)
        [packages[(service, "1.0.0")]] = (tmp_path / service).glob("*.tgz")
    stack = parse_stack("qa1", QA)
    steps = [PlanStep("catalog", None, "1.0.0", "install", False, 1), PlanStep("orders", None, "1.0.0", "install", False, 1)]
    with pytest.raises(InputError) as caught:
        check_profile_in_charts(stack, steps, FakeRegistry(packages), origin="include/stacks.yaml")
    assert str(caught.value).startswith("include/stacks.yaml: stack qa1: profile: chart orders 1.0.0 has no profile 'qa1'")
    check_profile_in_charts(stack, steps[:1], FakeRegistry(packages), origin="include/stacks.yaml")
