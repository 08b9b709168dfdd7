"""stackyard's metrics, through Airflow's own metrics configuration (``[metrics]``).

Airflow 3.3's task runner initialises ``airflow.sdk.observability.stats`` from ``[metrics]``
(``statsd_on`` / ``otel_on`` / ``statsd_datadog_enabled``, host, port, prefix, allow list), so a
call here goes wherever Airflow's own metrics go, with Airflow's prefix (default ``airflow.``).
When metrics are off, every call is a no-op.

StatsD has no tags unless ``statsd_influxdb_enabled``, so what varies (outcome, stack) is part of
the name; the same values are also passed as tags for OpenTelemetry and DogStatsD.

=========================================  =======  =============================================
name                                       type     when
=========================================  =======  =============================================
``stackyard.gate.duration``                timer    every L3 gate run (ms), tag ``outcome``
``stackyard.gate.<outcome>``               counter  promoted / rejected / requeued
``stackyard.rollout.<stack>.<outcome>``    counter  each service rollout on a persistent stack
``stackyard.stacks.ephemeral.live``        gauge    ephemeral stacks alive after a reaper run
``stackyard.stacks.reaped``                counter  stacks the reaper deleted
``stackyard.notifications.<kind>``         counter  notifications delivered
=========================================  =======  =============================================
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _segment(value: str) -> str:
    """A name segment StatsD keeps as one level: dots and odd characters become ``_``."""
    return _SAFE.sub("_", value).strip("_") or "unknown"


def _stats():
    from airflow.sdk.observability import stats

    return stats


def _emit(action: str, *args, **kwargs) -> None:
    # Metrics must never fail the work they measure.
    try:
        getattr(_stats(), action)(*args, **kwargs)
    except Exception as exc:
        log.warning("metric %s not emitted: %s", args[0] if args else "?", exc)


def gate_finished(outcome: str, duration_seconds: float | None) -> None:
    """One L3 gate run: its outcome counter and, if known, its duration."""
    outcome = _segment(outcome)
    _emit("incr", f"stackyard.gate.{outcome}", tags={"outcome": outcome})
    if duration_seconds is not None:
        _emit("timing", "stackyard.gate.duration", timedelta(seconds=duration_seconds), tags={"outcome": outcome})


def rollout_finished(stack: str, outcome: str) -> None:
    """One service rollout on ``stack`` (succeeded / failed / rolled_back / skipped …)."""
    stack, outcome = _segment(stack), _segment(outcome)
    _emit("incr", f"stackyard.rollout.{stack}.{outcome}", tags={"stack": stack, "outcome": outcome})


def live_ephemeral_stacks(count: int) -> None:
    _emit("gauge", "stackyard.stacks.ephemeral.live", count)


def stacks_reaped(count: int) -> None:
    if count:
        _emit("incr", "stackyard.stacks.reaped", count)


def notification_sent(kind: str) -> None:
    _emit("incr", f"stackyard.notifications.{_segment(kind)}", tags={"kind": _segment(kind)})
