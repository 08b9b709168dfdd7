"""Rollout steps over the stores, helm and the network, as plain functions (the operators in
:mod:`stackyard.airflow.operators.rollouts` wire them to tasks; the decisions are in
:mod:`stackyard.core.rollout`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stackyard.core.charts import load_chart
from stackyard.core.records import RolloutRecord, rollouts_stream
from stackyard.core.rollout import Deployed, PlanStep, Target, qualified_targets, release_service
from stackyard.core.stack_registry import (
    HealthySource, Registry, RegistryDocument, Stack, load_registry, parse_document,
    registry_from_document,
)
from stackyard.exceptions import InputError, NotFoundError
from stackyard.adapters.manifest_store import ManifestStore
from stackyard.adapters.record_store import RecordStore
from stackyard.adapters.helm import Helm
from stackyard.adapters.chart_registry import ChartRegistry

#: Records read to decide what qualifies for production: enough for weeks of hourly stage rollouts.
QUALITY_RECORDS = 2000


#: Bumped when the loader's output changes shape (the cache below holds loader output, not verdicts).
_DOCUMENT_FORMAT = 2


def load_stacks(path: Path, cache_dir: Path | None = None) -> Registry:
    """The registry at ``path``, validated in full.

    With ``cache_dir``, the *parsed YAML* (plain data plus the repeated keys found) is kept as
    JSON named by the sha256 of the file's bytes: re-reading an unchanged registry skips YAML,
    most of a 200-stack parse. Validation always runs on it, so a cached file can never carry a
    verdict made by other code. An unwritable cache is simply not used.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"stack registry {path} does not exist (set STACKYARD_STACKS or create it)") from None
    with _collector_paused():
        if cache_dir is None:
            return load_registry(data.decode(), origin=str(path))
        cached = cache_dir / f"document-{_DOCUMENT_FORMAT}-{hashlib.sha256(data).hexdigest()}.json"
        try:
            document = RegistryDocument.from_json(json.loads(cached.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            document = parse_document(data.decode(), origin=str(path))
            _write_cache(cached, document.to_json())
        return registry_from_document(document, origin=str(path))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading a large registry allocates ~10^5 objects and no reference cycle; meanwhile the
    cyclic collector would run full passes over every object of the process (Airflow's too),
    three quarters of the read (bench/dag_parse). Collection resumes right after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write_cache(path: Path, document: object) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document))  # the loader keeps dates as text: JSON is lossless
        os.replace(temporary, path)
    except (OSError, TypeError, ValueError):
        pass


def load_stack(path: Path, name: str) -> Stack:
    """One valid stack, or InputError with the entry's own error."""
    registry = load_stacks(path)
    if name in registry.errors:
        raise InputError(f"{path}: {registry.errors[name]}")
    if name not in registry.stacks:
        raise NotFoundError(f"stack {name} is not in the registry {path}")
    return registry.stacks[name]


def deployed_on(helm: Helm, namespace: str) -> dict[str, Deployed]:
    """The stack's helm releases by what they run (core.rollout.release_service), whatever their state."""
    deployed = {}
    for release in helm.list(namespace=namespace):
        key = release_service(namespace, release.name, release.chart_name)
        deployed[key] = Deployed(key, release.chart_name, release.chart_version, release.revision, release.status,
                                 release.name)
    return deployed


def deployed_revision(helm: Helm, release: str, namespace: str) -> int | None:
    """The revision helm currently marks ``deployed`` (what a rollback returns to), or None."""
    try:
        history = helm.history(release, namespace=namespace)
    except Exception as exc:  # helm says "release: not found" for a release never installed
        if "not found" in str(exc):
            return None
        raise
    deployed = [int(row["revision"]) for row in history if row.get("status") == "deployed"]
    return max(deployed) if deployed else None


def latest_revision(helm: Helm, release: str, namespace: str) -> int | None:
    try:
        history = helm.history(release, namespace=namespace)
    except Exception as exc:
        if "not found" in str(exc):
            return None
        raise
    return max((int(row["revision"]) for row in history), default=None)


def targets_for(stack: Stack, *, manifests: ManifestStore, records: RecordStore,
                now: datetime) -> tuple[dict[str, Target], dict[str, str]]:
    """What the stack's source says each service should run, and services held back (why)."""
    services = [entry.name for entry in stack.services] if stack.services is not None else None
    if isinstance(stack.source, HealthySource):
        stored = records.read(rollouts_stream(stack.source.stack), RolloutRecord, limit=QUALITY_RECORDS)
        return qualified_targets([item.record for item in stored], stack.source, now=now, services=services)
    latest = manifests.latest()
    if latest is None:
        raise NotFoundError("there is no L3 manifest yet: seed version 1 first (stackyard manifest seed)")
    return {name: Target(pin.chart_version, latest.version) for name, pin in latest.services.items()}, {}


def check_services_known(stack: Stack, targets: dict[str, Target], held: dict[str, str], *, origin: str,
                         source_services: set[str] | None = None) -> None:
    """Refuse a listed service its source does not know (a typo would otherwise be skipped
    silently, run after run). Checked when the plan runs: the DAG processor cannot read L3."""
    if stack.services is None:
        return
    known = set(targets) | set(held) if source_services is None else source_services
    for index, entry in enumerate(stack.services):
        if entry.name not in known:
            raise InputError(f"{origin}: stack {stack.name}: services[{index}]: unknown service {entry.name!r} "
                             f"({stack.source.describe()} has {', '.join(sorted(known)) or 'no services'})")


def check_profile_in_charts(stack: Stack, steps: list[PlanStep], registry: ChartRegistry, *, origin: str) -> None:
    """Refuse the run before anything changes if a chart it would deploy lacks the stack's
    profile (the deploy would fail halfway through the stack otherwise)."""
    for step in steps:
        chart = load_chart(registry.fetch(step.service, step.to_version))
        if stack.profile not in chart.profiles:
            raise InputError(
                f"{origin}: stack {stack.name}: profile: chart {chart.name} {chart.version} has no profile "
                f"{stack.profile!r} (it has {', '.join(sorted(chart.profiles)) or 'none'})")


def registry_roles(path: Path | None = None) -> list[str]:
    """Every role the registry's ``triggerers.roles`` name. Under the FAB auth manager each must
    exist before the DAGs are parsed (the compose init creates them from this list)."""
    from stackyard.settings import Settings

    registry = load_stacks(path or Settings.from_env().stacks_file)
    return sorted({role for stack in registry.stacks.values() for role in stack.triggerers.roles})


@dataclass(frozen=True)
class StackDagSpec:
    """What a rollout DAG is built from at parse time: no service lists, no windows."""

    name: str
    dag_id: str
    owner: str
    kind: str
    schedule: str | None
    description: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class ParseView:
    """The registry as DAG files need it: valid stacks' DAG specs, invalid entries' errors."""

    stacks: dict[str, StackDagSpec]
    errors: dict[str, str]

    def error_report(self, origin: str) -> str:
        return Registry(stacks={}, errors=self.errors).error_report(origin)


def registry_for_parsing() -> tuple[Path, ParseView]:
    """The registry as the DAG files read it at parse time: every entry validated, as tasks do.

    Only the parsed YAML is cached (by the file's content, :func:`load_stacks`); the verdict is
    made afresh at every parse by the code that is running. Tasks load and validate the entry
    they run (``load_stack``).
    """
    from stackyard.settings import Settings

    settings = Settings.from_env()
    path = settings.stacks_file
    registry = load_stacks(path, settings.home / "cache" / "stack-registry")
    specs = {
        name: StackDagSpec(
            name=name, dag_id=stack.dag_id, owner=stack.owner, kind=stack.kind.value, schedule=stack.schedule,
            description=stack.description or f"Service rollouts to {name} ({stack.source.describe()})",
            roles=tuple(stack.triggerers.roles),
        )
        for name, stack in registry.stacks.items()
    }
    return path, ParseView(specs, dict(registry.errors))
