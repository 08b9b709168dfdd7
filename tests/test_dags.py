"""Every DAG file imports through a DagBag in seconds, with local mode's settings and no connection,
and the L3 gate's graph is the one drawn in its docstring."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
#: Files that define no DAG on purpose: this one only reports invalid stack registry entries.
NO_DAG = {"stack_registry_check.py"}


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """The DagBag of ``dags/`` as local mode parses it, with every connection removed: parsing
    must never need one (connections are read when tasks run)."""
    home = tmp_path_factory.mktemp("stackyard-home")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("AIRFLOW_CONN_"):
                mp.delenv(key)
        mp.setenv("STACKYARD_HOME", str(home))
        for key in ("STACKYARD_REGISTRY", "STACKYARD_MANIFEST_STORE", "STACKYARD_RECORD_STORE"):
            mp.delenv(key, raising=False)  # local mode's defaults, under STACKYARD_HOME
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(DAGS), safe_mode=False)


def test_every_dag_file_imports_without_error(bag):
    assert bag.import_errors == {}
    loaded = {Path(dag.fileloc).name for dag in bag.dags.values()}
    assert loaded == {path.name for path in DAGS.glob("*.py")} - NO_DAG  # every other file gives a DAG
    assert {"l3_gate", "ephemeral_reaper", "stack_create", "stack_destroy", "stack_touch", "profile_check"} <= set(bag.dags)


def drawn_edges(docstring: str, present: set[str]) -> set[tuple[str, str]]:
    """The edges of the docstring's fenced diagram: ``a, b → c → d`` means a→c, b→c, c→d. A node
    marked ``?`` is optional: when the DAG lacks it, its predecessors connect to its successors."""
    block = re.search(r"```\n(.*?)```", docstring, re.S)
    assert block, "l3_gate's docstring has no fenced diagram"
    edges: set[tuple[str, str]] = set()
    for line in block[1].strip().splitlines():
        groups = [[name.strip() for name in part.split(",")] for part in line.split("→")]
        for left, right in zip(groups, groups[1:]):
            edges |= {(a, b) for a in left for b in right}
    for node in {n for edge in edges for n in edge if n.endswith("?")}:
        before = {a for a, b in edges if b == node}
        after = {b for a, b in edges if a == node}
        edges = {(a, b) for a, b in edges if node not in (a, b)}
        if node[:-1] in present:
            edges |= {(a, node[:-1]) for a in before} | {(node[:-1], b) for b in after}
        else:
            edges |= {(a, b) for a in before for b in after if a != b and not a.endswith("?")}
    return {(a.rstrip("?"), b.rstrip("?")) for a, b in edges}


def test_the_gate_graph_is_the_one_drawn_in_its_docstring(bag):
    dag = bag.get_dag("l3_gate")
    tasks = set(dag.task_dict)
    actual = {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}
    docstring = ast.get_docstring(ast.parse((DAGS / "l3_gate.py").read_text()))
    expected = drawn_edges(docstring, tasks)
    assert {n for edge in expected for n in edge} == tasks
    assert actual == expected


def test_the_diagram_parser_contracts_an_absent_optional_step():
    text = "```\na → b? → c\nb? → d\n```"
    assert drawn_edges(text, {"a", "b", "c", "d"}) == {("a", "b"), ("b", "c"), ("b", "d")}
    assert drawn_edges(text, {"a", "c", "d"}) == {("a", "c"), ("a", "d")}
