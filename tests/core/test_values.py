"""The values precedence rules of stackyard.core.values, one test per rule."""

from stackyard.core.values import ValuesLayer, compose, merge_values, nest_under, stack_values

import pytest
from stackyard.exceptions import InputError


def layer(name, values):
    return ValuesLayer(name, values)


def test_later_layer_overrides_earlier_key_by_key():
    result = compose([
        layer("values.yaml", {"replicaCount": 1, "config": {"logLevel": "debug", "database": {"host": "localhost", "name": "db"}}}),
        layer("profile", {"replicaCount": 3, "config": {"database": {"host": "prod-db"}}}),
    ])
    assert result == {"replicaCount": 3, "config": {"logLevel": "debug", "database": {"host": "prod-db", "name": "db"}}}


def test_full_precedence_order_defaults_profile_secrets_stack():
    result = compose([
        layer("values.yaml", {"a": "defaults", "b": "defaults", "c": "defaults", "global": {"stackyard": {"stack": "x"}}}),
        layer("profile values", {"a": "profile", "b": "profile", "c": "profile"}),
        ValuesLayer("profile secrets", {"b": "secrets", "c": "secrets"}, secret=True),
        layer("stack", {"c": "stack", **stack_values(stack="qa1", namespace="qa1", profile="qa1")}),
    ])
    assert (result["a"], result["b"], result["c"]) == ("profile", "secrets", "stack")
    assert result["global"]["stackyard"] == {"stack": "qa1", "namespace": "qa1", "profile": "qa1"}


def test_lists_replace_rather_than_merge():
    assert merge_values({"hosts": ["a", "b"]}, {"hosts": ["c"]}) == {"hosts": ["c"]}


def test_scalar_replaces_mapping_and_mapping_replaces_scalar():
    assert merge_values({"x": {"y": 1}}, {"x": "flat"}) == {"x": "flat"}
    assert merge_values({"x": "flat"}, {"x": {"y": 1}}) == {"x": {"y": 1}}


def test_null_is_kept_so_helm_removes_the_key_it_overrides():
    merged = merge_values({"ingress": {"enabled": True, "host": "h"}}, {"ingress": {"host": None}})
    assert merged == {"ingress": {"enabled": True, "host": None}}  # kept so helm removes its default too


def test_inputs_are_never_mutated():
    base = {"config": {"a": 1}, "list": [1]}
    override = {"config": {"b": 2}}
    result = merge_values(base, override)
    result["config"]["a"] = 99
    result["list"].append(2)
    assert base == {"config": {"a": 1}, "list": [1]}
    assert override == {"config": {"b": 2}}


def test_a_layer_that_is_not_a_mapping_is_refused_naming_its_source():
    with pytest.raises(InputError, match="profiles/qa1/values.yaml"):
        compose([layer("profiles/qa1/values.yaml", ["not", "a", "mapping"])])


def test_umbrella_services_are_nested_under_their_name():
    assert nest_under("orders", {"replicaCount": 2}) == {"orders": {"replicaCount": 2}}
