"""A real Prometheus (Debian's ``prometheus`` binary) scraping an exporter the test controls, for
canary analysis decided from real queries (tests/adapters, tests/steps, tests/e2e)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.oci_registry import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
METRIC = "shop_error_ratio"


class Exporter:
    """``/metrics`` with one gauge ``shop_error_ratio{service, namespace, track}`` per track; the test
    sets ``values`` (track → value) and may change ``service``/``namespace``."""

    def __init__(self, service: str = "shop", namespace: str = "prod"):
        self.values = {"stable": 0.01, "canary": 0.01}
        self.service, self.namespace = service, namespace
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = f"# TYPE {METRIC} gauge\n" + "".join(
                    f'{METRIC}{{service="{exporter.service}",namespace="{exporter.namespace}",track="{track}"}} {value}\n'
                    for track, value in list(exporter.values.items()))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"


def require_prometheus() -> None:
    if not shutil.which(PROMETHEUS):
        message = "the prometheus binary is not installed (apt-get install -y prometheus; .ci/run does it in CI)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def running_prometheus(root: Path, **exporter_labels: str) -> Iterator[tuple[str, Exporter]]:
    """Prometheus on a free loopback port scraping a new :class:`Exporter` every second."""
    require_prometheus()
    exporter = Exporter(**exporter_labels)
    config = root / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
                      f"scrape_configs:\n  - job_name: exporter\n    static_configs:\n"
                      f"      - targets: ['{exporter.address}']\n")
    port = free_port()
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(root / "log").open("w"), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("prometheus did not become ready:\n" + (root / "log").read_text()[-2000:])
                time.sleep(0.2)
        yield base, exporter
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        exporter.server.shutdown()


def scraped(base: str, track: str, value: float, timeout: float = 20.0) -> None:
    """Wait (bounded) until Prometheus has scraped the exporter's current value for ``track``."""
    query = f'{METRIC}{{track="{track}"}}'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        result = json.loads(urllib.request.urlopen(url, timeout=2).read())["data"]["result"]
        if result and float(result[0]["value"][1]) == value:
            return
        time.sleep(0.25)
    pytest.fail(f"prometheus never scraped {query} = {value}")
