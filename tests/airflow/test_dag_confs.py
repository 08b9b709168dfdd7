"""What a DAG run's conf may hold: only the declared params, checked values, bounded text.

Airflow checks declared params on every path (``dag.test``/``airflow dags test`` raise
``ParamValidationError``; REST answers 400) and lets undeclared keys through; stackyard's
``pre_execute`` hook then fails the first task naming the key, before anything is done.
"""

from __future__ import annotations

import pytest

from stackyard.core.names import HTTP_URL_PATTERN, SERVICE_NAME_PATTERN, STACK_NAME_PATTERN
from stackyard.exceptions import InputError
from stackyard.steps.gate import GateRequest

from tests.conftest import ROOT

PARAMETRISED = ("l3_gate", "profile_check", "stack_create", "stack_destroy", "stack_touch", "ephemeral_reaper")


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


def fresh(dags, dag_id):
    """Parsed anew: ``dag.test()`` writes a run's conf into the DAG object's params."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=dags.get_dag(dag_id).fileloc).get_dag(dag_id)


@pytest.mark.parametrize("dag_id", PARAMETRISED)
def test_every_task_of_a_dag_with_params_refuses_undeclared_conf_keys_first(dags, dag_id):
    from stackyard.airflow.params import refuse_undeclared_conf

    dag = dags.get_dag(dag_id)
    assert dag.params and all(task._pre_execute_hook is not None for task in dag.tasks)

    class Run:
        conf = {**{name: None for name in dag.params}, "surprise": 1}

    with pytest.raises(Exception, match=rf"{dag_id}: unknown conf key\(s\) surprise; it takes .*nothing was done"):
        dag.tasks[0]._pre_execute_hook({"dag": dag, "dag_run": Run()})
    Run.conf = {name: None for name in dag.params}
    refuse_undeclared_conf({"dag": dag, "dag_run": Run()}, dag.params)  # the declared keys pass


def test_an_unknown_conf_key_fails_the_run_at_its_first_task(dags):
    run = fresh(dags, "profile_check").test(run_conf={"service": "orders", "chart_version": "1.0.0", "servce": "x"})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "failed" and states["decrypt"] == "failed" and states["render"] == "upstream_failed"


@pytest.mark.parametrize("dag_id, conf", [
    ("l3_gate", {"service": "evil\n", "chart_version": "1.0.0"}),
    ("l3_gate", {"service": "orders", "chart_version": "1.0.0\n"}),
    ("l3_gate", {"service": "orders", "chart_version": "1.0.0", "ci_url": "javascript:alert(1)"}),
    ("l3_gate", {"service": "orders", "chart_version": "1.0.0", "ci_url": "https://ci.example.com/1\n"}),
    ("l3_gate", {"service": "orders", "chart_version": "1.0.0", "requested_by": "x" * 100_000}),
    ("stack_create", {"name": "evil\n", "owner": "alice"}),
    ("stack_create", {"name": "alice", "owner": "x" * 100_000}),
    ("stack_destroy", {"name": "evil\n"}),
    ("profile_check", {"service": "orders", "chart_version": "1.0.0", "profile": "qa1\n"}),
], ids=["service newline", "version newline", "javascript url", "url newline", "100 KB requested_by",
        "stack name newline", "100 KB owner", "destroy newline", "profile newline"])
def test_the_form_refuses_bad_values_before_a_run_exists(dags, dag_id, conf):
    from airflow.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        fresh(dags, dag_id).test(run_conf=conf)


@pytest.mark.parametrize("pattern, good, bad", [
    (SERVICE_NAME_PATTERN, ["orders", "a", "a-1"], ["evil\n", "Evil", "-a", "a" * 64, ""]),
    (STACK_NAME_PATTERN, ["alice-dev"], ["alice\n", "alice dev"]),
    (HTTP_URL_PATTERN, ["https://ci.example.com/b/1?x=y", "http://ci:8080/"],
     ["javascript:alert(1)", "https://ci.example.com/1\n", "ftp://x", "https://", "https://a b"]),
])
def test_param_patterns_hold_as_json_schema_searches(pattern, good, bad):
    import jsonschema

    schema = {"type": "string", "pattern": pattern}
    for value in good:
        jsonschema.validate(value, schema)
    for value in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)


@pytest.mark.parametrize("params, message", [
    ({"service": "evil\n", "chart_version": "1.0.0"}, "service: 'evil\\n' is not a DNS-1123 label"),
    ({"service": "orders", "chart_version": "1.0.0", "ci_url": "javascript:alert(1)"}, "ci_url: expected an http(s) URL"),
    ({"service": "orders", "chart_version": "1.0.0", "ci_url": "https://ci/1\n"}, "ci_url: expected an http(s) URL"),
    ({"service": "orders", "chart_version": "1.0.0", "requested_by": "x" * 100_000}, "requested_by: expected printable text of 1 to 200"),
    ({"service": "orders", "chart_version": "1.0.0", "requested_by": "bob\nFAKE LOG LINE"}, "requested_by: expected printable text"),
])
def test_the_gate_step_checks_the_same_rules_with_full_matches(params, message):
    with pytest.raises(InputError) as caught:
        GateRequest.from_params(params)
    assert message in str(caught.value)


def test_the_gate_step_keeps_good_values():
    request = GateRequest.from_params({"service": "orders", "chart_version": "1.0.0", "requested_by": "ci",
                                       "ci_url": "https://ci.example.com/build/7"})
    assert (request.requested_by, request.ci_url) == ("ci", "https://ci.example.com/build/7")
