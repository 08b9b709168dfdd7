"""The helm 4 CLI: the only module that builds helm command lines.

Values reach helm only through ``--values``, never as ``--set`` (argv is logged). Composed values
(decrypted secrets among them) never touch a disk: they are written to an anonymous in-memory
file (``memfd_create``) that helm inherits and reads as ``/dev/fd/N``; it is gone as soon as
both processes are (a SIGKILL included). Upgrades pass ``--server-side=true`` explicitly: helm 4
otherwise remembers the apply method per release.

With a ``guard`` (see :class:`stackyard.adapters.leases.ReleaseGuard`) every upgrade, rollback
and uninstall holds the release's lease, and an operation interrupted earlier is recovered first.

A stack's release never owns a CRD (docs/chart-contract.md): ``--skip-crds`` leaves the charts'
``crds/`` folders out and the post-renderer plugin ``stackyard-post-render`` (helm 4 takes
post-renderers as plugins; this one is written into the task's private helm home) drops CRD
templates; stackyard applies CRDs itself. The same plugin runs every container at its pinned
digest when asked (``image_digests``, docs/images.md): helm allows one post-renderer per command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stackyard
from stackyard.core.charts import split_chart
from stackyard.core.images import ChartDigests
from stackyard.exceptions import InputError, NotFoundError, ToolError
from stackyard.adapters.runner import ToolResult, ToolRunner, process_alive

DEFAULT_TIMEOUT = "5m0s"
POST_RENDER_PLUGIN = "stackyard-post-render"
#: The plugin's program: the rules are core's; it only reads its arguments and files.
_POST_RENDER_SCRIPT = """import json, sys
sys.path.insert(0, {path!r})
from stackyard.core.cluster_objects import without_crds
from stackyard.core.images import ChartDigests, pin_rendered
args = sys.argv[1:]
text = sys.stdin.read()
if "--without-crds" in args:
    text = without_crds(text)
if "--pin-images" in args:
    pins = args[args.index("--pin-images") + 1]
    with open(pins) as f:
        result = pin_rendered(text, ChartDigests.from_json(json.load(f)))
    if result.unpinnable:
        message = result.report("helm post-render")
        with open(pins + ".error", "w") as f:
            f.write(message)  # helm 4 does not show a post-renderer's stderr
        sys.stderr.write(message)
        sys.exit(1)
    text = result.text
sys.stdout.write(text)
"""
_PUSH_DIGEST = re.compile(r"Digest:\s*(sha256:[0-9a-f]{64})")
#: What older stackyard versions named the private directory of a values file.
LEGACY_VALUES_DIR_PREFIX = "stackyard-values-"
#: A helm home is ``stackyard-helm-<pid>-<random>``: a killed task's home is found by its dead pid.
HOME_PREFIX = "stackyard-helm-"
#: ``guard(helm, release, namespace, action)``: a context held around one release operation.
ReleaseGuardFn = Callable[["Helm", str, str, str], AbstractContextManager[None]]


@contextmanager
def values_fd(values: Mapping[str, Any] | None) -> Iterator[tuple[list[str], tuple[int, ...]]]:
    """(``--values /dev/fd/N`` args, fds to pass) for composed values held only in memory.

    JSON is valid YAML. ``MFD_CLOEXEC``: only the helm it is passed to (``pass_fds``) inherits it.
    """
    if values is None:
        yield [], ()
        return
    fd = os.memfd_create("stackyard-values", os.MFD_CLOEXEC)
    try:
        data = memoryview(json.dumps(values).encode())
        while data:
            data = data[os.write(fd, data):]
        yield ["--values", f"/dev/fd/{fd}"], (fd,)
    finally:
        os.close(fd)


def private_home() -> Path:
    """A new private (0700) helm home named after this process (see :func:`sweep_leftovers`)."""
    return Path(tempfile.mkdtemp(prefix=f"{HOME_PREFIX}{os.getpid()}-"))


def sweep_leftovers(tmpdir: str | Path | None = None) -> list[Path]:
    """Remove what killed tasks left in the temp directory: every values directory of an older
    stackyard (decrypted values), and the helm homes (an inline kubeconfig) of dead processes.

    Returns what was removed. Only this user's directories are touched.
    """
    root = Path(tmpdir or tempfile.gettempdir())
    removed = []
    for path in [*root.glob(f"{LEGACY_VALUES_DIR_PREFIX}*"), *root.glob(f"{HOME_PREFIX}*")]:
        try:
            if not path.is_dir() or path.is_symlink() or path.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        if path.name.startswith(HOME_PREFIX):
            pid = path.name.removeprefix(HOME_PREFIX).split("-", 1)[0]
            if not pid.isdigit() or process_alive(int(pid)):
                continue  # a live task's home, or one of an older version (no pid: nothing secret)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed





@dataclass(frozen=True)
class HelmConfig:
    """Where helm runs: binary, cluster access and a private home for its cache and config.

    ``home`` isolates ``HELM_CACHE_HOME``/``HELM_CONFIG_HOME``/``HELM_DATA_HOME`` per task, so
    concurrent tasks never share registry logins or repository caches.
    """

    home: Path
    binary: str = "helm"
    kubeconfig: str | None = None
    kube_context: str | None = None
    plain_http: bool = False
    base_env: Mapping[str, str] = field(default_factory=dict, repr=False)  # the process env: secrets too
    #: What exec credential plugins need on top (AWS identity, PATH to the aws CLI); never logged.
    extra_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in self.base_env.items() if k in ("PATH", "HOME", "TMPDIR", "LANG", "SSL_CERT_FILE")}
        env.update(
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
            # client-go's discovery cache; by default under $HOME/.kube, or under the working
            # directory when HOME is unset. Private per task: no stale discovery between clusters.
            KUBECACHEDIR=str(self.home / "kube-cache"),
        )
        env.setdefault("HOME", str(self.home))
        env.update(self.extra_env)
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        return env


@dataclass(frozen=True)
class Release:
    """One row of ``helm list``/``helm status``: what is deployed, not how it was configured."""

    name: str
    namespace: str
    revision: int
    status: str
    chart: str
    app_version: str | None = None

    @property
    def chart_name(self) -> str:
        return split_chart(self.chart)[0]

    @property
    def chart_version(self) -> str:
        return split_chart(self.chart)[1] or ""


@dataclass(frozen=True)
class _PostRender:
    argv: list[str]
    error_file: Path | None = None

    def raise_reported(self) -> None:
        """The post-renderer's own report (helm 4 only says the plugin failed), if it wrote one."""
        if self.error_file is not None and self.error_file.is_file():
            raise InputError(self.error_file.read_text()) from None


@dataclass(frozen=True)
class TestRun:
    passed: bool
    output: str


class Helm:
    def __init__(self, config: HelmConfig, runner: ToolRunner | None = None, *,
                 guard: ReleaseGuardFn | None = None) -> None:
        self.config = config
        self.runner = runner or ToolRunner()
        self.guard = guard

    def _guarded(self, release: str, namespace: str, action: str) -> AbstractContextManager[None]:
        return self.guard(self, release, namespace, action) if self.guard else nullcontext()

    # -- artifacts ---------------------------------------------------------------------------
    def package(self, chart_dir: str | Path, dest: str | Path, *, version: str | None = None) -> Path:
        argv = ["package", str(chart_dir), "--destination", str(dest)]
        if version:
            argv += ["--version", version]
        out = self._run(argv).output_tail
        match = re.search(r"saved it to: (\S+\.tgz)", out)
        if not match:
            raise ToolError("helm", 0, out, summary="helm package did not say where it saved the chart")
        return Path(match.group(1))

    def push(self, tgz: str | Path, oci_repo: str) -> str:
        """Push to ``oci://host/path``; returns the manifest digest helm reports."""
        out = self._run(["push", str(tgz), oci_repo, *self._http_flags()]).output_tail
        match = _PUSH_DIGEST.search(out)
        if not match:
            raise ToolError("helm", 0, out, summary="helm push did not report a digest")
        return match.group(1)

    def pull(self, oci_ref: str, version: str, dest: str | Path) -> Path:
        dest = Path(dest)
        try:
            self._run(["pull", oci_ref, "--version", version, "--destination", str(dest), *self._http_flags()])
        except ToolError as exc:
            if "not found" in exc.output_tail or "manifest unknown" in exc.output_tail:
                raise NotFoundError(f"{oci_ref} version {version} is not in the registry") from None
            raise
        name = oci_ref.rstrip("/").rsplit("/", 1)[-1]
        return dest / f"{name}-{version}.tgz"

    def registry_login(self, host: str, username: str, password: str) -> None:
        # The password goes through stdin: argv is logged and visible in the process table.
        self._run(["registry", "login", host, "--username", username, "--password-stdin", *self._http_flags(login=True)],
                  stdin=password.encode())

    def dependency_build(self, chart_dir: str | Path) -> None:
        self._run(["dependency", "build", str(chart_dir), *self._http_flags()])

    def lint(self, chart: str | Path, values_files: Sequence[str | Path] = (), *,
             values: Mapping[str, Any] | None = None) -> None:
        with values_fd(values) as (args, fds):
            self._run(["lint", str(chart), *self._values_args(values_files), *args], pass_fds=fds)

    def template(
        self, release: str, chart: str | Path, *, namespace: str, values_files: Sequence[str | Path] = (),
        include_crds: bool = False, values: Mapping[str, Any] | None = None,
    ) -> str:
        with values_fd(values) as (args, fds):
            argv = ["template", release, str(chart), "--namespace", namespace, *self._values_args(values_files), *args]
            if include_crds:
                argv.append("--include-crds")
            return self._run(argv, stdout_is_data=True, pass_fds=fds).stdout

    # -- releases ----------------------------------------------------------------------------
    def upgrade_install(
        self,
        release: str,
        chart: str | Path,
        *,
        namespace: str,
        values_files: Sequence[str | Path] = (),
        values: Mapping[str, Any] | None = None,
        wait: bool = True,
        timeout: str = DEFAULT_TIMEOUT,
        rollback_on_failure: bool = True,
        create_namespace: bool = False,
        without_crds: bool = False,
        image_digests: ChartDigests | None = None,
    ) -> Release:
        """``values`` (composed, secrets included) are applied after ``values_files``, from memory.
        ``without_crds``: the release gets none of the chart's CRDs (stackyard applies them).
        ``image_digests``: every container runs at its chart's locked digest; an image that cannot
        be pinned fails the upgrade before anything is applied (InputError naming it)."""
        with (self._guarded(release, namespace, "upgrade"), values_fd(values) as (args, fds),
              self._post_render(without_crds, image_digests) as post_render):
            argv = [
                "upgrade", release, str(chart), "--install",
                "--namespace", namespace,
                "--server-side=true",
                "--timeout", timeout,
                *self._values_args(values_files), *args,
            ]
            if wait:
                argv.append("--wait=watcher")
            if rollback_on_failure:
                argv.append("--rollback-on-failure")
            if create_namespace:
                argv.append("--create-namespace")
            if without_crds:
                argv.append("--skip-crds")
            argv += post_render.argv
            try:
                self._run(argv, kube=True, pass_fds=fds)
            except ToolError:
                post_render.raise_reported()
                raise
        return self.status(release, namespace=namespace)

    def uninstall(self, release: str, *, namespace: str, timeout: str = DEFAULT_TIMEOUT) -> bool:
        """Uninstall; returns False (not an error) when the release is already gone."""
        with self._guarded(release, namespace, "uninstall"):
            return self.uninstall_unguarded(release, namespace=namespace, timeout=timeout)

    def uninstall_unguarded(self, release: str, *, namespace: str, timeout: str = DEFAULT_TIMEOUT) -> bool:
        """:meth:`uninstall` without the guard: for the guard's own recovery."""
        try:
            self._run(["uninstall", release, "--namespace", namespace, "--timeout", timeout], kube=True)
        except ToolError as exc:
            if "not found" in exc.output_tail:
                return False
            raise
        return True

    def test(self, release: str, *, namespace: str, timeout: str = DEFAULT_TIMEOUT) -> TestRun:
        result = self._run(
            ["test", release, "--namespace", namespace, "--logs", "--timeout", timeout], kube=True, check=False
        )
        return TestRun(passed=result.exit_code == 0, output=result.output_tail)

    def release_hooks(self, release: str, *, namespace: str) -> list[dict[str, Any]]:
        """The hooks of the release record, as helm parsed them (name, kind, path, manifest,
        events, weight, delete_policies). Data, never logged: a hook may render a secret."""
        record = self._json(["status", release, "--namespace", namespace, "--output", "json"])
        return list(record.get("hooks") or []) if isinstance(record, dict) else []

    def rollback(self, release: str, revision: int | None = None, *, namespace: str, wait: bool = True,
                 timeout: str = DEFAULT_TIMEOUT) -> None:
        with self._guarded(release, namespace, "rollback"):
            self.rollback_unguarded(release, revision, namespace=namespace, wait=wait, timeout=timeout)

    def rollback_unguarded(self, release: str, revision: int | None = None, *, namespace: str, wait: bool = True,
                           timeout: str = DEFAULT_TIMEOUT) -> None:
        """:meth:`rollback` without the guard: for the guard's own recovery."""
        argv = ["rollback", release]
        if revision is not None:
            argv.append(str(revision))
        argv += ["--namespace", namespace, "--timeout", timeout, "--server-side=true"]
        if wait:
            argv.append("--wait=watcher")
        self._run(argv, kube=True)

    def history(self, release: str, *, namespace: str) -> list[dict[str, Any]]:
        """Every revision, oldest first; NotFoundError when there is no such release."""
        try:
            return self._json(["history", release, "--namespace", namespace, "--output", "json"])
        except ToolError as exc:
            if "not found" in exc.output_tail:
                raise NotFoundError(f"release {release} not found in namespace {namespace}") from None
            raise

    def list(self, *, namespace: str | None = None, selector: str | None = None) -> list[Release]:
        # Every state but superseded/uninstalled: a pending or failed release is still "what is deployed".
        argv = ["list", "--output", "json", "--deployed", "--failed", "--pending"]
        argv += ["--namespace", namespace] if namespace else ["--all-namespaces"]
        if selector:
            argv += ["--selector", selector]
        return [
            Release(
                name=row["name"], namespace=row["namespace"], revision=int(row["revision"]),
                status=row["status"], chart=row["chart"], app_version=row.get("app_version") or None,
            )
            for row in self._json(argv)
        ]

    def status(self, release: str, *, namespace: str) -> Release:
        for row in self.list(namespace=namespace):
            if row.name == release:
                return row
        raise NotFoundError(f"release {release} not found in namespace {namespace}")

    # -- plumbing ----------------------------------------------------------------------------
    def kill(self) -> None:
        self.runner.kill()

    @contextmanager
    def _post_render(self, without_crds: bool, image_digests: ChartDigests | None) -> Iterator[_PostRender]:
        """The ``--post-renderer`` arguments for one command (none when there is nothing to do);
        the digests file lives in the private helm home for the command's life only."""
        if not without_crds and image_digests is None:
            yield _PostRender([])
            return
        argv = ["--post-renderer", self._post_render_plugin()]
        if without_crds:
            argv.append("--post-renderer-args=--without-crds")  # "=": the value starts with "--"
        if image_digests is None:
            yield _PostRender(argv)
            return
        fd, name = tempfile.mkstemp(prefix="image-digests-", suffix=".json", dir=self.config.home)
        pins = Path(name)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(image_digests.to_json(), f)
            yield _PostRender([*argv, "--post-renderer-args=--pin-images", f"--post-renderer-args={pins}"],
                              Path(f"{pins}.error"))
        finally:
            pins.unlink(missing_ok=True)
            Path(f"{pins}.error").unlink(missing_ok=True)

    def _post_render_plugin(self) -> str:
        """The post-renderer plugin, written once into this helm's private plugin directory."""
        plugin = self.config.home / "data" / "plugins" / POST_RENDER_PLUGIN
        if not (plugin / "plugin.yaml").is_file():
            plugin.mkdir(parents=True, exist_ok=True)
            package_root = str(Path(stackyard.__file__).resolve().parent.parent)
            (plugin / "post_render.py").write_text(_POST_RENDER_SCRIPT.format(path=package_root))
            (plugin / "plugin.yaml").write_text(json.dumps({
                "apiVersion": "v1", "type": "postrenderer/v1", "name": POST_RENDER_PLUGIN, "version": "1.0.0",
                "runtime": "subprocess",
                "runtimeConfig": {"platformCommand": [{"command": sys.executable, "args": [str(plugin / "post_render.py")]}]},
            }))
        return POST_RENDER_PLUGIN

    def _values_args(self, values_files: Sequence[str | Path]) -> list[str]:
        return [arg for path in values_files for arg in ("--values", str(path))]

    def _http_flags(self, login: bool = False) -> list[str]:
        if not self.config.plain_http:
            return []
        return ["--insecure"] if login else ["--plain-http"]

    def _json(self, argv: list[str]) -> Any:
        out = self._run(argv, kube=True, stdout_is_data=True).stdout
        return json.loads(out or "[]")

    def _run(self, argv: list[str], *, kube: bool = False, stdin: bytes | None = None,
             stdout_is_data: bool = False, check: bool = True, pass_fds: tuple[int, ...] = ()) -> ToolResult:
        if kube and self.config.kube_context:
            argv = [*argv, "--kube-context", self.config.kube_context]
        return self.runner.run(
            "helm", [self.config.binary, *argv], env=self.config.env(), stdin=stdin,
            stdout_is_data=stdout_is_data, check=check, pass_fds=pass_fds,
        )
