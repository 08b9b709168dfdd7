"""The L3 gate's configuration (``include/gate.yaml``): the optional system-test suite.

::

    system_tests:                 # optional; absent = every service's helm tests only
      image*: <container image>
      cmds: [..]                  # the pod's command
      arguments: [..]             # its arguments
      timeout_seconds: 900        # 1 to 86400
      annotations: {k: v}         # e.g. a service mesh's sidecar settings

Unknown fields are errors (a misspelt key would otherwise be ignored); every error names the
file and the field. Pure: parses the text it is given.
"""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError

from stackyard.core.schema import Schema, problems
from stackyard.exceptions import InputError

MAX_TIMEOUT_SECONDS = 24 * 3600


class SystemTestSuite(Schema):
    """The system-test pod run in the candidate's stack after every service's helm tests pass."""

    image: Annotated[str, Field(min_length=1, max_length=500)]
    cmds: list[str] = []
    arguments: list[str] = []
    timeout_seconds: Annotated[int, Field(gt=0, le=MAX_TIMEOUT_SECONDS)] = 900
    annotations: dict[str, str] = {}


class GateConfig(Schema):
    system_tests: SystemTestSuite | None = None


_EXPECTED = {
    "system_tests": "expected a mapping {image, cmds, arguments, timeout_seconds, annotations}",
    "system_tests.image": "expected the test suite's container image",
    "system_tests.cmds": "expected a list of strings",
    "system_tests.cmds[]": "expected a list of strings",
    "system_tests.arguments": "expected a list of strings",
    "system_tests.arguments[]": "expected a list of strings",
    "system_tests.timeout_seconds": f"expected a positive number of seconds (at most {MAX_TIMEOUT_SECONDS})",
    "system_tests.annotations": "expected a mapping of strings",
    "system_tests.annotations.*": "expected a mapping of strings",
}
_REQUIRED = {"system_tests.image": "the test suite's container image is required"}


def load_gate_config(text: str, origin: str = "gate.yaml") -> GateConfig:
    """The gate's configuration, or InputError ``<origin>: <field>: <problem>``."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{origin}: not valid YAML: {exc}") from None
    if data is None:
        return GateConfig()
    if not isinstance(data, dict):
        raise InputError(f"{origin}: expected a mapping with 'system_tests', got {type(data).__name__}")
    try:
        return GateConfig.model_validate(data)
    except ValidationError as exc:
        expected = dict(_EXPECTED)
        for item in exc.errors(include_url=False):  # annotation values are keyed by their own names
            loc = item["loc"]
            if loc[:2] == ("system_tests", "annotations") and len(loc) == 3:
                expected[f"system_tests.annotations.{loc[2]}"] = _EXPECTED["system_tests.annotations.*"]
        raise InputError(f"{origin}: " + "; ".join(
            problems(exc, expected=expected, required=_REQUIRED))) from None
