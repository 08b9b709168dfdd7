"""Outcome rules: what a simulated container does, decided by data instead of code (kwok's Stages).

Every container of every pod gets an ``Outcome`` from, in order:

1. the user's rules (``--rules FILE``, ``Sandbox(rules=...)``, ``sb.rules.add(...)``,
   ``POST /sandbox/v1/rules``), first match wins;
2. ``BUILTIN_RULES``: the legacy annotation ``sandbox.stackyard.io/outcome: fail``;
3. the container's command, when it can be decided without running anything (``decide``);
4. ``DEFAULT``: the container starts, becomes ready and runs until deleted (or, for a pod that
   does not restart, exits 0 after ``ready_delay``).

A rule is ``{"name": ..., "match": {...}, "result": {...}}`` (YAML or JSON):

match (all given keys must match; globs use ``fnmatch``, a value ``/.../`` is a regex):
  ``namespace``, ``name`` (pod name), ``container``, ``image``, ``command`` (the argv joined with
  spaces), ``labels`` / ``annotations`` (``{key: glob}``), ``owner`` (owner kind: Job, ReplicaSet...)
result:
  ``exitCode`` (int; the container terminates with it), ``duration`` (seconds it runs before
  exiting), ``delay`` (seconds before it starts), ``ready`` (false: runs but never ready),
  ``crashLoop`` (true: exits 1 at once, over and over), ``imagePull`` (``ErrImagePull``: never
  starts, waits in ErrImagePull/ImagePullBackOff), ``logs`` (text replacing the synthetic log),
  ``progressDeadlineExceeded`` (true: a Deployment of such pods reports it at once instead of
  after ``progressDeadlineSeconds``, so ``helm --wait`` fails fast).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

OUTCOME = "sandbox.stackyard.io/outcome"  # legacy: the chart itself asks for failure
LOGS = "sandbox.stackyard.io/logs"  # legacy: the chart itself sets the log text
SHELLS = ("sh", "bash", "ash", "dash", "zsh", "busybox")
MATCH_KEYS = ("namespace", "name", "container", "image", "command", "labels", "annotations", "owner")
RESULT_KEYS = ("exitCode", "duration", "delay", "ready", "crashLoop", "imagePull", "logs",
               "progressDeadlineExceeded")


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None = None  # None: runs until deleted
    duration: float | None = None  # seconds running before exit; None: ready_delay
    delay: float | None = None  # seconds before start; None: ready_delay
    ready: bool = True
    crash_loop: bool = False
    image_pull: str | None = None  # "ErrImagePull"
    logs: str | None = None
    echoes: tuple[str, ...] = ()
    fast_deadline: bool = False
    rule: str = "default"

    def finite(self, restart_policy: str) -> "Outcome":
        """A container whose pod does not restart terminates: undecided ones exit 0 (the default)."""
        if self.exit_code is None and restart_policy != "Always" and not self.image_pull:
            return replace(self, exit_code=0)
        return self


DEFAULT = Outcome()
BUILTIN_RULES: tuple[dict, ...] = (
    {"name": "legacy-outcome-annotation", "match": {"annotations": {OUTCOME: "fail"}},
     "result": {"exitCode": 1, "progressDeadlineExceeded": True}},
)


# ----------------------------------------------------------------------------- commands
def _simple(words: list[str]) -> tuple[int, float, list[str]] | None:
    """(exit code, seconds, printed lines) of one simple command, or None if undecidable."""
    if not words:
        return 0, 0.0, []
    if any(ch in w for w in words for ch in "$`<>*?"):
        return None  # expansions and redirections: not decided
    cmd, args = words[0].rsplit("/", 1)[-1], words[1:]
    if cmd in ("true", ":"):
        return 0, 0.0, []
    if cmd == "false":
        return 1, 0.0, []
    if cmd == "exit":
        try:
            return (int(args[0]) if args else 0) % 256, 0.0, []
        except ValueError:
            return None
    if cmd == "echo":
        return 0, 0.0, [" ".join(a for a in args if a not in ("-n", "-e"))]
    if cmd == "sleep" and len(args) == 1:
        try:
            secs = float(args[0].rstrip("s"))
            return (0, secs, []) if secs < float("inf") else None
        except ValueError:
            return None  # sleep infinity: runs until deleted
    return None


def _script(text: str, errexit: bool = False) -> tuple[int, float, list[str]] | None:
    """A shell script made of simple commands joined by ``;``, ``&&`` or newlines (``-e``: stop at
    the first failure)."""
    code, total, out = 0, 0.0, []
    try:
        lexer = shlex.shlex(text.replace("\n", ";"), posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        return None
    parts: list[tuple[str, list[str]]] = []  # (separator before the command, its words)
    before, words = ";", []
    for tok in tokens:
        if tok in (";", "&&"):
            parts.append((before, words))
            before, words = tok, []
        elif set(tok) <= set(";&|"):
            return None  # ||, |, & and friends: not decided
        else:
            words.append(tok)
    parts.append((before, words))
    for before, ws in parts:
        if before == "&&" and code != 0:
            continue
        r = _simple(ws)
        if r is None:
            return None
        code, secs, lines = r
        total += secs
        out += lines
        if ws and ws[0] == "exit" or errexit and code != 0:
            break
    return code, total, out


def decide(argv: list[str]) -> tuple[int, float, list[str]] | None:
    """What a container's argv does, when that is decidable without running it.

    ``true``, ``false``, ``:``, ``exit N``, ``echo ...``, ``sleep N``, and ``sh|bash -c SCRIPT``
    where SCRIPT is such commands joined by ``;``, ``&&`` or newlines.  Anything else: None."""
    if not argv:
        return None
    base = argv[0].rsplit("/", 1)[-1]
    if base in SHELLS:
        rest = argv[1:]
        if base == "busybox" and rest and rest[0] in ("sh", "ash"):
            rest = rest[1:]
        flags = [a for a in rest if a.startswith("-")][:2]
        if rest and any("c" in f for f in flags):
            i = next(i for i, a in enumerate(rest) if a.startswith("-") and "c" in a)
            return _script(rest[i + 1], any("e" in f for f in flags)) if i + 1 < len(rest) else None
        return None
    return _simple([str(a) for a in argv])


def container_argv(c: dict) -> list[str]:
    """The argv a container runs as far as the pod says: command + args; args alone only when they
    start with a program we know (busybox-style images have no entrypoint)."""
    cmd, args = [str(a) for a in c.get("command") or []], [str(a) for a in c.get("args") or []]
    if cmd:
        return cmd + args
    if args and args[0].rsplit("/", 1)[-1] in SHELLS + ("true", "false", "exit", "echo", "sleep"):
        return args
    return []


# ----------------------------------------------------------------------------- rules
def _glob(pattern, value: str) -> bool:
    pattern = str(pattern)
    if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
        return re.fullmatch(pattern[1:-1], value or "", re.S) is not None
    return fnmatch.fnmatchcase(value or "", pattern)


def _map(want: dict, have: dict) -> bool:
    return all(k in have and _glob(v, str(have[k])) for k, v in (want or {}).items())


def validate_rule(rule: dict) -> dict:
    if not isinstance(rule, dict):
        raise ValueError("a rule must be an object with match and result")
    match, result = rule.get("match") or {}, rule.get("result") or {}
    bad = [k for k in match if k not in MATCH_KEYS] + [k for k in result if k not in RESULT_KEYS]
    if bad or not isinstance(match, dict) or not isinstance(result, dict):
        raise ValueError(f"unknown rule keys {bad}; match takes {MATCH_KEYS}, result takes {RESULT_KEYS}")
    if "exitCode" in result and not isinstance(result["exitCode"], int):
        raise ValueError("result.exitCode must be an integer")
    if result.get("imagePull") not in (None, "ErrImagePull", "ImagePullBackOff"):
        raise ValueError("result.imagePull must be ErrImagePull or ImagePullBackOff")
    return {"name": str(rule.get("name") or f"rule-{abs(hash(json.dumps(rule, sort_keys=True))) % 10**6}"),
            "match": match, "result": result}


def matches(rule: dict, pod: dict, c: dict) -> bool:
    m = rule["match"]
    meta = pod.get("metadata") or {}
    checks = {
        "namespace": lambda v: _glob(v, meta.get("namespace", "")),
        "name": lambda v: _glob(v, meta.get("name", "")),
        "container": lambda v: _glob(v, c.get("name", "")),
        "image": lambda v: _glob(v, c.get("image", "")),
        "command": lambda v: _glob(v, " ".join(container_argv(c) or [str(a) for a in c.get("args") or []])),
        "labels": lambda v: _map(v, meta.get("labels") or {}),
        "annotations": lambda v: _map(v, meta.get("annotations") or {}),
        "owner": lambda v: any(_glob(v, r.get("kind", "")) for r in meta.get("ownerReferences") or ()),
    }
    return all(checks[k](v) for k, v in m.items())


def outcome_of(result: dict, name: str) -> Outcome:
    crash = bool(result.get("crashLoop"))
    return Outcome(exit_code=1 if crash else result.get("exitCode"), duration=result.get("duration"),
                   delay=result.get("delay"), ready=bool(result.get("ready", True)), crash_loop=crash,
                   image_pull=result.get("imagePull"), logs=result.get("logs"),
                   fast_deadline=bool(result.get("progressDeadlineExceeded")) or crash, rule=name)


class Rules:
    """The user's outcome rules (thread-safe); ``resolve`` applies them, then the built-ins."""

    def __init__(self, rules=None):
        self._lock = threading.Lock()
        self._rules: list[dict] = []
        self.generation = 0
        if isinstance(rules, (str, Path)):
            self.load(rules)
        elif rules:
            for r in rules:
                self.add(r)

    def load(self, path) -> None:
        doc = yaml.safe_load(Path(path).read_text()) or []
        for r in doc.get("rules", []) if isinstance(doc, dict) else doc:
            self.add(r)

    def add(self, rule: dict | None = None, **kw) -> dict:
        """``add({"match": {...}, "result": {...}})`` or ``add(name=..., match=..., result=...)``."""
        r = validate_rule(rule if rule is not None else kw)
        with self._lock:
            self._rules = [x for x in self._rules if x["name"] != r["name"]] + [r]
            self.generation += 1
        return r

    def remove(self, name: str) -> bool:
        with self._lock:
            n = len(self._rules)
            self._rules = [x for x in self._rules if x["name"] != name]
            self.generation += 1
            return len(self._rules) != n

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            self.generation += 1

    def list(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._rules]

    def resolve(self, pod: dict, c: dict) -> Outcome:
        rp = (pod.get("spec") or {}).get("restartPolicy", "Always")
        decided = decide(container_argv(c))
        for r in self.list() + list(BUILTIN_RULES):
            if matches(r, pod, c):
                o = outcome_of(r["result"], r["name"])
                if o.exit_code is None and not o.image_pull and decided is not None:
                    code, secs, lines = decided  # the rule leaves the exit to the command
                    o = replace(o, exit_code=code, duration=secs if o.duration is None else o.duration,
                                echoes=tuple(lines))
                return o.finite(rp)
        if decided is not None:
            code, secs, lines = decided
            return Outcome(exit_code=code, duration=secs, echoes=tuple(lines), rule="command").finite(rp)
        return DEFAULT.finite(rp)
