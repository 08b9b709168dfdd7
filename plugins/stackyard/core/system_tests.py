"""The rules of running a release's test hooks in parallel, as helm would judge them.

Helm (3 and 4) runs a release's ``helm.sh/hook: test`` resources one after another, sorted by
``helm.sh/hook-weight`` then name, and stops at the first failure. The gate runs them
concurrently instead, keeping what helm's order means and what helm would conclude:

- **Weights are barriers**: the tests of one weight start only when every test of the lower
  weights has finished (and been deleted, where its policy says so).
- **Within a weight**, the changed service's tests start first (its failure is known early),
  then helm's own order (name).
- **Delete policies** are helm's: ``before-hook-creation`` (also the default when a hook names
  none) removes a leftover object of the same name before creating it; ``hook-succeeded`` and
  ``hook-failed`` remove it after the matching outcome. Others stay, so ``helm test`` can later
  replace them like after a run of its own.
- **Every test runs to its end**, so the report names every failure; the verdict is helm's: the
  run passes only if every test hook succeeded (an empty set passes, as with ``helm test``).

Pure: hooks come in as helm's release record describes them (``helm status -o json``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml

from stackyard.exceptions import InputError, StackyardError

TEST_EVENT = "test"
#: Kinds helm waits on until they complete; every other kind is done once created.
WAITED_KINDS = ("Pod", "Job")
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class DeletePolicy(StrEnum):
    BEFORE_HOOK_CREATION = "before-hook-creation"
    HOOK_SUCCEEDED = "hook-succeeded"
    HOOK_FAILED = "hook-failed"


class Phase(StrEnum):
    """A test's outcome; the names are helm's (``helm status`` shows the same words)."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


#: What the cluster says of a test object that has not finished (see :class:`Observed`).
ABSENT = "absent"
RUNNING = "running"


class HookRejectedError(StackyardError):
    """The API server refused to create a test object (it exists already, or it is invalid)."""


@dataclass(frozen=True)
class Observed:
    """What the cluster says of one test object: absent, running, or finished with a phase."""

    state: str | Phase
    message: str = ""


@dataclass(frozen=True)
class TestHook:
    """One test resource of a release: a Pod, a Job, or any other kind helm only creates."""

    __test__ = False  # not a pytest class

    name: str
    kind: str
    weight: int
    delete_policies: frozenset[DeletePolicy]
    service: str  # the umbrella's subchart it comes from ("" for the umbrella's own templates)
    path: str
    manifest: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        """Unique within a release: helm refuses two hooks of one kind and name."""
        return (self.kind, self.name)

    @property
    def api_version(self) -> str:
        return str(self.manifest.get("apiVersion", ""))

    @property
    def namespace(self) -> str | None:
        return (self.manifest.get("metadata") or {}).get("namespace")

    @property
    def waited(self) -> bool:
        return self.kind in WAITED_KINDS

    def deleted_before_creation(self) -> bool:
        return DeletePolicy.BEFORE_HOOK_CREATION in self.delete_policies

    def deleted_after(self, phase: Phase) -> bool:
        wanted = DeletePolicy.HOOK_SUCCEEDED if phase is Phase.SUCCEEDED else DeletePolicy.HOOK_FAILED
        return wanted in self.delete_policies


@dataclass(frozen=True)
class TestResult:
    __test__ = False

    name: str
    service: str
    kind: str
    weight: int
    phase: Phase
    seconds: float
    reason: str = ""  # why it failed, when no pod said so (timed out, could not be created)
    logs: str = ""  # redacted tail of the pod's logs

    def to_dict(self) -> dict[str, Any]:
        """The record kept with a gate run: a passing test's logs stay in the task log only, so the
        record stays small however many services L3 has."""
        return {"name": self.name, "service": self.service, "kind": self.kind, "weight": self.weight,
                "phase": self.phase.value, "seconds": round(self.seconds, 2), "reason": self.reason,
                "logs": self.logs if self.phase is not Phase.SUCCEEDED else ""}


@dataclass(frozen=True)
class Verdict:
    passed: bool
    failed: tuple[str, ...]  # test names, in the order they ran
    missing: tuple[str, ...]  # planned tests without a result (counted as failures)


def service_of(path: str) -> str:
    """The umbrella's subchart a template path belongs to: ``l3/charts/orders/templates/t.yaml``
    → ``orders`` (nested subcharts count as their top-level service); the umbrella's own → ``""``."""
    parts = path.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "charts" else ""


def test_hooks(release_hooks: Iterable[Mapping[str, Any]]) -> list[TestHook]:
    """The test hooks among a release record's hooks (``helm status -o json`` → ``hooks``).

    Helm has already parsed the annotations (events, weight, delete policies with its default
    filled in); the manifest is parsed here because it is what gets created.
    """
    hooks = []
    for raw in release_hooks:
        if TEST_EVENT not in (raw.get("events") or []):
            continue
        name, kind = raw.get("name"), raw.get("kind")
        if not name or not kind:
            raise InputError(f"release hook at {raw.get('path', '?')}: missing name or kind")
        try:
            manifest = yaml.safe_load(raw.get("manifest") or "")
        except yaml.YAMLError as exc:
            raise InputError(f"test hook {name}: its manifest is not valid YAML: {exc}") from None
        if not isinstance(manifest, Mapping) or not manifest.get("apiVersion"):
            raise InputError(f"test hook {name}: its manifest is not a Kubernetes object")
        policies = raw.get("delete_policies") or [DeletePolicy.BEFORE_HOOK_CREATION.value]
        try:
            parsed = frozenset(DeletePolicy(p) for p in policies)
        except ValueError:
            raise InputError(f"test hook {name}: unknown delete policy in {list(policies)}") from None
        hooks.append(TestHook(
            name=name, kind=kind, weight=int(raw.get("weight") or 0), delete_policies=parsed,
            service=service_of(str(raw.get("path", ""))), path=str(raw.get("path", "")), manifest=manifest,
        ))
    return hooks


def plan(hooks: Sequence[TestHook], changed_service: str | None = None) -> list[tuple[TestHook, ...]]:
    """Weight groups, lowest first; within one, ``changed_service``'s tests, then by name (helm's order)."""
    weights = sorted({hook.weight for hook in hooks})
    return [
        tuple(sorted((h for h in hooks if h.weight == weight),
                     key=lambda h: (h.service != changed_service or not changed_service, h.name)))
        for weight in weights
    ]


def verdict(planned: Sequence[TestHook], results: Iterable[TestResult]) -> Verdict:
    """helm's verdict: passed only if every planned test succeeded."""
    by_name = {result.name: result for result in results}
    missing = tuple(hook.name for hook in planned if hook.name not in by_name)
    failed = tuple(hook.name for hook in planned
                   if hook.name in by_name and by_name[hook.name].phase is not Phase.SUCCEEDED)
    return Verdict(passed=not failed and not missing, failed=failed, missing=missing)


def report(release: str, namespace: str, results: Sequence[TestResult]) -> str:
    """Text in the shape of ``helm test --logs`` (``TEST SUITE:``/``Phase:`` blocks, then logs —
    of the failed tests only: the passing ones' are in the task log)."""
    lines = [f"NAME: {release}", f"NAMESPACE: {namespace}"]
    for result in results:
        lines += [f"TEST SUITE:     {result.name}", f"Service:        {result.service or '(umbrella)'}",
                  f"Duration:       {result.seconds:.1f}s"]
        if result.reason:
            lines.append(f"Reason:         {result.reason}")
        lines.append(f"Phase:          {result.phase.value}")
    for result in results:
        if result.logs and result.phase is not Phase.SUCCEEDED:
            lines += ["", f"POD LOGS: {result.name}", result.logs.rstrip("\n")]
    return "\n".join(lines) + "\n"


def go_duration_seconds(text: str) -> float:
    """A Go duration as helm takes it (``10m0s``, ``90s``, ``1h``) in seconds."""
    value = text.strip()
    if not value or _GO_DURATION.sub("", value):
        raise InputError(f"timeout {text!r} is not a duration like 10m0s, 90s or 1h")
    return sum(float(n) * _UNITS[unit] for n, unit in _GO_DURATION.findall(value))


def parse_parallelism(raw: str | None, default: int, *, source: str, what: str = "tests to run at once") -> int:
    """A positive whole number of concurrent tests (or ``what``); ``source`` names where it came from."""
    if raw is None or not str(raw).strip():
        return default
    text = str(raw).strip()
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"{source}: {raw!r} is not a positive whole number of {what}")
    return int(text)


def pod_test(name: str, *, image: str, command: Sequence[str] = (), args: Sequence[str] = (),
             env: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
             annotations: Mapping[str, str] | None = None, deadline_seconds: int | None = None,
             service: str = "") -> TestHook:
    """A test Pod that is not a chart's hook (the gate's own suite), with the policies of a pod
    that must never linger: replaced if left over, deleted after either outcome."""
    container: dict[str, Any] = {"name": "base", "image": image}
    if command:
        container["command"] = list(command)
    if args:
        container["args"] = list(args)
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if deadline_seconds:
        spec["activeDeadlineSeconds"] = int(deadline_seconds)
    metadata: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return TestHook(name=name, kind="Pod", weight=0, delete_policies=frozenset(DeletePolicy), service=service,
                    path="", manifest={"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
