#!/usr/bin/env python3
"""The local-mode environment of stackyard, defined once.

Standard library only. Three uses, all from this one definition:

    local_env.py                       print shell 'export' lines: eval "$(make -s env)"
    local_env.py --exec -- CMD ARGS    run CMD with the environment applied (make test/demo/...)
    import local_env; local_env.local_env(root)   the variables as a dict (scripts/setup.py)

``--kubeconfig PATH`` points KUBECONFIG and the ``stackyard_kube`` connection at another
cluster (``make test-cluster`` passes the caller's KUBECONFIG) instead of the kube sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def state_dir(root: Path) -> Path:
    """The one folder of local state besides .venv/ (make clean removes both)."""
    return root / ".stackyard"


def venv_bin(root: Path) -> Path:
    return root / ".venv" / "bin"


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
