"""One rule for every stackyard task: an error a retry cannot fix fails at once, with its message."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from stackyard.airflow.operators._base import StackyardOperator, non_retryable
from stackyard.airflow.operators.charts import SopsDecryptOperator
from stackyard.airflow.operators.gate import CandidateDeployOperator
from stackyard.airflow.operators.system_tests import ParallelHelmTestOperator, SystemTestSuiteOperator
from stackyard.airflow.operators.helm import HelmTestOperator, HelmUpgradeOperator
from stackyard.airflow.operators.render import HelmRenderOperator
from stackyard.airflow.operators.rollouts import ServiceRolloutOperator
from stackyard.exceptions import AccessDeniedError, ConflictError, InputError, ToolError, UnavailableError


class Raising(StackyardOperator):
    def __init__(self, *, error: Exception, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def perform(self, context: Any) -> Any:
        raise self.error


@pytest.mark.parametrize("error", [InputError("chart_version: '1.x' is not a chart version"),
                                   AccessDeniedError("profiles/production/secrets.yaml: no access to key k")])
def test_input_and_access_errors_fail_without_retries_keeping_the_message(error):
    with pytest.raises(AirflowFailException) as failed:
        Raising(task_id="t", error=error).execute({})
    assert str(failed.value) == str(error) and failed.value.__cause__ is error


@pytest.mark.parametrize("error", [UnavailableError("registry unreachable"), ToolError("helm", 1, "Error: x"),
                                   ConflictError("L3 moved"), RuntimeError("boom")])
def test_other_errors_keep_their_retries(error):
    with pytest.raises(type(error)) as raised:
        Raising(task_id="t", error=error).execute({})
    assert raised.value is error


def test_a_task_function_uses_the_same_rule():
    def body(error: Exception) -> None:
        with non_retryable():
            raise error

    with pytest.raises(AirflowFailException, match="owner: required"):
        body(InputError("owner: required"))
    with pytest.raises(UnavailableError):
        body(UnavailableError("kms down"))


@pytest.mark.parametrize("operator", [HelmUpgradeOperator, HelmTestOperator, HelmRenderOperator, SopsDecryptOperator,
                                      ServiceRolloutOperator, CandidateDeployOperator, ParallelHelmTestOperator,
                                      SystemTestSuiteOperator])
def test_every_class_based_operator_has_the_base_and_does_not_bypass_it(operator):
    assert issubclass(operator, StackyardOperator)
    assert operator.execute is StackyardOperator.execute  # work goes in perform(), inside the rule


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_what_failed_a_task_is_noted_redacted_for_the_runs_summary():
    from stackyard.core.secrets import SECRETS

    SECRETS.add(["hunter2-very-secret"])
    ti = FakeTI()
    with pytest.raises(UnavailableError):
        Raising(task_id="t", error=UnavailableError("kms down\nwhile using hunter2-very-secret")).execute({"ti": ti})
    assert ti.pushed == {"error": {"reason": "kms down", "refused": False}}
    ti = FakeTI()
    with pytest.raises(ToolError):
        Raising(task_id="t", error=ToolError("helm", 1, "noise\nError: token hunter2-very-secret refused")).execute({"ti": ti})
    assert ti.pushed["error"] == {"reason": "Error: token *** refused", "refused": False}
    ti = FakeTI()
    with pytest.raises(AirflowFailException):
        Raising(task_id="t", error=InputError("owner: required")).execute({"ti": ti})
    assert ti.pushed["error"] == {"reason": "owner: required", "refused": True}
