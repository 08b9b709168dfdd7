"""include/gate.yaml: the system-test suite's schema, errors naming the file and the field."""

from __future__ import annotations

import pytest

from stackyard.core.gate_config import load_gate_config
from stackyard.exceptions import InputError

from tests.conftest import ROOT


def test_the_shipped_config_is_valid():
    suite = load_gate_config((ROOT / "include" / "gate.yaml").read_text()).system_tests
    assert suite.image.endswith("system-tests:1.0.0") and suite.cmds == ["pytest", "-q", "/suite"]
    assert suite.timeout_seconds == 900 and suite.annotations == {}


@pytest.mark.parametrize("text", ["", "system_tests: null\n", "# only a comment\n"])
def test_no_suite(text):
    assert load_gate_config(text).system_tests is None


@pytest.mark.parametrize("text, message", [
    ("system_tests:\n  cmds: [pytest]\n", "gate.yaml: system_tests.image: the test suite's container image is required"),
    ("system_tests:\n  image: ''\n", "gate.yaml: system_tests.image: expected the test suite's container image"),
    ("system_tests:\n  image: x\n  cmds: pytest\n", "gate.yaml: system_tests.cmds: expected a list of strings"),
    ("system_tests:\n  image: x\n  arguments: [1]\n", "gate.yaml: system_tests.arguments[0]: expected a list of strings"),
    ("system_tests:\n  image: x\n  timeout_seconds: 0\n", "gate.yaml: system_tests.timeout_seconds: expected a positive"),
    ("system_tests:\n  image: x\n  timeout_seconds: '900'\n", "gate.yaml: system_tests.timeout_seconds: expected a positive"),
    ("system_tests:\n  image: x\n  timeout_seconds: true\n", "gate.yaml: system_tests.timeout_seconds: expected a positive"),
    ("system_tests:\n  image: x\n  annotations: {a: 1}\n", "gate.yaml: system_tests.annotations.a: expected a mapping of strings"),
    ("system_tests:\n  image: x\n  imgae: y\n", "gate.yaml: system_tests: unknown field(s) imgae"),
    ("system_test:\n  image: x\n", "gate.yaml: system_test: unknown field"),
    ("system_tests: 5\n", "gate.yaml: system_tests: expected a mapping"),
    ("- a\n", "gate.yaml: expected a mapping with 'system_tests'"),
    ("system_tests: [\n", "gate.yaml: not valid YAML"),
])
def test_bad_configs_name_the_file_and_the_field(text, message):
    with pytest.raises(InputError) as caught:
        load_gate_config(text)
    assert message in str(caught.value)
