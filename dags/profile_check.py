"""
### Profile check

Does a published chart work for a stack type? For one chart version and profile:
`decrypt` proves this deployment's keys open the profile's secrets, and `render` lints and
renders the chart with exactly the values a deployment would get, reporting what would be
created. Nothing is deployed, and neither the secrets nor the rendered manifests leave the tasks.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from stackyard.airflow.params import only_declared_conf
from stackyard.core.names import PROFILE_NAME_PATTERN, SERVICE_NAME_PATTERN
from stackyard.core.versions import SEMVER_PATTERN
from stackyard.airflow.operators.charts import SopsDecryptOperator
from stackyard.airflow.operators.render import HelmRenderOperator

CHART_REF = "{{ params.service }}:{{ params.chart_version }}"


#: The form; any other conf key is refused before a task runs (stackyard.airflow.params).
PARAMS = {
    "service": Param(type="string", pattern=SERVICE_NAME_PATTERN, title="Service",
                     description="Name of the published service chart."),
    "chart_version": Param(type="string", pattern=SEMVER_PATTERN, title="Chart version",
                           description="A published version, e.g. 1.4.2."),
    "profile": Param("ephemeral", type="string", pattern=PROFILE_NAME_PATTERN, title="Profile",
                     description="The stack type to check: ephemeral, qa1, stage, production…"),
}


@dag(
    dag_id="profile_check",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["stackyard", "charts"],
    params=PARAMS,
    default_args={"pre_execute": only_declared_conf(PARAMS)},
)
def profile_check():
    decrypt = SopsDecryptOperator(task_id="decrypt", chart_ref=CHART_REF, profile="{{ params.profile }}", retries=0)
    render = HelmRenderOperator(task_id="render", chart_ref=CHART_REF, profile="{{ params.profile }}", retries=0)
    decrypt >> render


profile_check()
