"""
### Rollout of a persistent or production stack

One DAG per entry of the stack registry (`include/stacks.yaml`, or `$STACKYARD_STACKS`), built by
this one file. Each run:

1. **plan** — refuses a manual trigger by a user the entry does not list; outside the deployment
   window or on a freeze date it changes nothing and says why; otherwise it diffs the source
   versions (latest L3, or for production the versions healthy on stage long enough) against the
   stack's helm releases (one per service). Nothing to do: the run succeeds as "up to date".
2. **upgrade** — one mapped task instance per service, named after it, one at a time in the
   plan's order: upgrade with the stack's profile and secrets, wait for readiness, chart tests; on
   failure that one service is rolled back and the rest are not attempted. A service flagged
   canary goes canary first: its share of traffic grows step by step through the stack's traffic
   provider, analysed between steps (the task reschedules itself meanwhile), then promoted or
   aborted (docs/rollouts.md, "Canary first"). Every attempt, and every canary weight change
   before it is made, is recorded in `stacks/<stack>/rollouts`.
3. **summary** — fails the run naming the service that stopped it.

A registry entry that is invalid has no DAG; `stack_registry_check.py` reports it as an import
error naming the entry (see docs/rollouts.md for why that is a separate file).
"""

from __future__ import annotations

from airflow.sdk import DAG

from stackyard.core.stack_registry import StackKind
from stackyard.airflow.operators import rollouts
from stackyard.steps.rollouts import StackDagSpec, registry_for_parsing

#: What a role listed under `triggerers.roles` gets on its stack's DAG (FAB auth manager).
TRIGGER_PERMISSIONS = {"DAGs": {"can_read", "can_edit"}, "DAG Runs": {"can_read", "can_create"}}


def rollout_dag(stack: StackDagSpec) -> DAG:
    with DAG(
        dag_id=stack.dag_id,
        schedule=stack.schedule,
        catchup=False,
        max_active_runs=1,  # two runs on one stack would interleave their upgrades
        description=stack.description,
        doc_md=__doc__,
        tags=["stackyard", "rollout", stack.kind, f"owner:{stack.owner}"],
        # No default_args or params: each costs ~1 ms per DAG to merge or validate, and the factory
        # builds hundreds (bench/dag_parse). "Plan only" is the run conf {"plan_only": true}.
        access_control={role: TRIGGER_PERMISSIONS for role in stack.roles} or None,
    ) as dag:
        steps = rollouts.plan(stack.name)
        upgrades = rollouts.ServiceRolloutOperator.partial(
            task_id="upgrade", stack_name=stack.name, retries=0, owner=stack.owner,
            timeout="15m0s" if stack.kind == StackKind.PRODUCTION.value else "10m0s",
            max_active_tis_per_dagrun=1,  # one service at a time, in map-index (= plan) order
            map_index_template="{{ task.step['service'] }}",
        ).expand(step=steps)
        report = rollouts.summary(stack.name)
        upgrades >> report
        for task in (steps.operator, report.operator):
            task.owner = stack.owner  # cheaper than .override(owner=...) per task, at 200 DAGs
    return dag


for _stack in registry_for_parsing()[1].stacks.values():
    globals()[_stack.dag_id] = rollout_dag(_stack)
