"""What a run did, in one line: the DAG run note Airflow's run list shows.

Pure. The tasks compose their note with these functions and hand it to
:mod:`stackyard.airflow.run_notes`, which sets it on the run when the run ends (Airflow keeps a
run note of at most :data:`MAX_NOTE` characters). Only names, versions and outcomes: never
values or tool output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_NOTE = 1000  # DagRunNote.content's limit


def bounded(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_NOTE else text[: MAX_NOTE - 1] + "…"


def rollout_note(stack: str, outcomes: Iterable[Mapping[str, Any]], *, not_attempted: Iterable[str] = (),
                 decision: str | None = None) -> str:
    """``orders 1.1.0 → qa1: succeeded; catalog 1.2.0 → qa1: rolled_back (not ready)``; a run that
    changed nothing says why (``qa1: nothing changed: outside the deployment window``)."""
    parts = []
    for outcome in outcomes:
        reason = f" ({outcome['reason']})" if outcome.get("reason") and outcome.get("status") != "succeeded" else ""
        parts.append(f"{outcome.get('service')} {outcome.get('to_version') or '?'} → {stack}: {outcome.get('status')}{reason}")
    skipped = list(not_attempted)
    if skipped:
        parts.append(f"not attempted: {', '.join(skipped)}")
    if not parts:
        return bounded(f"{stack}: nothing changed{': ' + decision if decision else ''}")
    return bounded("; ".join(parts))


def stack_note(action: str, stack: str, *, manifest_version: int | None = None,
               overrides: Mapping[str, Mapping[str, str | None]] | None = None, ttl: str | None = None,
               releases: Iterable[str] | None = None) -> str:
    """``alice-dev created: L3 v2 + orders 1.1.0 → 1.0.0``, ``alice-dev touched: TTL 7d``,
    ``alice-dev destroyed (releases: l3)``."""
    detail = ""
    if manifest_version is not None:
        detail = f": L3 v{manifest_version}"
        if overrides:
            detail += " + " + ", ".join(f"{s} {c.get('from') or '(new)'} → {c.get('to')}" for s, c in overrides.items())
    elif ttl:
        detail = f": TTL {ttl}"
    if releases is not None:
        detail += f" (releases: {', '.join(releases) or 'none'})"
    return bounded(f"{stack} {action}{detail}")


def gate_note(service: str | None, version: str | None, outcome: str, *, reason: str | None = None,
              l3_version: int | None = None) -> str:
    """``orders 1.1.0 → promoted, L3 v2``; ``catalog 1.1.0 → rejected: system tests failed: …``;
    ``orders 1.1.0 → error: deploy: registry unreachable`` — the outcome first word after the arrow,
    so a rejection and an infrastructure failure read apart in the run list."""
    change = f"{service or '?'} {version or '?'}"
    if outcome == "promoted":
        return bounded(f"{change} → promoted, L3 v{l3_version}")
    return bounded(f"{change} → {outcome}{': ' + reason if reason else ''}")


def failed_note(prefix: str | None, failed_tasks: Iterable[str]) -> str:
    """A failed run with no note of its own: which tasks failed (after what it was about, if known)."""
    tasks = ", ".join(sorted(failed_tasks)) or "the run"
    return bounded(f"{prefix + ': ' if prefix else ''}failed at {tasks}")
