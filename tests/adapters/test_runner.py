"""The subprocess runner: streaming, redaction, exit codes, time-outs, process groups."""

import logging
import sys
import time

import pytest

from stackyard.core.secrets import SecretRegistry
from stackyard.exceptions import ToolError
from stackyard.adapters.runner import TAIL_LINES, ToolRunner

PY = sys.executable


def runner_with(caplog, secrets=()):
    registry = SecretRegistry()
    registry.add(secrets)
    caplog.set_level(logging.INFO, logger="test.runner")
    return ToolRunner(log=logging.getLogger("test.runner"), redact=registry.redact)


def test_output_lines_are_logged_redacted_and_kept_in_the_error(caplog):
    runner = runner_with(caplog, ["hunter2-password"])
    script = "import sys; print('line with hunter2-password'); sys.stderr.write('err hunter2-password\\n'); sys.exit(3)"
    with pytest.raises(ToolError) as err:
        runner.run("demo", [PY, "-c", script], env={})
    assert err.value.exit_code == 3 and err.value.tool == "demo"
    assert "hunter2-password" not in str(err.value) and "line with ***" in str(err.value)
    assert "hunter2-password" not in caplog.text and "err ***" in caplog.text


def test_data_stdout_is_returned_and_never_logged(caplog):
    runner = runner_with(caplog)
    result = runner.run("demo", [PY, "-c", "print('plaintext' + '-data')"], env={}, stdout_is_data=True)
    assert result.stdout.strip() == "plaintext-data"
    assert "plaintext-data" not in caplog.text


def test_only_environment_keys_are_logged(caplog):
    runner = runner_with(caplog)
    runner.run("demo", [PY, "-c", "pass"], env={"SOPS_AGE_KEY": "AGE-SECRET-KEY-VALUE"})
    assert "SOPS_AGE_KEY" in caplog.text and "AGE-SECRET-KEY-VALUE" not in caplog.text


def test_the_tail_is_bounded(caplog):
    runner = runner_with(caplog)
    result = runner.run("demo", [PY, "-c", "for i in range(500): print(i)"], env={})
    assert len(result.output_tail.splitlines()) == TAIL_LINES
    assert result.output_tail.splitlines()[-1] == "499"


def test_stdin_is_passed(caplog):
    runner = runner_with(caplog)
    result = runner.run("demo", [PY, "-c", "import sys; print(sys.stdin.read()[::-1])"], env={}, stdin=b"abc", stdout_is_data=True)
    assert result.stdout.strip() == "cba"


def test_timeout_kills_the_whole_process_group(caplog, tmp_path):
    runner = runner_with(caplog)
    marker = tmp_path / "child-alive"
    # The child spawns a grandchild that would write the marker after 3 s.
    grandchild = f"import time; time.sleep(3); open({str(marker)!r}, 'w')"
    script = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(30)"
    started = time.monotonic()
    with pytest.raises(ToolError, match="timed out"):
        runner.run("demo", [PY, "-c", script], env={}, timeout=1)
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not marker.exists()


def test_check_false_returns_the_exit_code(caplog):
    runner = runner_with(caplog)
    assert runner.run("demo", [PY, "-c", "raise SystemExit(7)"], env={}, check=False).exit_code == 7
