"""Reports invalid entries of the stack registry as this file's import error (it defines no DAG).

`rollout_stacks.py` builds one rollout DAG per *valid* entry and skips invalid ones. The error for
an invalid entry is raised here, in a file of its own, because Airflow 3.3 keys import errors by
file and marks every DAG of a file with an import error stale: raised from the factory file it
would stop the other stacks' rollouts too (measured; see docs/rollouts.md).
"""

from __future__ import annotations

from stackyard.steps.rollouts import registry_for_parsing

_path, _registry = registry_for_parsing()
if _registry.errors:
    raise ValueError(_registry.error_report(str(_path)))
