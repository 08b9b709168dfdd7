"""Image locking of a 300-service set: resolved in parallel with a per-reference cache (what
``stackyard chart publish`` does) against resolving every image occurrence one by one.

Each generated service deploys its own image, an init container on a shared base image and a
``helm test`` on a shared test image, in 5 profiles (what an L3 of 300 services asks of the
registry when its charts are published). The images live in a real OCI registry (Debian's
docker-registry on loopback); the same registry is also measured behind a loopback proxy that adds
a fixed round-trip delay, as a registry across a network has (loopback answers in ~1 ms, ECR or
Docker Hub in tens of ms). Both ways resolve exactly the same references; medians of 3 runs on loopback, one run behind
the delay.

Goal: the parallel, cached way at least 5x faster. ``--out FILE`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from dev.oci_images import push_image  # noqa: E402
from dev.oci_registry import local_oci_registry  # noqa: E402
from stackyard.adapters.image_registry import ImageResolver  # noqa: E402

PROFILES = 5
REPEATS = 3


def occurrences(registry: str, services: int) -> list[str]:
    """Every image reference as the rendered charts list them: per service and profile."""
    refs = []
    for n in range(services):
        for _ in range(PROFILES):
            refs += [f"{registry}/svc/s{n:03d}:1.0.0", f"{registry}/base/alpine:3.20", f"{registry}/base/busybox:1.36"]
    return refs


def delaying_proxy(upstream: str, delay: float):
    """A loopback HTTP proxy adding ``delay`` seconds to every request (a registry far away)."""
    host, port = upstream.split(":")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            time.sleep(delay)
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request(self.command, self.path, headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
            resp = conn.getresponse()
            body = resp.read()
            self.send_response(resp.status)
            for key, value in resp.getheaders():
                if key.lower() not in ("transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            conn.close()

        do_GET = do_HEAD = _forward  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def parallel_cached(refs: list[str]) -> float:
    started = time.perf_counter()
    results = ImageResolver(workers=16).resolve_all(refs)
    assert not any(isinstance(r, Exception) for r in results.values())
    return time.perf_counter() - started


def one_by_one(refs: list[str]) -> float:
    started = time.perf_counter()
    for ref in refs:
        ImageResolver().resolve(ref)  # no shared cache: each occurrence asks the registry
    return time.perf_counter() - started


def measure(registry: str, services: int, repeats: int = REPEATS) -> dict:
    refs = occurrences(registry, services)
    fast = statistics.median(parallel_cached(refs) for _ in range(repeats))
    slow = statistics.median(one_by_one(refs) for _ in range(repeats))
    return {"services": services, "image_occurrences": len(refs), "distinct_images": len(set(refs)),
            "parallel_cached_seconds": round(fast, 3), "one_by_one_seconds": round(slow, 3),
            "ratio": round(slow / fast, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="round-trip delay of the far registry")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp, local_oci_registry(Path(tmp) / "oci") as registry:
        for n in range(args.services):
            push_image(registry, f"svc/s{n:03d}", "1.0.0", content=f"s{n}".encode())
        push_image(registry, "base/alpine", "3.20", content=b"alpine")
        push_image(registry, "base/busybox", "1.36", content=b"busybox")
        report = {"loopback": measure(registry, args.services)}
        proxy, far = delaying_proxy(registry, args.delay_ms / 1000)
        try:
            # one run: one by one, every occurrence pays the delay (~100 s at 300 services)
            report[f"delay_{args.delay_ms:g}ms"] = measure(far, args.services, repeats=1)
        finally:
            proxy.shutdown()
    for name, row in report.items():
        print(f"{name:>12}: {row['image_occurrences']} image occurrences ({row['distinct_images']} distinct) of "
              f"{row['services']} services: parallel+cached {row['parallel_cached_seconds']:.2f} s, "
              f"one by one {row['one_by_one_seconds']:.2f} s -> {row['ratio']}x (goal >= 5x)")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
