"""Fault injection: make matching requests fail, slow down, or lose their connection.

Rules match on verb (get, list, watch, create, update, patch, delete, deletecollection),
resource (plural, optionally ``plural/subresource``), name and namespace; ``None`` matches
anything.  Each rule fires ``times`` times (``None`` = until cleared).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Rule:
    action: str  # "fail" | "latency" | "drop"
    verb: str | None = None
    resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    times: int | None = 1
    status: int = 500
    message: str | None = None
    seconds: float = 0.0
    hits: int = field(default=0)

    def matches(self, verb: str, resource: str, name: str | None, namespace: str | None) -> bool:
        if self.verb is not None and self.verb != verb:
            return False
        if self.resource is not None and self.resource != resource and self.resource != resource.split("/")[0]:
            return False
        if self.name is not None and self.name != name:
            return False
        return self.namespace is None or self.namespace == namespace


class Faults:
    """The fault-injection API of a running sandbox (``sb.faults``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(self, verb: str | None = None, resource: str | None = None, name: str | None = None,
             status: int = 500, times: int | None = 1, namespace: str | None = None,
             message: str | None = None) -> Rule:
        """The next ``times`` matching requests answer ``status`` with a Status body."""
        return self._add(Rule("fail", verb, resource, name, namespace, times, status, message))

    def latency(self, seconds: float, verb: str | None = None, resource: str | None = None,
                name: str | None = None, times: int | None = None, namespace: str | None = None) -> Rule:
        """Delay matching requests by ``seconds`` before they are served."""
        return self._add(Rule("latency", verb, resource, name, namespace, times, seconds=seconds))

    def drop(self, verb: str | None = None, resource: str | None = None, name: str | None = None,
             times: int | None = 1, namespace: str | None = None) -> Rule:
        """Close the connection of matching requests without an answer."""
        return self._add(Rule("drop", verb, resource, name, namespace, times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def take(self, verb: str, resource: str, name: str | None, namespace: str | None) -> list[Rule]:
        """Consume the rules matching a request: latency rules first, then at most one fail/drop."""
        fired: list[Rule] = []
        with self._lock:
            terminal = False
            for r in list(self._rules):
                if not r.matches(verb, resource, name, namespace):
                    continue
                if r.action != "latency":
                    if terminal:
                        continue
                    terminal = True
                r.hits += 1
                fired.append(r)
                if r.times is not None and r.hits >= r.times:
                    self._rules.remove(r)
        fired.sort(key=lambda r: r.action != "latency")
        return fired
