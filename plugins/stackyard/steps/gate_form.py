"""What the l3_gate trigger form proposes: the published services and versions, read at parse time.

The DAG processor re-parses ``dags/l3_gate.py`` every few seconds, so this must cost next to
nothing and never hang a parse (goal: under ~50 ms more than a parse without it;
``bench/gate_form``):

- no network: the registry's own folder (``dir://``) or the local cache's index of what was
  published or fetched through this installation (``adapters.chart_registry``);
- a cache file (``<STACKYARD_HOME>/cache/gate-form.json``) keyed by the modification times of
  that folder and its per-service folders, which change whenever a version is added;
- a deadline (``timeout``): a slow file system gives a form without proposals, never a slow parse.

The proposals are ``examples`` of free-text fields, not an ``enum``: the REST API and CI may still
ask for anything (validate refuses what is not in the registry, with a clear message).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from stackyard.core.umbrella import UMBRELLA_NAME
from stackyard.core.versions import semver_sort_key
from stackyard.adapters.chart_registry import list_published, published_index_folders

CACHE_NAME = "gate-form.json"


@dataclass(frozen=True)
class FormChoices:
    services: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)  # newest first, across services
    latest: dict[str, str] = field(default_factory=dict)  # service -> its newest version

    def summary(self) -> str:
        if not self.latest:
            return ""
        return "Published (newest of each): " + ", ".join(f"{s} {v}" for s, v in sorted(self.latest.items())) + "."


def gate_form_choices(registry_url: str, cache_dir: Path, state_dir: Path, *, timeout: float = 0.2,
                      limit: int = 50) -> FormChoices:
    """The form's proposals, or none if they cannot be had within ``timeout`` seconds."""
    result: list[FormChoices] = []

    def work() -> None:
        result.append(_choices(registry_url, cache_dir, state_dir, limit))

    worker = threading.Thread(target=work, name="stackyard-gate-form", daemon=True)
    worker.start()
    worker.join(timeout)
    return result[0] if result else FormChoices()


def _choices(registry_url: str, cache_dir: Path, state_dir: Path, limit: int) -> FormChoices:
    folder, layout = published_index_folders(registry_url, cache_dir)
    index = _cached_index(folder, layout, state_dir / CACHE_NAME)
    index.pop(UMBRELLA_NAME, None)  # the L3 umbrella packages share the registry; not a service
    versions = sorted({v for vs in index.values() for v in vs}, key=semver_sort_key, reverse=True)[:limit]
    return FormChoices(sorted(index)[:limit], versions, {s: vs[0] for s, vs in index.items()})


def _mtimes(folder: Path) -> dict[str, int] | None:
    try:
        key = {".": folder.stat().st_mtime_ns}
        for entry in os.scandir(folder):
            if entry.is_dir() and not entry.name.startswith("."):
                key[entry.name] = entry.stat().st_mtime_ns
    except OSError:
        return None
    return key


def _cached_index(folder: Path, layout: str, cache_file: Path) -> dict[str, list[str]]:
    key = _mtimes(folder)
    if key is None:  # no registry folder (yet): nothing published
        return {}
    source = f"{layout}:{folder}"
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("source") == source and cached.get("mtimes") == key:
            return cached["index"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    index = list_published(folder, layout)
    try:  # best effort: a read-only state folder only costs the re-scan
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"source": source, "mtimes": key, "index": index}))
        tmp.replace(cache_file)
    except OSError:
        pass
    return index
