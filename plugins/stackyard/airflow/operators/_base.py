"""What every stackyard task shares: a request a retry cannot fix fails at once.

:data:`NON_RETRYABLE` errors (:class:`~stackyard.exceptions.InputError`: the request, a file or
the configuration is wrong; :class:`~stackyard.exceptions.AccessDeniedError`: a key, registry or
cluster refused) become Airflow's :class:`AirflowFailException` with the error's message, so the
task fails without spending its retries. Everything else keeps its retries (a network blip, a
busy API server).

The one definition is :func:`non_retryable`; ``@task`` functions use it as a ``with`` block and
class-based operators inherit it from :class:`StackyardOperator`.

Whatever fails a task is also noted in its XCom (:data:`ERROR_XCOM_KEY`: the first line of the
error, redacted, and whether it was a refusal), so a run's last task can say why the run failed
(:func:`failure_noted`, also applied by :class:`StackyardOperator`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from airflow.sdk import BaseOperator, get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSkipException

from stackyard.core.secrets import SECRETS
from stackyard.exceptions import AccessDeniedError, InputError

log = logging.getLogger(__name__)

NON_RETRYABLE: tuple[type[Exception], ...] = (InputError, AccessDeniedError)
ERROR_XCOM_KEY = "error"
F = TypeVar("F", bound=Callable[..., Any])


def error_line(exc: BaseException) -> str:
    """The line that says what went wrong: a tool's last ``Error:`` line, else the message's first;
    secrets replaced, at most 500 characters."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    text = errors[-1] if errors else (lines[0] if lines else type(exc).__name__)
    return SECRETS.redact(text)[:500]


def is_refusal(exc: BaseException) -> bool:
    """The request itself was refused (bad input, access denied), as opposed to a failure."""
    return isinstance(exc, NON_RETRYABLE) or isinstance(exc.__cause__, NON_RETRYABLE)


@contextlib.contextmanager
def failure_noted(context: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Note in this task's XCom why it failed (``{reason, refused}``), then let the error go on."""
    try:
        yield
    except (AirflowSkipException, AirflowRescheduleException):
        raise
    except Exception as exc:
        ti = (context if context is not None else get_current_context()).get("ti")
        if ti is not None:
            try:
                ti.xcom_push(key=ERROR_XCOM_KEY, value={"reason": error_line(exc), "refused": is_refusal(exc)})
            except Exception as push_error:  # never hide the real failure behind this one
                log.warning("could not note the failure in XCom: %s", error_line(push_error))
        raise


def noting_failure(func: F) -> F:
    """:func:`failure_noted` around a ``@task`` function (put it under ``@task``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with failure_noted():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


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
        with failure_noted(context), non_retryable():
            return self.perform(context)

    def perform(self, context: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement perform(context)")
