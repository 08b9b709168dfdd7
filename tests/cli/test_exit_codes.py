"""`stackyard` exit codes, the same for every command: 0 ok, 1 the verdict was no, 2 could not ask.
Each failure is one line on stderr naming what is wrong, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STACKYARD = str(Path(sys.executable).with_name("stackyard"))


def stackyard(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_API")}
    return subprocess.run([STACKYARD, *args], capture_output=True, text=True, timeout=60, check=False,
                          env={**base, **env})


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("env", [{}, {"STACKYARD_API_USER": "ci"}, {"STACKYARD_API_PASSWORD": "secret-value"}])
def test_gate_without_credentials_could_not_ask_exit_2(env):
    result = stackyard("gate", "--service", "orders", "--version", "1.2.0", "--api", "http://127.0.0.1:9", **env)
    assert result.returncode == 2
    line = one_line(result)
    assert "not set: set STACKYARD_API_USER and STACKYARD_API_PASSWORD" in line
    assert "secret-value" not in result.stdout + result.stderr


def test_gate_with_an_unreachable_api_could_not_ask_exit_2():
    result = stackyard("gate", "--service", "orders", "--version", "1.2.0", "--api", "http://127.0.0.1:9",
                       STACKYARD_API_USER="ci", STACKYARD_API_PASSWORD="secret-value")
    assert result.returncode == 2
    assert "cannot reach the Airflow API at http://127.0.0.1:9" in one_line(result)


def test_gate_with_bad_input_is_refused_exit_1_before_credentials_matter():
    result = stackyard("gate", "--service", "orders", "--version", "1.x")
    assert result.returncode == 1
    assert "chart_version: '1.x' is not a semantic version" in one_line(result)


def test_usage_errors_could_not_ask_exit_2():
    result = stackyard("gate", "--service", "orders")
    assert result.returncode == 2 and "--version" in result.stderr


def test_chart_check_of_a_missing_chart_is_a_no_exit_1(tmp_path):
    result = stackyard("chart", "check", str(tmp_path / "nothing"))
    assert result.returncode == 1
    assert "chart not found" in one_line(result)
