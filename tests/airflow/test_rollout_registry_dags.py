"""Malformed values in the stack registry drop only their own rollout DAG; the error is the import
error of dags/stack_registry_check.py and names the file, the stack and the field (in seconds,
without a cluster: DagBag only)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

GOOD = "  qa1: {owner: team-qa, type: persistent, profile: qa1}\n"
CASES = {
    "impossible date": ("  production:\n    owner: t\n    type: persistent\n    profile: stage\n"
                        "    windows: {timezone: UTC, freeze: [2027-02-30]}\n",
                        "stack production: windows.freeze[0]: '2027-02-30' is not YYYY-MM-DD"),
    "repeated key": ("  qa2:\n    owner: a\n    owner: b\n    type: persistent\n    profile: qa1\n",
                     "stack qa2: owner: the key 'owner' is repeated (lines 4 and 5)"),
    "repeated stack": ("  qa1: {owner: x, type: persistent, profile: qa2}\n  qa3: {owner: x, type: persistent, profile: qa1}\n",
                       "stack qa1: name: the key 'qa1' is repeated"),
    "system namespace": ("  qa3: {owner: x, type: persistent, profile: qa1, namespace: kube-system}\n",
                         "stack qa3: namespace: 'kube-system' is a system namespace"),
    "gate namespace": ("  qa3: {owner: x, type: persistent, profile: qa1, namespace: l3-0b6502da}\n",
                       "stack qa3: namespace: 'l3-0b6502da' is reserved for the L3 gate"),
    "empty allow list": ("  qa3: {owner: x, type: persistent, profile: qa1, windows: {timezone: UTC, allow: []}}\n",
                         "stack qa3: windows.allow: an empty list would never open the window"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_malformed_value_drops_only_its_dag_and_names_file_stack_and_field(tmp_path, monkeypatch, kind):
    from airflow.dag_processing.dagbag import DagBag

    text, message = CASES[kind]
    path = tmp_path / "stacks.yaml"
    path.write_text("stacks:\n" + GOOD + text + "  qa9: {owner: team-qa, type: persistent, profile: qa1}\n")
    monkeypatch.setenv("STACKYARD_STACKS", str(path))
    monkeypatch.setenv("STACKYARD_HOME", str(tmp_path / "home"))

    bag = DagBag(dag_folder=str(ROOT / "dags"))

    assert "rollout_qa9" in bag.dags and "l3_gate" in bag.dags
    assert ("rollout_qa1" in bag.dags) is (kind != "repeated stack")
    [(where, error)] = bag.import_errors.items()
    assert where.endswith("stack_registry_check.py")
    assert f"{path}: 1 invalid stack entry" in error  # the file
    assert message in error and "1 invalid stack entry" in error


def test_the_rollout_dags_keep_their_ids_and_tasks(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("STACKYARD_HOME", str(tmp_path / "home"))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "rollout_stacks.py"))
    assert sorted(bag.dags) == ["rollout_production", "rollout_qa1", "rollout_qa2", "rollout_stage"]
    dag = bag.dags["rollout_production"]
    assert {t.task_id for t in dag.tasks} == {"plan", "upgrade", "summary"}
    assert dag.get_task("plan").downstream_task_ids == {"upgrade"}
    assert dag.get_task("upgrade").downstream_task_ids == {"summary"}
    assert dag.get_task("summary").trigger_rule == "all_done"
    assert {t.owner for t in dag.tasks} == {"team-release"} and dag.get_task("plan").retries == 0
