"""
### Create an ephemeral stack

Your own stack from the latest **L3 manifest** (or a given version), optionally with some services
moved to other published chart versions (a branch build on top of L3). It gets its own namespace
`<name>`, labelled ephemeral, and one helm release `stack` deployed with the chosen profile and its
secrets. The run ends by printing how to reach it.

The stack is removed by the nightly `ephemeral_reaper` after `ttl_days` without activity; run
`stack_touch` to keep it, `stack_destroy` to remove it now.

`validate` → `build_umbrella` → `create_namespace` → `deploy` → `ready`; if anything fails after
the namespace exists, `clean_up_failed` removes it so the name is free again.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from stackyard.airflow.params import only_declared_conf
from stackyard.core.names import MAX_FREE_TEXT, STACK_NAME_PATTERN
from stackyard.core.ephemeral import MAX_TTL_DAYS
from stackyard.airflow.operators import personal_stacks
from stackyard.airflow.operators.helm import HelmUpgradeOperator
from stackyard.steps.personal_stacks import DEFAULT_PROFILE, PROFILE_PATTERN

NAMESPACE = "{{ ti.xcom_pull(task_ids='create_namespace')['namespace'] }}"


#: The form; any other conf key is refused before a task runs (stackyard.airflow.params).
PARAMS = {
    "name": Param(type="string", pattern=STACK_NAME_PATTERN, title="Stack name",
                  description="Namespace name (DNS-1123 label), unique among stacks, e.g. alice-dev."),
    "owner": Param(type="string", minLength=1, maxLength=MAX_FREE_TEXT, title="Owner", description="Who the stack belongs to."),
    "ttl_days": Param(7, type="integer", minimum=1, maximum=MAX_TTL_DAYS, title="TTL (days)",
                      description="Removed after this many days without activity."),
    "manifest_version": Param(None, type=["null", "integer"], minimum=1, title="L3 manifest version",
                              description="Empty: the latest L3."),
    "overrides": Param({}, type=["null", "object"], title="Overrides",
                       description='Published chart versions to run instead of L3\'s, e.g. {"orders": "1.3.0-pr.42"}.'),
    "profile": Param(DEFAULT_PROFILE, type="string", pattern=PROFILE_PATTERN, title="Profile",
                     description="The charts' profile (values and secrets) to deploy with."),
}


@dag(
    dag_id="stack_create",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["stackyard", "stacks"],
    default_args={"pre_execute": only_declared_conf(PARAMS), "retries": 2, "retry_delay": timedelta(seconds=10)},
    params=PARAMS,
)
def stack_create():
    plan = personal_stacks.validate()
    built = personal_stacks.build_umbrella(plan)
    namespace = personal_stacks.create_namespace(plan)
    built >> namespace  # a plan that cannot be built (e.g. a missing profile) creates nothing
    deploy = HelmUpgradeOperator(
        task_id="deploy", release=personal_stacks.RELEASE, namespace=NAMESPACE, stack=NAMESPACE,
        chart_ref="{{ ti.xcom_pull(task_ids='build_umbrella')['chart_ref'] }}",
        profile="{{ ti.xcom_pull(task_ids='validate')['profile'] }}", timeout="10m0s",
    )
    done = personal_stacks.ready(plan, built, deploy.output)
    [built, namespace] >> deploy
    # ``ready`` stays a leaf so a failed create fails the run even after the clean-up succeeds.
    [built, namespace, deploy] >> personal_stacks.clean_up_failed()
    return done


stack_create()
