"""A real OCI registry on loopback: Debian's docker-registry (CNCF distribution), as installed by
``make setup`` into ``.venv/bin``. Local mode's image mirror, the registry tests and the benchmarks
run it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_oci_registry(root: Path, timeout: float = 15.0, users: dict[str, str] | None = None) -> Iterator[str]:
    """Serve a registry storing under ``root``; yields ``127.0.0.1:<port>``. With ``users``
    (name → password) it requires basic auth from an htpasswd file, as a private registry does."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not on PATH; run through `make test`/`make bench`")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {root / 'data'}}}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    if users:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # bcrypt through libxcrypt: what docker-registry's htpasswd reads

        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(f"{u}:{crypt.crypt(p, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n" for u, p in users.items()))
        with config.open("a") as f:
            f.write(f"auth:\n  htpasswd: {{realm: stackyard-test, path: {htpasswd}}}\n")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("docker-registry did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
