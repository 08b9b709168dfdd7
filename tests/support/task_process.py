"""A deploy task in its own process, for tests that SIGKILL it: ``python -m tests.support.task_process JSON``.

JSON: ``{"release", "namespace", "stack", "chart_ref", "profile"}``. Runs the real
``HelmUpgradeOperator`` (pre_execute + execute) with the connections of the environment and
prints its result as JSON on the last line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def helm_children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` and whose command is helm."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if comm == "helm" and int(rest[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def main() -> None:
    args = json.loads(sys.argv[1])
    from stackyard.airflow.operators.helm import HelmUpgradeOperator

    op = HelmUpgradeOperator(task_id="deploy", release=args["release"], namespace=args["namespace"],
                             stack=args["stack"], chart_ref=args["chart_ref"], profile=args.get("profile", "ephemeral"))
    op.pre_execute({})
    print(json.dumps(op.execute({})), flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
