#!/usr/bin/env python3
"""The local-mode environment of stackyard, defined once.

Standard library only. Three uses, all from this one definition:

    local_env.py                       print shell 'export' lines: eval "$(make -s env)"
    local_env.py --exec -- CMD ARGS    run CMD with the environment applied (make test/demo/...)
    import local_env; local_env.local_env(root)   the variables as a dict (scripts/setup.py)

Airflow homes, one per use, so that none sees another's DAG runs:

    .stackyard/airflow            make up (and a local-mode shell), migrated by make setup
    .stackyard/demo/airflow       make demo, fresh each run
    a temporary directory         each pytest session (tests/conftest.py), removed after it
    .stackyard/airflow-template   a migrated, never-used DB the last two are copied from
                                  (``fresh_airflow_home``: milliseconds instead of a migration)

``--kubeconfig PATH`` points KUBECONFIG and the ``stackyard_kube`` connection at another
cluster (``make test-cluster`` passes the caller's KUBECONFIG) instead of the kube sandbox.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def state_dir(root: Path) -> Path:
    """The one folder of local state besides .venv/ (make clean removes both)."""
    return root / ".stackyard"


def venv_bin(root: Path) -> Path:
    return root / ".venv" / "bin"


def airflow_pins(root: Path) -> str:
    """The Airflow lines of constraints.txt: a migrated DB is good while they are unchanged."""
    lines = (root / "constraints.txt").read_text().splitlines()
    return "\n".join(line for line in lines if line.lower().startswith("apache-airflow"))


def migrate(root: Path, home: Path) -> None:
    """``airflow db migrate`` into ``home`` (its own SQLite DB), whatever AIRFLOW_* the caller has."""
    home.mkdir(parents=True, exist_ok=True)
    env = apply(dict(os.environ), root)
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    proc = subprocess.run([str(venv_bin(root) / "airflow"), "db", "migrate"], env=env, cwd=root,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate in {home} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def fresh_airflow_home(root: Path, home: Path) -> Path:
    """``home`` emptied and given a freshly migrated metadata DB, copied from the template.

    The template (``.stackyard/airflow-template``) is migrated once per Airflow pin set, under a
    lock so that concurrent test sessions and demos wait for one migration instead of racing.
    """
    template = state_dir(root) / "airflow-template"
    stamp = template / ".stackyard-migrated"
    key = hashlib.sha256(airflow_pins(root).encode()).hexdigest()
    template.mkdir(parents=True, exist_ok=True)
    with open(template / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.is_file() and stamp.read_text().strip() == key and (template / "airflow.db").is_file()):
            (template / "airflow.db").unlink(missing_ok=True)
            migrate(root, template)
            stamp.write_text(key + "\n")
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        shutil.copy2(template / "airflow.db", home / "airflow.db")
    return home


def _conn(conn_type: str, extra: dict) -> str:
    return json.dumps({"conn_type": conn_type, "extra": extra}, separators=(",", ":"))


def local_env(root: Path = ROOT, kubeconfig: str | None = None) -> dict[str, str]:
    """Every variable local mode sets, except PATH (see :func:`apply`)."""
    home = state_dir(root)
    kube = kubeconfig or str(home / "sandbox" / "kubeconfig")
    # KUBECONFIG may be a list; the Airflow connection takes one file.
    kube_first = kube.split(os.pathsep)[0]
    return {
        "VIRTUAL_ENV": str(root / ".venv"),
        "STACKYARD_ROOT": str(root),
        "STACKYARD_HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # plugins/ first, as in the image: the checkout's own package wins over any installed copy
        # (a git worktree sharing one venv imports its own code).
        "PYTHONPATH": os.pathsep.join([str(root / "plugins"), str(root)]),
        "KUBECONFIG": kube,
        "AIRFLOW_CONN_STACKYARD_KUBE": _conn("kubernetes", {"kube_config_path": kube_first}),
        "AIRFLOW_CONN_STACKYARD_SOPS": _conn(
            "generic", {"age_key_file": str(root / "include" / "keys" / "example-only" / "age.key")}),
        "AIRFLOW_CONN_AWS_DEFAULT": _conn("aws", {"region_name": "us-east-1"}),
        "STACKYARD_REGISTRY": f"dir://{home / 'registry'}",
        "STACKYARD_MANIFEST_STORE": f"file://{home / 'manifests'}",
        "STACKYARD_RECORD_STORE": f"file://{home / 'records'}",
    }


def apply(base: dict[str, str], root: Path = ROOT, kubeconfig: str | None = None) -> dict[str, str]:
    """``base`` (e.g. os.environ) with local mode applied: the venv's bin first on PATH."""
    env = dict(base)
    env.update(local_env(root, kubeconfig))
    env["PATH"] = os.pathsep.join([str(venv_bin(root)), base.get("PATH", os.defpath)])
    env.pop("PYTHONHOME", None)
    return env


def exports(root: Path = ROOT, kubeconfig: str | None = None) -> str:
    lines = [f"export PATH={shlex.quote(str(venv_bin(root)))}:\"$PATH\""]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in local_env(root, kubeconfig).items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print or apply stackyard's local-mode environment.")
    parser.add_argument("--root", type=Path, default=ROOT, help="project root (default: this checkout)")
    parser.add_argument("--kubeconfig", help="use this kubeconfig instead of the kube sandbox's")
    parser.add_argument("--exec", action="store_true",
                        help="run the command given after -- with the environment applied")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1:]
    root = args.root.resolve()
    if not args.exec:
        if command:
            parser.error("a command was given without --exec")
        sys.stdout.write(exports(root, args.kubeconfig))
        return 0
    if not command:
        parser.error("--exec needs a command after --")
    env = apply(dict(os.environ), root, args.kubeconfig)
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"local_env: command not found: {command[0]} (did make setup run?)", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
