"""Faults during a deploy, with the real helm, sops and a deploy task on the kube sandbox.

- a helm SIGKILLed mid ``upgrade --install`` (the task lives on): the retry recovers the release
  (rollback to the last deployed revision) and succeeds, and says so in the stack's record stream;
- a whole task SIGKILLed mid first install: its helm dies with it, the retry uninstalls the
  never-deployed release and installs it;
- a live operation is never taken over: a second one waits, then fails naming the run holding it;
- a pending release stackyard did not write (helm run by hand) is refused, not touched;
- a task SIGKILLed at each step of a deploy leaves no plaintext secret in its temp directory or
  the state folder, and the next try succeeds.

Latency on the sandbox's deployment writes (``sb.faults.latency``) keeps helm in flight long
enough to be killed there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stackyard.adapters.leases import LeaseClient, ReleaseGuard, lease_view
from stackyard.adapters.record_store import open_record_store
from stackyard.core.release_recovery import Holder, lease_name
from stackyard.exceptions import ConflictError, ToolError
from stackyard.airflow.hooks.helm import HelmHook

from tests.conftest import ROOT
from tests.support.secrets import example_plaintexts
from tests.support.task_process import helm_children

RELEASE = "orders"


@pytest.fixture
def deploy(local_stack, sandbox):
    """orders 1.0.0 and 1.1.0 published, and a fresh namespace to deploy them into."""
    from kubernetes import client

    local_stack.publish("orders")
    local_stack.publish("orders", "1.1.0")
    namespace = f"f-{os.urandom(3).hex()}"
    local_stack.core_v1().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    sandbox.faults.clear()
    yield namespace
    sandbox.faults.clear()


def slow_deployments(sandbox, seconds: float = 60.0) -> None:
    """helm's apply of the Deployment hangs (after helm wrote its pending revision)."""
    sandbox.faults.latency(seconds, verb="patch", resource="deployments")


def history(local_stack, namespace: str) -> list[dict]:
    try:
        return local_stack.helm.history(RELEASE, namespace=namespace)
    except Exception:
        return []


def wait_until(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def pending(local_stack, namespace: str) -> bool:
    rows = history(local_stack, namespace)
    return bool(rows) and rows[-1]["status"].startswith("pending-")


def task_process(namespace: str, chart_ref: str, tmpdir: Path) -> subprocess.Popen:
    args = {"release": RELEASE, "namespace": namespace, "stack": namespace, "chart_ref": chart_ref}
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "tests.support.task_process", json.dumps(args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def events(local_stack, stack: str) -> list[dict]:
    store = open_record_store(local_stack.settings.records_url)
    return [record.data for record in store.list(f"stacks/{stack}/events")]


def test_killed_helm_upgrade_is_recovered_and_the_retry_succeeds(local_stack, sandbox, deploy):
    namespace = deploy
    hook = HelmHook()
    with hook.helm(stack=namespace) as helm:
        chart = local_stack.registry.fetch("orders", "1.0.0")
        helm.upgrade_install(RELEASE, chart, namespace=namespace)
        newer = local_stack.registry.fetch("orders", "1.1.0")
        slow_deployments(sandbox)
        failure: list[Exception] = []
        worker = threading.Thread(target=lambda: _capture(failure, helm.upgrade_install, RELEASE, newer,
                                                           namespace=namespace))
        worker.start()
        wait_until(lambda: pending(local_stack, namespace), what="pending-upgrade")
        for pid in helm_children(os.getpid()):
            os.kill(pid, signal.SIGKILL)  # an OOM kill of helm; the task lives on
        worker.join(30)
        sandbox.faults.clear()
        assert failure and isinstance(failure[0], ToolError) and failure[0].exit_code == -9
        assert history(local_stack, namespace)[-1]["status"] == "pending-upgrade"

        release = helm.upgrade_install(RELEASE, newer, namespace=namespace)  # the retry

    assert release.status == "deployed" and release.chart == "orders-1.1.0"
    rows = history(local_stack, namespace)
    assert [r["status"] for r in rows][-2:] == ["superseded", "deployed"]
    assert any(r["description"] == "Rollback to 1" for r in rows)
    recovered = [e for e in events(local_stack, namespace) if e["event"] == "release_recovered"]
    assert len(recovered) == 1
    assert recovered[0]["action"] == "rollback" and recovered[0]["to_revision"] == 1
    assert recovered[0]["pending_status"] == "pending-upgrade"
    assert recovered[0]["interrupted_by"]["pid"] == os.getpid()


def _capture(sink: list, fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        sink.append(exc)


def test_killed_task_takes_its_helm_with_it_and_the_retry_uninstalls_the_half_install(local_stack, sandbox, deploy,
                                                                                   tmp_path):
    namespace = deploy
    slow_deployments(sandbox)
    proc = task_process(namespace, "orders:1.0.0", tmp_path / "tmp")
    wait_until(lambda: pending(local_stack, namespace), what="pending-install")
    helms = helm_children(proc.pid)
    assert helms, "the task should be running helm"
    proc.kill()
    proc.wait()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in helms), timeout=10,
               what="helm to die with its task")
    sandbox.faults.clear()
    assert history(local_stack, namespace)[-1]["status"] == "pending-install"
    lease = lease_view(LeaseClient(_api(local_stack)).read(namespace, lease_name(RELEASE)))
    assert lease.held and lease.holder.pid == proc.pid  # never released: the holder was killed

    result = finish(task_process(namespace, "orders:1.0.0", tmp_path / "tmp"))

    assert result["status"] == "deployed"
    recovered = [e for e in events(local_stack, namespace) if e["event"] == "release_recovered"]
    assert [e["action"] for e in recovered] == ["uninstall"]
    assert recovered[0]["interrupted_by"]["pid"] == proc.pid


def test_a_live_operation_is_never_taken_over(local_stack, sandbox, deploy, tmp_path):
    namespace = deploy
    slow_deployments(sandbox, 8.0)
    proc = task_process(namespace, "orders:1.0.0", tmp_path / "tmp")
    wait_until(lambda: pending(local_stack, namespace), what="pending-install")
    holder = Holder("cli", "second", "-", 0, os.getpid(), "another-host")
    guard = ReleaseGuard(LeaseClient(_api(local_stack)), holder, wait_seconds=1.5, poll_seconds=0.2)
    helm = local_stack.helm.__class__(local_stack.helm.config, guard=guard)
    with pytest.raises(ConflictError, match=rf"held by run - of cli .*pid {proc.pid}"):
        helm.upgrade_install(RELEASE, local_stack.registry.fetch("orders", "1.1.0"), namespace=namespace)
    with pytest.raises(ConflictError, match="held by"):
        helm.uninstall(RELEASE, namespace=namespace)
    result = finish(proc)  # the first operation was left alone and finishes
    assert result["status"] == "deployed" and result["chart"] == "orders-1.0.0"
    assert [r["status"] for r in history(local_stack, namespace)] == ["deployed"]


def test_a_pending_release_stackyard_did_not_write_is_refused_untouched(local_stack, sandbox, deploy):
    namespace = deploy
    chart = local_stack.registry.fetch("orders", "1.0.0")
    local_stack.helm.upgrade_install(RELEASE, chart, namespace=namespace)  # by hand: no lease
    slow_deployments(sandbox)
    by_hand = subprocess.Popen([local_stack.helm.config.binary, "upgrade", RELEASE, str(chart), "-n", namespace,
                                "--server-side=true"], env=local_stack.helm.config.env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: pending(local_stack, namespace), what="pending-upgrade")
    by_hand.kill()
    by_hand.wait()
    sandbox.faults.clear()
    with HelmHook().helm() as helm, pytest.raises(ConflictError, match="stackyard did not start"):
        helm.upgrade_install(RELEASE, chart, namespace=namespace)
    assert [r["status"] for r in history(local_stack, namespace)] == ["deployed", "pending-upgrade"]


@pytest.mark.parametrize("kill_at", ["start", "helm", "pending"])
def test_a_task_killed_at_any_step_leaves_no_plaintext(local_stack, sandbox, deploy, tmp_path, sops_bin, kill_at):
    """The task's whole temp directory and the state folder are scanned after each kill."""
    namespace, tmpdir = deploy, tmp_path / "tmp"
    plaintexts = example_plaintexts(sops_bin)
    slow_deployments(sandbox)
    proc = task_process(namespace, "orders:1.0.0", tmpdir)
    if kill_at == "start":
        time.sleep(1.0)
    elif kill_at == "helm":
        wait_until(lambda: helm_children(proc.pid), what="helm to start")
    else:
        wait_until(lambda: pending(local_stack, namespace), what="pending-install")
    helms = helm_children(proc.pid)
    proc.kill()
    proc.wait()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in helms), timeout=10, what="helm to die")
    sandbox.faults.clear()
    for root in (tmpdir, local_stack.settings.home):
        hits = scan(root, plaintexts)
        assert hits == [], f"plaintext secrets on disk after a kill at {kill_at}: {hits}"
    assert finish(task_process(namespace, "orders:1.0.0", tmpdir))["status"] == "deployed"
    assert scan(tmpdir, plaintexts) == [] and scan(local_stack.settings.home, plaintexts) == []


def scan(root: Path, plaintexts: set[str]) -> list[str]:
    hits = []
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {p[:3]}…" for p in plaintexts if p.encode() in data]
    return hits


def _api(local_stack):
    from kubernetes import config

    return config.new_client_from_config(config_file=str(local_stack.kubeconfig))
