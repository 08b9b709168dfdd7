"""A real S3 API for the store tests: ``moto_server`` on a free 127.0.0.1 port, one per session.

Found next to the running interpreter (a venv's bin/) or on PATH. Credentials are fake and
passed to the client explicitly, so nothing reads or changes the caller's AWS environment.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def _moto_server_executable() -> str | None:
    beside_python = Path(sys.executable).parent / "moto_server"
    return str(beside_python) if beside_python.exists() else shutil.which("moto_server")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_listening(process: subprocess.Popen, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not listen on 127.0.0.1:{port} within {timeout}s")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    executable = _moto_server_executable()
    if executable is None:
        pytest.skip("moto_server not found (pip install 'moto[server]')")
    port = _free_port()
    process = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _wait_until_listening(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(scope="session")
def s3_client_factory(moto_endpoint: str) -> Callable[[], Any]:
    """Builds a new client per call (boto3 clients are thread-safe, but processes need their own)."""
    boto3 = pytest.importorskip("boto3")

    def make_client() -> Any:
        return boto3.client(
            "s3",
            endpoint_url=moto_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return make_client


@pytest.fixture
def s3_bucket(s3_client_factory: Callable[[], Any]) -> str:
    """A fresh, empty bucket per test, so tests share the server but never state."""
    name = f"stackyard-test-{uuid.uuid4().hex[:12]}"
    s3_client_factory().create_bucket(Bucket=name)
    return name
