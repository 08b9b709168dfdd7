"""Deterministic container logs for simulated pods (served by ``pods/<name>/log``)."""

from __future__ import annotations

import shlex

from .controllers import LOGS, wants_failure


def _echoes(argv: list[str]) -> list[str]:
    """What ``echo`` commands in an argv (or an ``sh -c`` script) would print."""
    if not argv:
        return []
    if argv[0] == "echo" or argv[0].endswith("/echo"):
        return [" ".join(argv[1:])]
    if len(argv) >= 3 and argv[0].split("/")[-1] in ("sh", "bash", "ash") and argv[1] in ("-c", "-ec", "-ce"):
        out = []
        for part in argv[2].replace("&&", ";").replace("\n", ";").split(";"):
            try:
                words = shlex.split(part.strip())
            except ValueError:
                continue
            if words and words[0] == "echo":
                out.append(" ".join(w for w in words[1:] if w not in ("-n", "-e")))
        return out
    return []


def container_log(pod: dict, container: str | None) -> list[str]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    c = next((x for x in containers if x.get("name") == container), containers[0] if containers else {})
    custom = (meta.get("annotations") or {}).get(LOGS)
    if custom is not None:
        return custom.splitlines()
    argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    ref = f"{meta.get('namespace')}/{meta.get('name')}"
    lines = [f"kube-sandbox: container {c.get('name')} of pod {ref} (image {c.get('image')})"]
    if argv:
        lines.append("kube-sandbox: command: " + " ".join(shlex.quote(a) for a in argv))
    lines += _echoes(argv)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed") or spec.get("restartPolicy", "Always") != "Always":
        fail = wants_failure(pod)
        lines.append(f"kube-sandbox: simulated {'failure' if fail else 'success'}, exit code {1 if fail else 0}")
    return lines
