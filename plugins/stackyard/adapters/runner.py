"""The one way stackyard runs an external CLI.

An argv list (never a shell), its own process group (so a killed task takes helm's children with
it), stderr (and stdout unless it is data) logged line by line as it comes, a bounded tail kept
for the error message, and every line redacted before it is logged or kept.

On Linux the tool also dies with the task (``PR_SET_PDEATHSIG``): a SIGKILLed task must not leave
a helm running on in its own session, holding a release (and the task's in-memory values) with
nobody renewing its lease.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from stackyard.core.secrets import SECRETS
from stackyard.exceptions import ToolError

TAIL_LINES = 40
_KILL_GRACE_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


def _load_prctl():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):  # not Linux: the process group kill on on_kill remains
        return None


_PRCTL = _load_prctl()  # resolved here: the child (between fork and exec) only calls it


def process_alive(pid: int) -> bool:
    """Does process ``pid`` exist (on this host)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    if _PRCTL is None:
        return None

    def preexec() -> None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class ToolResult:
    exit_code: int
    stdout: str
    output_tail: str
    seconds: float


class ToolRunner:
    """Runs tools for one owner (a hook); :meth:`kill` stops whatever it is running."""

    def __init__(
        self,
        log: logging.Logger | None = None,
        redact: Callable[[str], str] = SECRETS.redact,
    ) -> None:
        self.log = log or logging.getLogger("stackyard.tools")
        self.redact = redact
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def run(
        self,
        tool: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        stdin: bytes | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdout_is_data: bool = False,
        check: bool = True,
        pass_fds: Sequence[int] = (),
    ) -> ToolResult:
        """Run ``argv``; ``env`` is the complete environment (only its keys are logged).

        With ``stdout_is_data`` stdout is returned and never logged (rendered manifests,
        decrypted secrets); otherwise it is logged and kept in the tail like stderr.
        ``pass_fds`` are inherited by the tool under the same numbers (in-memory values files).
        """
        self.log.info("running %s (env: %s)", self.redact(" ".join(argv)), ", ".join(sorted(env)) or "-")
        started = time.monotonic()
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        data_chunks: list[bytes] = []
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
            preexec_fn=_die_with_parent(os.getpid()),
        )
        with self._lock:
            self._procs.add(proc)
        readers = [threading.Thread(target=self._log_lines, args=(proc.stderr, tail), daemon=True)]
        if stdout_is_data:
            readers.append(threading.Thread(target=lambda: data_chunks.append(proc.stdout.read()), daemon=True))
        else:
            readers.append(threading.Thread(target=self._log_lines, args=(proc.stdout, tail), daemon=True))
        for reader in readers:
            reader.start()
        try:
            if stdin is not None:
                try:
                    proc.stdin.write(stdin)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            try:
                exit_code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                proc.wait()
                for reader in readers:
                    reader.join()
                raise ToolError(tool, -1, "\n".join(tail), summary=f"{tool} timed out after {timeout:.0f}s") from None
            for reader in readers:
                reader.join()
        finally:
            with self._lock:
                self._procs.discard(proc)
        result = ToolResult(
            exit_code=exit_code,
            stdout=b"".join(data_chunks).decode("utf-8", "replace"),
            output_tail="\n".join(tail),
            seconds=time.monotonic() - started,
        )
        if check and exit_code != 0:
            raise ToolError(tool, exit_code, result.output_tail)
        return result

    def kill(self) -> None:
        """Stop every process this runner started (Airflow's ``on_kill``)."""
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            self._kill(proc)

    def _log_lines(self, stream, tail: collections.deque[str]) -> None:
        for raw in iter(stream.readline, b""):
            line = self.redact(raw.decode("utf-8", "replace").rstrip("\n"))
            tail.append(line)
            self.log.info("%s", line)
        stream.close()

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        try:
            pgid = os.getpgid(proc.pid)
            os.killpg(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=_KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
