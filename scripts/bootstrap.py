#!/usr/bin/env python3
"""``make setup``: build the local toolchain, idempotently. Standard library only.

Steps, each skipped while its stamp matches (so a second run takes about a second):

1. ``.venv/``: ``python3 -m venv`` (recreated if its interpreter no longer runs).
2. Python dependencies: pinned pip, then ``requirements.txt`` + ``requirements-dev.txt`` under
   ``constraints.txt``; stamp = hash of those files and the pip pin.
3. The project itself, editable (``stackyard`` and ``kube-sandbox`` console scripts); stamp =
   hash of ``pyproject.toml``.
4. External tools into ``.venv/bin`` by ``scripts/install_tools.py`` (pinned, checksum-verified,
   downloads cached in ``.stackyard/cache/downloads``); stamp = hash of the lock and installer.
5. Airflow's SQLite metadata DB in ``.stackyard/airflow`` (``make up``'s): ``airflow db migrate``
   when the DB is missing or the Airflow pins changed. ``make demo`` and the tests copy theirs
   from a template DB migrated on first use (``local_env.fresh_airflow_home``).

Stamps of steps 2-4 live inside ``.venv`` so deleting the venv redoes them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_env  # noqa: E402  (sibling script: the one definition of the local environment)

ROOT = local_env.ROOT
VENV = ROOT / ".venv"
VENV_PY = VENV / "bin" / "python"
STATE = local_env.state_dir(ROOT)
STAMPS = VENV / ".stackyard-stamps"
CACHE = STATE / "cache" / "downloads"
PIP_VERSION = "26.3"
MIN_PYTHON = (3, 11)


class SetupError(Exception):
    pass


def log(message: str) -> None:
    print(f"setup: {message}", flush=True)


def digest(*parts: Path | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.read_bytes() if isinstance(part, Path) else part.encode()
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


def run(argv: list, env: dict | None = None) -> None:
    argv = [str(a) for a in argv]
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SetupError(f"command failed (exit {proc.returncode}): {' '.join(argv)}")


def step(name: str, stamp: Path, key: str, action, also_ok=lambda: True) -> None:
    if stamp.is_file() and stamp.read_text().strip() == key and also_ok():
        return
    log(f"{name} ...")
    started = time.monotonic()
    action()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + "\n")
    log(f"{name}: done in {time.monotonic() - started:.1f}s")


def venv_works() -> bool:
    if not VENV_PY.exists():
        return False
    return subprocess.run([VENV_PY, "-c", "import sys"], capture_output=True).returncode == 0


def ensure_venv() -> None:
    if venv_works():
        return
    if sys.version_info < MIN_PYTHON:
        raise SetupError(f"Python >= {'.'.join(map(str, MIN_PYTHON))} is needed, "
                         f"{sys.executable} is {sys.version.split()[0]} (make setup PYTHON=python3.11)")
    if VENV.exists():
        log(f"{VENV} is broken: recreating it")
        shutil.rmtree(VENV)
    log(f"creating {VENV} with {sys.executable} ({sys.version.split()[0]})")
    run([sys.executable, "-m", "venv", VENV])


def install_python_deps() -> None:
    pip = [VENV_PY, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--quiet", f"pip=={PIP_VERSION}"])
    run([*pip, "install", "-r", "requirements.txt", "-r", "requirements-dev.txt", "-c", "constraints.txt"])
    run([*pip, "check"])


def install_project() -> None:
    run([VENV_PY, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", "--no-deps", "-e", "."])


TOOLS_LOCK = ROOT / "scripts" / "tools.lock.json"
INSTALLER = ROOT / "scripts" / "install_tools.py"


def tools_present() -> bool:
    import json
    names = json.loads(TOOLS_LOCK.read_text())["tools"]
    return all((VENV / "bin" / name).is_file() for name in names)


def install_tools() -> None:
    run([VENV_PY, INSTALLER, "--bin-dir", VENV / "bin", "--cache-dir", CACHE])


def migrate_airflow_db() -> None:
    try:
        local_env.migrate(ROOT, Path(local_env.local_env(ROOT)["AIRFLOW_HOME"]))
    except RuntimeError as exc:
        raise SetupError(str(exc)) from None


def main() -> int:
    started = time.monotonic()
    STATE.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PIP_NO_INPUT", "1")
    with open(STATE / ".setup.lock", "w") as lock:  # one make setup at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            ensure_venv()
            step("python dependencies", STAMPS / "deps",
                 digest(PIP_VERSION, ROOT / "requirements.txt", ROOT / "requirements-dev.txt",
                        ROOT / "constraints.txt"),
                 install_python_deps)
            step("project (editable)", STAMPS / "project", digest(ROOT / "pyproject.toml"), install_project,
                 also_ok=lambda: (VENV / "bin" / "stackyard").exists())
            step("tools", STAMPS / "tools", digest(TOOLS_LOCK, INSTALLER), install_tools,
                 also_ok=tools_present)
            airflow_home = STATE / "airflow"
            step("airflow metadata DB", airflow_home / ".stackyard-migrated", digest(local_env.airflow_pins(ROOT)),
                 migrate_airflow_db, also_ok=lambda: (airflow_home / "airflow.db").is_file())
        except SetupError as exc:
            print(f"setup: ERROR: {exc}", file=sys.stderr)
            return 1
    log(f"ready in {time.monotonic() - started:.1f}s (eval \"$(make -s env)\" for a local-mode shell)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
