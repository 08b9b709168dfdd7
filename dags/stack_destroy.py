"""
### Destroy an ephemeral stack

Uninstalls every helm release in the stack's namespace, then deletes the namespace. Only
ephemeral stacks made by stackyard (`stack_create`, the L3 gate) can be destroyed: a persistent,
production or unlabelled namespace is refused with an error, and nothing is changed.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from stackyard.airflow.params import only_declared_conf
from stackyard.core.names import STACK_NAME_PATTERN
from stackyard.airflow.operators import personal_stacks


#: The form; any other conf key is refused before a task runs (stackyard.airflow.params).
PARAMS = {
    "name": Param(type="string", pattern=STACK_NAME_PATTERN, title="Stack name",
                  description="The ephemeral stack (namespace) to remove."),
}


@dag(
    dag_id="stack_destroy",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["stackyard", "stacks"],
    default_args={"pre_execute": only_declared_conf(PARAMS), "retries": 2, "retry_delay": timedelta(seconds=10)},
    params=PARAMS,
)
def stack_destroy():
    personal_stacks.destroy(personal_stacks.check_ephemeral.override(task_id="check")("destroy"))


stack_destroy()
