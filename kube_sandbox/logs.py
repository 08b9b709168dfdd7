"""Deterministic container logs for simulated pods (served by ``pods/<name>/log``)."""

from __future__ import annotations

import shlex

from .rules import LOGS, Rules, container_argv


def container_log(pod: dict, container: str | None, rules: Rules | None = None) -> list[str]:
    """A header, the command, what its ``echo`` commands print (or a rule's log text), and the exit
    code once the container has terminated."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    c = next((x for x in containers if x.get("name") == container), containers[0] if containers else {})
    custom = (meta.get("annotations") or {}).get(LOGS)
    if custom is not None:
        return custom.splitlines()
    outcome = (rules or Rules()).resolve(pod, c)
    if outcome.logs is not None:
        return outcome.logs.splitlines()
    argv = container_argv(c) or [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    ref = f"{meta.get('namespace')}/{meta.get('name')}"
    lines = [f"kube-sandbox: container {c.get('name')} of pod {ref} (image {c.get('image')})"]
    if argv:
        lines.append("kube-sandbox: command: " + " ".join(shlex.quote(a) for a in argv))
    lines += list(outcome.echoes)
    cs = next((s for s in (pod.get("status") or {}).get("containerStatuses") or () if s.get("name") == c.get("name")), {})
    term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
    if term:
        code = term.get("exitCode", 0)
        lines.append(f"kube-sandbox: simulated {'success' if code == 0 else 'failure'}, exit code {code} "
                     f"(outcome: {outcome.rule})")
    return lines
