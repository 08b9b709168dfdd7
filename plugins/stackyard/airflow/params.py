"""Every DAG takes only the conf keys it declares.

Airflow validates each declared param (REST answers 400, ``airflow dags test`` exits 1) but lets
undeclared keys through, on every path. So each DAG with params sets
``default_args={"pre_execute": only_declared_conf(PARAMS)}``: before any task runs, a conf key the
DAG does not declare fails the task, without retries, in one line naming the key and the keys the
DAG takes. Nothing else has run at that point, so nothing has changed. (The declared names are
taken when the DAG is defined: ``dag.test()`` writes the run's conf into the DAG's own params.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from airflow.sdk.exceptions import AirflowFailException


def undeclared(conf: object, declared: Iterable[str]) -> list[str]:
    """The keys of ``conf`` not in ``declared`` (sorted); a conf that is no mapping is all wrong."""
    if conf is None:
        return []
    if not isinstance(conf, dict):
        return [f"<{type(conf).__name__}>"]
    return sorted(str(key) for key in conf if key not in set(declared))


def refuse_undeclared_conf(context: Any, declared: Iterable[str]) -> None:
    """Fail (not retried) if the run's conf has a key not in ``declared``."""
    accepted = sorted(declared)
    unknown = undeclared(context["dag_run"].conf, accepted)
    if unknown:
        raise AirflowFailException(
            f"{context['dag'].dag_id}: unknown conf key(s) {', '.join(unknown)}; it takes "
            f"{', '.join(accepted) or 'none'}; nothing was done")


def only_declared_conf(params: Iterable[str]) -> Callable[[Any], None]:
    """A ``pre_execute`` hook refusing conf keys other than ``params`` (a DAG's params mapping)."""
    declared = frozenset(params)

    def check(context: Any) -> None:
        refuse_undeclared_conf(context, declared)

    return check
