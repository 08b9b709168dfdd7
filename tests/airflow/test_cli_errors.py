"""Refused input on Airflow's own CLI is one clear line, not a traceback and a JSON schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stackyard.airflow.cli_errors import is_refusal, one_line
from stackyard.exceptions import InputError, ToolError

from tests.conftest import ROOT

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def param_error(schema: dict, value):
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError) as caught:
        Param(value, **schema).resolve()
    return caught.value


def test_a_param_refusal_is_one_line_with_the_pattern_in_words():
    from stackyard.core.versions import SEMVER_PATTERN

    exc = param_error({"type": "string", "pattern": SEMVER_PATTERN}, "1.x")
    assert is_refusal(exc) and "\n" in str(exc)  # Airflow's message goes on with the schema
    assert one_line(exc).endswith("'1.x' is not a semantic version (like 1.4.2)")
    assert "\n" not in one_line(exc)


def test_an_unknown_pattern_keeps_jsonschemas_words():
    exc = param_error({"type": "string", "pattern": "^x+$"}, "y")
    assert one_line(exc).endswith("'y' does not match '^x+$'")


def test_only_refusals_lose_their_traceback():
    assert is_refusal(InputError("service: bad"))
    assert not is_refusal(ToolError("helm", 1, "boom"))
    assert not is_refusal(RuntimeError("a bug"))


@pytest.mark.parametrize("conf, message", [
    ({"service": "Bad!", "chart_version": "1.0.0"}, "'Bad!' is not a service name"),
    ({"service": "orders", "chart_version": "1.x"}, "'1.x' is not a semantic version (like 1.4.2)"),
])
def test_airflow_dags_test_with_a_bad_conf_prints_one_line(conf, message):
    proc = subprocess.run([AIRFLOW, "dags", "test", "l3_gate", "--conf", json.dumps(conf)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")})
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and "Failed validating" not in output
    refused = [line for line in output.splitlines() if line.startswith("airflow: refused: ")]
    assert len(refused) == 1 and message in refused[0], output[-2000:]
