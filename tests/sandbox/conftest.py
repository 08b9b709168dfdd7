"""Fixtures for the kube sandbox tests: a fresh sandbox per test, helm/kubectl runners, a
``helm create`` scaffold chart whose test pod can be told to fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kube_sandbox import Sandbox

from kube_sandbox.controllers import OUTCOME as FAIL_ANNOTATION


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH; run the suite through `make test` (it installs the tools)")
    return path


@pytest.fixture
def sandbox():
    with Sandbox(ready_delay=0.2) as sb:
        yield sb


class Cli:
    """Runs helm/kubectl against one sandbox with isolated helm/kube caches."""

    def __init__(self, sb: Sandbox, home: Path):
        self.sb = sb
        self.env = {**os.environ, "KUBECONFIG": str(sb.kubeconfig_path), "HOME": str(home),
                    "HELM_CACHE_HOME": str(home / "helm-cache"), "HELM_CONFIG_HOME": str(home / "helm-config"),
                    "HELM_DATA_HOME": str(home / "helm-data")}

    def run(self, tool: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([_tool(tool), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, start_new_session=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed rc={proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("helm", *args, check=check)

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("kubectl", *args, check=check)


@pytest.fixture
def cli(sandbox, tmp_path) -> Cli:
    return Cli(sandbox, tmp_path)


@pytest.fixture(scope="session")
def scaffold_chart(tmp_path_factory) -> Path:
    """``helm create demo``, with the test pod's outcome driven by ``.Values.testOutcome``."""
    root = tmp_path_factory.mktemp("charts")
    subprocess.run([_tool("helm"), "create", "demo"], cwd=root, check=True, capture_output=True,
                   env={**os.environ, "HOME": str(root)})
    chart = root / "demo"
    test_pod = chart / "templates" / "tests" / "test-connection.yaml"
    text = test_pod.read_text()
    marker = '"helm.sh/hook": test'
    assert marker in text, "helm create scaffold changed: test pod hook annotation not found"
    test_pod.write_text(text.replace(
        marker, marker + f'\n    {FAIL_ANNOTATION}: {{{{ .Values.testOutcome | default "pass" | quote }}}}'))
    return chart


@pytest.fixture
def kube_client(sandbox):
    """A kubernetes Python client ApiClient configured from the sandbox kubeconfig."""
    kubernetes = pytest.importorskip("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
    yield api_client
    api_client.close()
