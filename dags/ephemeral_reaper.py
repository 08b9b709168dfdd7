"""
### Ephemeral stack reaper

Every night, removes ephemeral stacks nobody used for longer than their TTL (7 days unless set).

One list call with a label selector finds the namespaces stackyard labelled ephemeral (personal
stacks and the L3 gate's `l3-<id>` stacks); each is deleted only if its last activity is older
than its TTL. Persistent, production and unlabelled namespaces are never touched. Missing or
garbled timestamps fall back to the namespace's creation time; a TTL that does not parse keeps
the stack. Both are logged as warnings.

`max_deletions` is a safety cap: a run that would delete more stops before deleting anything and
fails; trigger it by hand with a higher cap if that many really should go. `dry_run` reports
without deleting. Each run's report (deleted / kept with time left / skipped / failed, and why)
is kept in the record stream `reaper/runs`; each removal also in `stacks/<name>/events`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from stackyard.airflow.params import only_declared_conf
from stackyard.airflow.operators import personal_stacks


#: The form; any other conf key is refused before a task runs (stackyard.airflow.params).
PARAMS = {
    "dry_run": Param(False, type="boolean", title="Dry run", description="Report only; delete nothing."),
    "max_deletions": Param(20, type="integer", minimum=0, title="Max deletions",
                           description="Stop (deleting nothing) if more stacks than this would go."),
}


@dag(
    dag_id="ephemeral_reaper",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["stackyard", "stacks"],
    default_args={"pre_execute": only_declared_conf(PARAMS), "retries": 2, "retry_delay": timedelta(seconds=30)},
    params=PARAMS,
)
def ephemeral_reaper():
    personal_stacks.reap(personal_stacks.plan_reaping()) >> personal_stacks.report()


ephemeral_reaper()
