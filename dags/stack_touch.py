"""
### Keep an ephemeral stack alive

Marks activity on the stack (its last-activity becomes now), and optionally sets a new TTL.
The nightly reaper removes a stack once it has been idle for longer than its TTL.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from stackyard.airflow.params import only_declared_conf
from stackyard.core.names import STACK_NAME_PATTERN
from stackyard.core.ephemeral import MAX_TTL_DAYS
from stackyard.airflow.operators import personal_stacks


#: The form; any other conf key is refused before a task runs (stackyard.airflow.params).
PARAMS = {
    "name": Param(type="string", pattern=STACK_NAME_PATTERN, title="Stack name"),
    "ttl_days": Param(None, type=["null", "integer"], minimum=1, maximum=MAX_TTL_DAYS, title="New TTL (days)",
                      description="Empty: keep the current TTL."),
}


@dag(
    dag_id="stack_touch",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["stackyard", "stacks"],
    default_args={"pre_execute": only_declared_conf(PARAMS), "retries": 2, "retry_delay": timedelta(seconds=10)},
    params=PARAMS,
)
def stack_touch():
    personal_stacks.touch(personal_stacks.check_ephemeral.override(task_id="check")("touch"))


stack_touch()
