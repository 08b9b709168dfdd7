"""A kube sandbox in its own process (benchmarks measure it apart from the client's process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_sandbox_process(tmp: Path, ready_delay: float = 0.05) -> tuple[subprocess.Popen, str, Path]:
    """(process, URL, kubeconfig) of ``python -m kube_sandbox`` on a free port; stop it with terminate()."""
    kubeconfig = tmp / "kubeconfig"
    proc = subprocess.Popen([sys.executable, "-m", "kube_sandbox", "--port", "0", "--kubeconfig", str(kubeconfig),
                             "--ready-delay", str(ready_delay)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = proc.stdout.readline().split()[-1]  # "kube-sandbox serving <url>"
    proc.stdout.readline()  # "kubeconfig: <path>"
    return proc, url, kubeconfig
