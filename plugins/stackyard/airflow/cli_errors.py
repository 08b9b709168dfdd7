"""Refused input on Airflow's own command line as one line, not a traceback.

``airflow dags trigger l3_gate --conf '{"service": "Bad!"}'`` (and ``airflow dags test``) raise
the DAG's ``ParamValidationError`` out of Airflow's CLI, which Python prints as a traceback
followed by the whole JSON schema. Airflow has no hook for its CLI's errors, so
``airflow_local_settings`` (imported by every Airflow process at start-up) installs this
``sys.excepthook``: an uncaught refusal of input — a ``ParamValidationError`` or stackyard's
:class:`~stackyard.exceptions.InputError` — is printed as ``airflow: refused: <first line>``;
the process still exits 1. Every other exception keeps Python's traceback.
"""

from __future__ import annotations

import re
import sys
from types import TracebackType

from stackyard.core.manifest import SERVICE_NAME_PATTERN
from stackyard.core.versions import SEMVER_PATTERN
from stackyard.exceptions import InputError

#: Matched by name: airflow_local_settings runs while Airflow is still importing itself.
REFUSALS = {("airflow.sdk.exceptions", "ParamValidationError"), ("airflow.exceptions", "ParamValidationError")}


def is_refusal(exc: BaseException) -> bool:
    return isinstance(exc, InputError) or any(
        (cls.__module__, cls.__name__) in REFUSALS for cls in type(exc).__mro__)


#: What the DAGs' param patterns mean, for people (jsonschema only says "does not match <regex>").
PATTERN_MEANINGS = {
    SEMVER_PATTERN: "is not a semantic version (like 1.4.2)",
    SERVICE_NAME_PATTERN: "is not a service name (a DNS-1123 label: lowercase letters, digits and '-')",
}
_MISMATCH = re.compile(r"(?P<value>'.*') does not match '(?P<pattern>.*)'$")


def one_line(exc: BaseException) -> str:
    """The message's first line (a ParamValidationError goes on with the failed schema), with a
    known pattern said in words."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    mismatch = _MISMATCH.search(line)
    if mismatch:
        pattern = mismatch["pattern"].encode().decode("unicode_escape")  # the message shows repr() escapes
        meaning = PATTERN_MEANINGS.get(pattern)
        if meaning:
            line = f"{line[:mismatch.start()]}{mismatch['value']} {meaning}"
    return line


def install() -> None:
    previous = sys.excepthook
    if getattr(previous, "stackyard", False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if is_refusal(value):
            print(f"airflow: refused: {one_line(value)}", file=sys.stderr)
            return
        previous(kind, value, tb)

    hook.stackyard = True  # type: ignore[attr-defined]
    sys.excepthook = hook
