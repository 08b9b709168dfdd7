"""Local mode: Airflow standalone next to the kube sandbox (``make up``), and the one place that
starts and stops an Airflow API server (the CLI tests start theirs through :class:`AirflowServer`).

``airflow standalone`` runs the api-server, scheduler (LocalExecutor), dag-processor and
triggerer under one parent with the simple auth manager. Two facts shape this module:

- standalone stops only on SIGINT, and a process started in the background inherits SIGINT as
  *ignored*; so it is started in its own session with SIGINT reset to the default, and stopped
  with ``SIGINT`` to its pid (then ``SIGTERM``/``SIGKILL`` to its process group if it hangs);
- passwords of the simple auth manager come from a JSON file we write (0600) before it starts,
  so callers know them without scraping its output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dev import image_mirror
from stackyard.settings import Settings

GATE_DAG_ID = "l3_gate"
#: Triggered by people and CI, never on a schedule: active as soon as Airflow is up. Scheduled DAGs
#: (the reaper, persistent stacks' rollouts) stay paused in local mode until someone unpauses them,
#: so a laptop does not start rolling out to sandbox stacks on its own (and SQLite stays calm).
ON_DEMAND_DAGS = (GATE_DAG_ID, "profile_check", "stack_create", "stack_touch", "stack_destroy")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` cannot be bound (a listener on it or on 0.0.0.0 / ::)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port``, from /proc/net/tcp{,6} (state 0A is LISTEN)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _socket_inodes(proc: Path) -> set[str]:
    """The socket inodes a /proc/PID holds open (none if it is gone or another user's)."""
    inodes = set()
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile (e.g. the descriptor that listed the folder)
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def port_holder(port: int) -> str:
    """Who listens on ``port``: "pid N, command …" for each process we can see, else what we know.

    Reads /proc (no tool needed); a process of another user is not visible there, then only the
    fact that something listens is reported.
    """
    inodes = _listening_inodes(port)
    holders = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        if not inodes.intersection(_socket_inodes(proc)):
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile
            continue
        holders.append(f"pid {proc.name}, command {command[:120] or '?'}")
    if holders:
        return "; ".join(holders)
    return "held by a process this user cannot see" if inodes else "held by a socket not yet listening"


def check_ports(ports: Mapping[str, int]) -> list[str]:
    """One line per port of ``ports`` (what → port) that is taken, naming what holds it."""
    return [f"port {port} ({what}) is in use ({port_holder(port)})"
            for what, port in ports.items() if port and port_in_use(port)]


def ensure_password(path: Path, user: str) -> str:
    """The user's password in the simple auth manager's JSON file, generated once (0600)."""
    if path.is_file():
        known = json.loads(path.read_text() or "{}")
        if known.get(user):
            return known[user]
    password = secrets.token_urlsafe(18)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({user: password}, fh)
    return password


def _restore_sigint() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class AirflowServer:
    """``airflow standalone`` with its own AIRFLOW_HOME, an admin user and a known password.

    ``env`` is the environment of every Airflow process (and so of every task): the caller puts
    stackyard's settings and connections there. Logs of all components go to ``home/standalone.log``.
    """

    home: Path
    env: Mapping[str, str]
    port: int = 8080
    host: str = "127.0.0.1"
    user: str = "admin"
    parallelism: int = 4
    password: str = field(init=False, default="")
    process: subprocess.Popen | None = field(init=False, default=None)
    _log_offset: int = field(init=False, default=0)  # where this start's output begins in the log

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "standalone.log"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def server_env(self) -> dict[str, str]:
        env = dict(self.env)
        env.update({
            "AIRFLOW_HOME": str(self.home),
            # Its own metadata DB, whatever the caller's environment names: a test session's DB
            # shared with a standalone's scheduler and api-server was seen corrupted.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),  # each task is a process: 2 cores
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{self.host}:{self.port}/execution/",
            # Every component signs and checks tokens with it; one per home, kept in the env only.
            "AIRFLOW__API_AUTH__JWT_SECRET": self.env.get("AIRFLOW__API_AUTH__JWT_SECRET") or secrets.token_urlsafe(32),
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            # The scheduler's and triggerer's log servers default to fixed ports (8793, 8794): two
            # instances on one machine (make up + the tests) must not collide.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        })
        env.pop("AIRFLOW__CORE__AUTH_MANAGER", None)  # standalone forces the simple auth manager
        return env

    def start(self, timeout: float = 180.0) -> AirflowServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self.password = ensure_password(self.passwords_file, self.user)
        env = self.server_env()
        airflow = str(Path(sys.executable).with_name("airflow"))
        log = self.log_path.open("ab")
        self._log_offset = log.seek(0, os.SEEK_END)
        try:
            self.process = subprocess.Popen(
                [airflow, "standalone"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_restore_sigint,
            )
        finally:
            log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until the scheduler and dag-processor are healthy and the on-demand DAGs are active."""
        deadline = time.monotonic() + timeout
        token = None
        pending = list(ON_DEMAND_DAGS)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited with {self.process.returncode}; see {self.log_path}")
            self._fail_on_bind_error()
            try:
                if token is None:
                    token = self.token()
                for dag_id in list(pending):
                    if self._get(f"/api/v2/dags/{dag_id}", token) is not None:
                        self._request("PATCH", f"/api/v2/dags/{dag_id}", token, {"is_paused": False})
                        pending.remove(dag_id)
                if not pending and self._healthy():
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"Airflow did not become ready on {self.url} within {timeout:.0f}s "
                           f"(waiting for {', '.join(pending) or 'health'}); see {self.log_path}")

    def _fail_on_bind_error(self) -> None:
        """The api-server cannot listen (a port taken between our check and its start): say so now,
        not after the timeout (standalone itself keeps running without its api-server)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(self._log_offset, log.seek(0, os.SEEK_END) - 65536))
                tail = log.read().decode(errors="replace")
        except OSError:
            return
        if "address already in use" in tail.lower():
            raise RuntimeError(f"port {self.port} is in use ({port_holder(self.port)}); "
                               f"Airflow could not listen on it (see {self.log_path})")

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
            health = json.load(response)
        return all((health.get(c) or {}).get("status") == "healthy" for c in ("metadatabase", "scheduler", "dag_processor"))

    def token(self) -> str:
        body = json.dumps({"username": self.user, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["access_token"]

    def _get(self, path: str, token: str) -> dict | None:
        try:
            return self._request("GET", path, token)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def _request(self, method: str, path: str, token: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT (standalone's clean shutdown), then the whole process group if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)  # its own session: the group is standalone and its children
            except ProcessLookupError:
                return
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                continue
        # children of an already-exited parent may still be in the group
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> AirflowServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------- make up


def seed_examples(settings: Settings, say=print) -> None:
    """Publish the example charts (a no-op for the same content) and seed L3 v1 if the store is empty."""
    from stackyard.core.times import utc_now

    from stackyard.cli._common import cli_helm, image_resolver_for_cli, registry_for_cli
    from stackyard.core.manifest import Manifest, Provenance
    from stackyard.steps.publishing import pin_of, publish_chart
    from stackyard.adapters.manifest_store import open_manifest_store

    pins = {}
    with cli_helm(settings) as helm:
        registry = registry_for_cli(settings, helm)
        for chart_dir in sorted(p for p in settings.charts_dir.iterdir() if (p / "Chart.yaml").is_file()):
            ref = publish_chart(chart_dir, registry=registry, helm=helm, images=image_resolver_for_cli(settings))
            pins[ref.name] = pin_of(registry, ref)
    say(f"example charts in {settings.registry_url}: {', '.join(f'{n} {p.chart_version}' for n, p in pins.items())}")
    store = open_manifest_store(settings.manifest_store_url)
    latest = store.latest()
    if latest is None:
        latest = store.seed(Manifest.initial(pins, utc_now(), Provenance(None, "make up", None)))
        say(f"seeded L3 v1 in {settings.manifest_store_url}")
    else:
        say(f"L3 is at v{latest.version} in {settings.manifest_store_url}")


def up(settings: Settings, *, port: int = 8080, sandbox_port: int = 6443, stop: threading.Event | None = None) -> int:
    """Run the sandbox and Airflow standalone until SIGINT/SIGTERM (or ``stop``); 0 on a clean stop."""
    from kube_sandbox import Sandbox

    taken = check_ports({"Airflow, PORT": port, "kube sandbox, SANDBOX_PORT": sandbox_port})
    if taken:
        for line in taken:
            print(f"up: {line}", file=sys.stderr)
        print("up: stop what holds it, or pick other ports: make up PORT=8081 SANDBOX_PORT=6444", file=sys.stderr)
        return 2
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    sandbox_dir = settings.home / "sandbox"
    kubeconfig = Path(os.environ.get("KUBECONFIG") or sandbox_dir / "kubeconfig")
    snapshot = sandbox_dir / "snapshot.json"
    from dev.demo import SANDBOX_RULES

    sandbox = Sandbox(ready_delay=0.5, snapshot=snapshot, port=sandbox_port, kubeconfig=kubeconfig,
                      rules=str(SANDBOX_RULES))
    try:
        sandbox.start()
    except OSError as exc:
        print(f"up: the kube sandbox cannot listen on 127.0.0.1:{sandbox_port}: {exc} "
              "(is `make sandbox` or another `make up` running?)", file=sys.stderr)
        return 2
    server = None
    mirror = contextlib.ExitStack()
    try:
        print(f"kube sandbox on {sandbox.url} (kubeconfig {kubeconfig}, snapshot {snapshot})", flush=True)
        # The example charts' images, offline: Airflow's tasks resolve digests through it too.
        os.environ["STACKYARD_IMAGE_MIRRORS"] = mirror.enter_context(image_mirror.serve(settings.home))
        settings = dataclasses.replace(settings, image_mirrors=os.environ["STACKYARD_IMAGE_MIRRORS"])
        print(f"image mirror: {settings.image_mirrors}", flush=True)
        sandbox.image_digest = image_mirror.pulled_digest(settings.image_mirrors)  # pods' imageID: the mirror's
        seed_examples(settings, say=lambda text: print(text, flush=True))
        if stop.is_set():
            return 0
        server = AirflowServer(home=Path(os.environ.get("AIRFLOW_HOME") or settings.home / "airflow"),
                               env=os.environ, port=port)
        print(f"starting Airflow standalone (logs: {server.log_path}) …", flush=True)
        server.start()
        print(
            f"\nAirflow is up: {server.url}  (the gate: {server.url}/dags/{GATE_DAG_ID}, button Trigger)\n"
            f"  log in as: {server.user}\n  password:  {server.password}\n"
            f"  (generated once, kept in {server.passwords_file})\n"
            f"  from a terminal: STACKYARD_API_USER={server.user} STACKYARD_API_PASSWORD=… "
            f"stackyard gate --service S --version V --wait\n"
            "Stop with Ctrl-C.", flush=True,
        )
        while not stop.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                print(f"up: Airflow exited unexpectedly; see {server.log_path}", file=sys.stderr)
                return 2
        return 0
    except (TimeoutError, RuntimeError) as exc:
        print(f"up: {exc}", file=sys.stderr)
        return 2
    finally:
        print("\nstopping Airflow and the sandbox …", flush=True)
        if server is not None:
            server.stop()
        mirror.close()
        sandbox.stop()
        print(f"stopped; sandbox snapshot written to {snapshot}", flush=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dev.local", description="stackyard local mode (make up)")
    parser.add_argument("--port", type=int, default=8080, help="Airflow's port (default 8080; make up PORT=…)")
    parser.add_argument("--sandbox-port", type=int, default=6443, help="the kube sandbox's port (default 6443, 0: any free one; make up SANDBOX_PORT=…)")
    args = parser.parse_args(argv)
    return up(Settings.from_env(), port=args.port, sandbox_port=args.sandbox_port)


if __name__ == "__main__":
    sys.exit(main())
