"""What every stackyard task shares: a request a retry cannot fix fails at once.

:data:`NON_RETRYABLE` errors (:class:`~stackyard.exceptions.InputError`: the request, a file or
the configuration is wrong; :class:`~stackyard.exceptions.AccessDeniedError`: a key, registry or
cluster refused) become Airflow's :class:`AirflowFailException` with the error's message, so the
task fails without spending its retries. Everything else keeps its retries (a network blip, a
busy API server).

The one definition is :func:`non_retryable`; ``@task`` functions use it as a ``with`` block and
class-based operators inherit it from :class:`StackyardOperator`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from stackyard.exceptions import AccessDeniedError, InputError

NON_RETRYABLE: tuple[type[Exception], ...] = (InputError, AccessDeniedError)


@contextlib.contextmanager
def non_retryable() -> Iterator[None]:
    """Turn an error no retry can fix into a failure without retries, keeping its message."""
    try:
        yield
    except NON_RETRYABLE as exc:
        raise AirflowFailException(str(exc) or type(exc).__name__) from exc


class StackyardOperator(BaseOperator):
    """Base of stackyard's class-based operators: subclasses implement :meth:`perform`.

    ``execute`` runs ``perform`` inside :func:`non_retryable`. An operator reusing another's work
    (a rollout reusing the upgrade) calls that one's ``perform``, so it sees the original error.
    """

    def execute(self, context: Any) -> Any:
        with non_retryable():
            return self.perform(context)

    def perform(self, context: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement perform(context)")
