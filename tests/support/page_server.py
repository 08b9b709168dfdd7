"""The Stacks view's page served as the browser tests need it: ``page.html`` at ``/stacks/`` and
canned JSON answers for its API calls (no Airflow, no cluster)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stackyard.ui.app import PAGE


@contextlib.contextmanager
def serve_page(answers: Mapping[str, Any], *,
               extra: Callable[[str], tuple[bytes, str] | None] | None = None) -> Iterator[str]:
    """Serve the page and ``answers`` (path → JSON document); ``extra(path)`` may answer other
    paths with ``(body, content type)``. Yields the base URL."""
    documents = {path: json.dumps(doc).encode() for path, doc in answers.items()}
    html = PAGE.read_text().replace("__AIRFLOW_BASE__", "").encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            found = (html, "text/html") if self.path == "/stacks/" else (
                (documents[self.path], "application/json") if self.path in documents else (extra and extra(self.path)))
            if not found:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", found[1])
            self.end_headers()
            self.wfile.write(found[0])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
