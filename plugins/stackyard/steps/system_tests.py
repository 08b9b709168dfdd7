"""Run a release's test hooks concurrently: at most ``parallelism`` at once, weight group by weight
group, each to its end (rules in :mod:`stackyard.core.system_tests`).

One loop drives every test through ``queued → deleting (before-hook-creation) → running →
finished``; each turn asks the cluster once per kind for the state of everything in flight, so the
API server sees the same few requests per poll however many tests run. ``stop`` ends a run early
(:class:`Cancelled`) when its result can no longer matter, like a gate candidate that must be
tested again anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from stackyard.core.secrets import SECRETS
from stackyard.core.system_tests import ABSENT, HookRejectedError, Observed, Phase, TestHook, TestResult

DEFAULT_POLL_SECONDS = 0.5


class Cancelled(Exception):
    """The run was stopped before every test ended (``stop`` gave the reason): no verdict. Tests
    still in flight are left as they are (the stack they run in is torn down)."""

    def __init__(self, reason: str, results: Sequence[TestResult]) -> None:
        super().__init__(f"tests stopped: {reason}")
        self.reason, self.results = reason, list(results)


class TestCluster(Protocol):
    """What the runner needs from the cluster (:class:`stackyard.adapters.test_hooks.KubeTestHooks`)."""

    def create(self, hook: TestHook) -> None: ...  # raises HookRejectedError on a 4xx answer
    def delete(self, hook: TestHook) -> None: ...  # absent is fine
    def observe(self, hooks: Sequence[TestHook]) -> Mapping[tuple[str, str], Observed]: ...  # by hook.key
    def logs(self, hook: TestHook) -> str: ...


@dataclass
class _Flight:
    hook: TestHook
    started: float
    state: str  # "deleting" | "running"


def run_tests(
    groups: Sequence[Sequence[TestHook]],
    cluster: TestCluster,
    *,
    parallelism: int,
    timeout_seconds: float,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    on_result: Callable[[TestResult], None] = lambda result: None,
    redact: Callable[[str], str] = SECRETS.redact,
    log_lines: int = 40,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], str | None] = lambda: None,
) -> list[TestResult]:
    """Every test of every group, in the order they finished; ``on_result`` sees each as it ends.

    ``timeout_seconds`` bounds each test from its creation (helm's ``--timeout`` is per hook);
    a test that times out is a failure and gets its ``hook-failed`` policy. ``stop`` is asked
    once per poll; a reason it returns raises :class:`Cancelled`.
    """
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    results: list[TestResult] = []
    deleted_after: list[TestHook] = []

    def finish(flight: _Flight, phase: Phase, reason: str = "") -> None:
        logs = ""
        if flight.hook.waited and flight.state == "running":
            text = redact(cluster.logs(flight.hook))
            logs = "\n".join(text.splitlines()[-log_lines:])
        if flight.state == "running" and flight.hook.deleted_after(phase):
            cluster.delete(flight.hook)
            deleted_after.append(flight.hook)
        result = TestResult(flight.hook.name, flight.hook.service, flight.hook.kind, flight.hook.weight, phase,
                            clock() - flight.started, reason, logs)
        results.append(result)
        on_result(result)

    def create(flight: _Flight) -> bool:
        """Create the object; False (and a failed result) when the API server refuses it."""
        try:
            cluster.create(flight.hook)
        except HookRejectedError as exc:
            finish(flight, Phase.FAILED, f"could not be created: {exc}")
            return False
        flight.state, flight.started = "running", clock()
        if not flight.hook.waited:  # like helm: a ConfigMap, a ServiceAccount... is done once created
            finish(flight, Phase.SUCCEEDED)
            return False
        return True

    for group in groups:
        queue = list(group)
        flying: list[_Flight] = []
        while queue or flying:
            while queue and len(flying) < parallelism:
                flight = _Flight(queue.pop(0), clock(), "running")
                if flight.hook.deleted_before_creation():
                    cluster.delete(flight.hook)
                    flight.state = "deleting"
                    flying.append(flight)
                elif create(flight):
                    flying.append(flight)
            if not flying:
                continue
            sleep(poll_seconds)
            if reason := stop():
                raise Cancelled(reason, results)
            seen = cluster.observe([flight.hook for flight in flying])
            for flight in list(flying):
                now = clock()
                observed = seen.get(flight.hook.key, Observed(ABSENT))
                if flight.state == "deleting":
                    if observed.state == ABSENT:
                        if not create(flight):
                            flying.remove(flight)
                    elif now - flight.started > timeout_seconds:
                        flying.remove(flight)
                        finish(flight, Phase.FAILED, f"a leftover {flight.hook.kind} of that name was not "
                                                     f"deleted within {timeout_seconds:.0f}s")
                elif isinstance(observed.state, Phase):
                    flying.remove(flight)
                    finish(flight, observed.state, observed.message if observed.state is Phase.FAILED else "")
                elif observed.state == ABSENT and now - flight.started > poll_seconds * 4 + 5:
                    flying.remove(flight)
                    finish(flight, Phase.FAILED, f"the {flight.hook.kind} disappeared before it finished")
                elif now - flight.started > timeout_seconds:
                    flying.remove(flight)
                    finish(flight, Phase.FAILED, f"timed out after {timeout_seconds:.0f}s")
    _wait_gone(cluster, deleted_after, timeout_seconds, poll_seconds, clock, sleep)
    return results


def _wait_gone(cluster: TestCluster, hooks: list[TestHook], timeout: float, poll: float,
               clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    """Objects deleted by policy are gone before the run ends, so a later ``helm test`` can
    create them again even without ``before-hook-creation``."""
    deadline = clock() + timeout
    while hooks and clock() < deadline:
        seen = cluster.observe(hooks)
        hooks = [hook for hook in hooks if seen.get(hook.key, Observed(ABSENT)).state != ABSENT]
        if hooks:
            sleep(poll)
