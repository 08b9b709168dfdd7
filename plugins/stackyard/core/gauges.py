"""The fleet as Prometheus gauges: names, labels and values, from the Stacks view's documents.

Pure: the input is what :mod:`stackyard.core.fleet` builds (the overview, per-stack drift, the
gate's state); :mod:`stackyard.ui.metrics` turns these into prometheus-client metric families for
``/metrics``. One definition of every gauge, documented in ``docs/observability.md``.

Health is a number so that one series per service suffices: its index in
:data:`stackyard.core.health.SEVERITY` (0 healthy, 1 progressing, 2 unknown, 3 missing, 4 degraded,
5 failed), so ``max by (stack)`` is the stack's health and ``> 3`` alerts on broken services.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stackyard.core.health import SEVERITY, Health

EXPIRING_SECONDS = 24 * 3600
HEALTH_CODE = {status.value: index for index, status in enumerate(SEVERITY)}


@dataclass
class Gauge:
    name: str
    help: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def add(self, value: float, *labels: str) -> None:
        self.samples.append((tuple(labels), float(value)))


@dataclass(frozen=True)
class GateState:
    """The L3 gate: runs queued or running, and the last outcome with its time (None: unknown)."""

    queued: int | None = None
    last_outcome: str | None = None
    last_at: datetime | None = None


def fleet_gauges(overview: Mapping[str, Any], *, drift: Mapping[str, Mapping[str, str]] | None = None,
                 drift_read_at: datetime | None = None, gate: GateState = GateState()) -> list[Gauge]:
    """Every gauge of ``/metrics`` from one overview document (see the module docstring)."""
    matrix = overview.get("matrix") or {"columns": [], "rows": []}
    lag = Gauge("stackyard_service_lag_versions", "L3 versions of the service newer than the one deployed on the stack "
                "(0: the same as L3 or ahead)", ("stack", "service"))
    health = Gauge("stackyard_service_health", "Health of a service on a stack: 0 healthy, 1 progressing, 2 unknown, "
                   "3 missing, 4 degraded, 5 failed", ("stack", "service"))
    stack_health = Gauge("stackyard_stack_health", "Health of a stack (its worst service), coded as "
                         "stackyard_service_health", ("stack",))
    stack_services = Gauge("stackyard_stack_services", "Services deployed on a stack, per health", ("stack", "health"))
    behind = Gauge("stackyard_stack_services_behind_l3", "Services of a stack older than their L3 pin", ("stack",))
    columns = matrix["columns"]
    for index, column in enumerate(columns[1:], start=1):
        stack = column["name"]
        counts = {status.value: 0 for status in SEVERITY}
        late = 0
        for row in matrix["rows"]:
            cell = row["cells"][index]
            if "version" not in cell:
                continue
            if cell["state"] in ("same", "ahead", "behind"):
                lag.add(cell.get("behind") or 0, stack, row["service"])
                late += cell["state"] == "behind"
            code = cell.get("health") or Health.UNKNOWN.value
            health.add(HEALTH_CODE[code], stack, row["service"])
            counts[code] += 1
        for code, count in counts.items():
            stack_services.add(count, stack, code)
        behind.add(late, stack)
        if column.get("health"):
            stack_health.add(HEALTH_CODE[column["health"]], stack)
    gauges = [lag, health, stack_health, stack_services, behind]

    drifted = Gauge("stackyard_service_drift", "1 if live objects of the service differ from its helm release's "
                    "manifest, 0 if not (not exported when unknown)", ("stack", "service"))
    for stack, services in (drift or {}).items():
        for service, state in services.items():
            if state in ("drifted", "synced"):
                drifted.add(1 if state == "drifted" else 0, stack, service)
    gauges.append(drifted)
    if drift_read_at is not None:
        gauges.append(Gauge("stackyard_drift_read_timestamp_seconds", "When the drift gauges were computed",
                            samples=[((), drift_read_at.timestamp())]))

    ephemeral = (overview.get("ephemeral") or {}).get("stacks") or []
    left = Gauge("stackyard_ephemeral_stack_seconds_left", "Seconds before the reaper may remove an ephemeral stack",
                 ("stack", "owner"))
    expiring = 0
    for stack in ephemeral:
        if isinstance(stack.get("seconds_left"), int):
            left.add(stack["seconds_left"], stack["name"], stack.get("owner") or "")
            expiring += stack["seconds_left"] < EXPIRING_SECONDS
    gauges += [left, Gauge("stackyard_ephemeral_stacks_expiring", "Ephemeral stacks the reaper may remove within 24 h",
                           samples=[((), float(expiring))]),
               Gauge("stackyard_ephemeral_stacks", "Ephemeral stacks on the cluster", samples=[((), float(len(ephemeral)))])]

    if matrix.get("l3_version") is not None:
        gauges.append(Gauge("stackyard_l3_version", "The latest L3 manifest version", samples=[((), float(matrix["l3_version"]))]))
    if gate.queued is not None:
        gauges.append(Gauge("stackyard_gate_queue_length", "L3 gate runs queued or running", samples=[((), float(gate.queued))]))
    if gate.last_outcome is not None:
        gauges.append(Gauge("stackyard_gate_last_outcome", "The last L3 gate outcome (1 for the outcome it was)",
                            ("outcome",), [((gate.last_outcome,), 1.0)]))
    if gate.last_at is not None:
        gauges.append(Gauge("stackyard_gate_last_outcome_timestamp_seconds", "When the last L3 gate outcome was recorded",
                            samples=[((), gate.last_at.timestamp())]))

    sources = Gauge("stackyard_source_up", "1 if the Stacks view could read the source", ("source",))
    calls = Gauge("stackyard_cluster_api_calls", "Cluster API requests of the last fleet read, per kind", ("kind",))
    for name, status in (overview.get("sources") or {}).items():
        sources.add(1 if status.get("ok") else 0, name)
        for kind, count in (status.get("api_calls") or {}).items():
            calls.add(count, kind)
    return [*gauges, sources, calls]
