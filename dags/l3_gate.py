"""
### L3 gate

A new service chart version becomes part of the **L3 manifest** only if the whole stack, with
that one change, deploys and passes its system tests.

Changes queue (a **speculative queue**, like Zuul's dependent pipeline): `validate` refuses a bad
request, queues the change and waits until it is inside the window (`STACKYARD_GATE_WINDOW`
changes tested at once); its candidate is L3 + the changes ahead of it + this one. Then
`build_candidate` and `create_stack` (side by side) → `deploy` → `system_tests` (every service's
test hooks side by side, the changed service's first; they stop early when a change tested
ahead of this one failed) → `system_test_suite` (the pod of `include/gate.yaml`, when
configured) → `promote`, with `reject` when the candidate failed to deploy or its tests failed.
Both wait until every change ahead has left the queue and decide only on the exact combination
tested (L3 + this change); when what it was tested with is no longer what L3 will be, `requeue`
tests it again in a new run that keeps its place. `teardown` always;
`summary` last records the outcome (`promoted`, `rejected`, `requeued`, `superseded` by a newer
version of the service, or `error` when infrastructure failed) and fails the run unless the
candidate was promoted. An untested combination is never promoted.

The graph, edge by edge (`?`: only when configured; tests/test_dags.py holds the DAG to it):

```
validate → build_candidate, create_stack → deploy → system_tests → system_test_suite? → promote
validate → promote, reject, summary
deploy, system_tests, system_test_suite? → reject
promote, reject → requeue → teardown → summary
```

Trigger it from the form, from CI with `stackyard gate --service S --version V --wait` (it shows
the queue position while it waits), or through the REST API.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from stackyard.airflow.params import only_declared_conf
from stackyard.airflow.assets import L3_MANIFEST
from stackyard.core.names import HTTP_URL_PATTERN, MAX_FREE_TEXT, MAX_URL, SERVICE_NAME_PATTERN
from stackyard.core.versions import SEMVER_PATTERN
from stackyard.steps.gate import system_test_suite
from stackyard.steps.gate_form import gate_form_choices
from stackyard.airflow.operators import gate
from stackyard.settings import Settings

CANDIDATE = "{{ ti.xcom_pull(task_ids='build_candidate')['chart_ref'] }}"
NAMESPACE = "{{ ti.xcom_pull(task_ids='create_stack')['namespace'] }}"
RELEASE = "{{ ti.xcom_pull(task_ids='create_stack')['release'] }}"
MANIFEST_VERSION = "{{ ti.xcom_pull(task_ids='validate')['version'] }}"
CHANGED = "{{ ti.xcom_pull(task_ids='validate')['change']['service'] }}"
SETTINGS = Settings.from_env()
MAX_QUEUED_RUNS = 256
SUITE = system_test_suite(SETTINGS.gate_config)  # include/gate.yaml: optional
# The form's proposals: what the registry has, read cheaply at parse time (never an enum: CI and
# the REST API may ask for any value; validate refuses what is not published).
CHOICES = gate_form_choices(SETTINGS.registry_url, SETTINGS.cache_dir, SETTINGS.home / "cache")


#: The form; any other conf key is refused before a task runs (stackyard.airflow.params).
PARAMS = {
    "service": Param(type="string", pattern=SERVICE_NAME_PATTERN, title="Service",
                     description="Name of the service chart (an L3 service, or a new one).",
                     **({"examples": CHOICES.services} if CHOICES.services else {})),
    "chart_version": Param(type="string", pattern=SEMVER_PATTERN, title="Chart version",
                           description=" ".join(filter(None, (
                               "The published chart version to test, e.g. 1.4.2.", CHOICES.summary()))),
                           **({"examples": CHOICES.versions} if CHOICES.versions else {})),
    "requested_by": Param(None, type=["null", "string"], maxLength=MAX_FREE_TEXT, title="Requested by",
                          description="Who asks (a person, or the CI job)."),
    "ci_url": Param(None, type=["null", "string"], pattern=HTTP_URL_PATTERN, maxLength=MAX_URL, title="CI URL",
                    description="Link (http or https) to the CI build that published the chart."),
    "keep_stack_on_failure": Param(False, type="boolean", title="Keep stack on failure",
                                   description="Keep the ephemeral stack for one day if the gate fails."),
}


@dag(
    dag_id="l3_gate",
    schedule=None,
    catchup=False,
    # The queue bounds what is tested at once (the window); queued runs wait in `validate` holding
    # no worker, so Airflow's own cap only has to stay above the longest queue.
    max_active_runs=MAX_QUEUED_RUNS,
    doc_md=__doc__,
    tags=["stackyard", "l3"],
    default_args={"pre_execute": only_declared_conf(PARAMS), "retries": 2, "retry_delay": timedelta(seconds=10)},
    params=PARAMS,
)
def l3_gate():
    candidate = gate.validate()
    package = gate.build_candidate(candidate)
    stack = gate.create_stack(candidate)
    deploy = gate.CandidateDeployOperator(
        task_id="deploy", release=RELEASE, chart_ref=CANDIDATE, namespace=NAMESPACE,
        profile=gate.PROFILE, stack=NAMESPACE, timeout="10m0s",
    )
    system_tests = gate.CandidateTestOperator(
        task_id="system_tests", release=RELEASE, namespace=NAMESPACE, chart_ref=CANDIDATE,
        profile=gate.PROFILE, changed_service=CHANGED, timeout="10m0s", retries=0,
    )
    promoted = gate.promote.override(outlets=[L3_MANIFEST])(candidate)
    rejected = gate.reject(candidate)
    requeue = gate.RequeueOperator(task_id="requeue")  # only when promote or reject handed the change over
    torn_down = gate.teardown()
    report = gate.summary(candidate)

    checks = [system_tests]
    if SUITE:
        checks.append(gate.system_test_suite(SUITE, namespace=NAMESPACE, manifest_version=MANIFEST_VERSION))
    [package, stack] >> deploy >> checks[0]  # the package and the namespace are made side by side
    for earlier, later in zip(checks, checks[1:]):
        earlier >> later
    checks[-1] >> promoted
    [deploy, *checks] >> rejected
    # One after the other: two tasks ending at once contend for local mode's SQLite DB (seconds).
    [promoted, rejected] >> requeue >> torn_down >> report


l3_gate()
