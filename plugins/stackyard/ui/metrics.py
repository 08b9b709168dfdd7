"""``/metrics``: the fleet's Prometheus gauges (:mod:`stackyard.core.gauges`), next to the Stacks view.

Each scrape reads the same sources as the page (the cluster read is cached for a few seconds, so a
scrape and page loads share it). Drift needs one namespace read per stack, so it is recomputed at
most every :data:`DRIFT_SECONDS` (``stackyard_drift_read_timestamp_seconds`` says when).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from stackyard.core.gauges import fleet_gauges
from stackyard.steps.fleet import Fleet

DRIFT_SECONDS = 300.0


class FleetCollector:
    """A prometheus-client collector computing every gauge at scrape time."""

    def __init__(self, fleet: Callable[[], Fleet], gate_queue: Callable[[], int] | None = None,
                 drift_seconds: float = DRIFT_SECONDS) -> None:
        self._fleet, self._gate_queue, self._drift_seconds = fleet, gate_queue, drift_seconds
        self._drift: tuple[float, datetime, dict] | None = None
        self._lock = threading.Lock()

    def _drift_now(self, fleet: Fleet) -> tuple[dict, datetime | None]:
        with self._lock:
            if self._drift and time.monotonic() - self._drift[0] < self._drift_seconds:
                return self._drift[2], self._drift[1]
            snap = fleet.snapshot(candidates=True)
            if snap.cluster is None:
                return {}, None
            drift = fleet.drift(snap)
            self._drift = (time.monotonic(), datetime.now(timezone.utc), drift)
            return drift, self._drift[1]

    def collect(self):
        fleet = self._fleet()
        overview = fleet.overview()
        drift, read_at = self._drift_now(fleet)
        for gauge in fleet_gauges(overview, drift=drift, drift_read_at=read_at, gate=fleet.gate_state(self._gate_queue)):
            family = GaugeMetricFamily(gauge.name, gauge.help, labels=list(gauge.labels))
            for labels, value in gauge.samples:
                family.add_metric(list(labels), value)
            yield family


def metrics_text(collector: FleetCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
