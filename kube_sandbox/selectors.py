"""Label and field selectors, parsed once per request into small predicate lists."""

from __future__ import annotations

import re

from .errors import ApiError


class Requirement:
    """One term of a label selector; ``op`` is one of in, notin, exists, !."""

    __slots__ = ("key", "op", "values")

    def __init__(self, key: str, op: str, values: frozenset[str]):
        self.key, self.op, self.values = key, op, values

    def matches(self, labels: dict) -> bool:
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        val = labels.get(self.key)
        if op == "in":
            return val is not None and val in self.values
        return val is None or val not in self.values  # notin, !=


_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_terms(expr: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, cur = [], 0, []
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t for t in terms if t.strip()]


def parse_label_selector(expr: str | None) -> list[Requirement]:
    """Parse a label selector string (``a=b,c!=d,e in (f,g),h notin (i),j,!k``)."""
    if not expr:
        return []
    reqs = []
    for term in _split_terms(expr):
        if m := _SET_RE.match(term):
            vals = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), vals))
        elif m := _EQ_RE.match(term):
            op = "notin" if m.group(2) == "!=" else "in"
            reqs.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
        elif m := _EXISTS_RE.match(term):
            reqs.append(Requirement(m.group(2), "!" if m.group(1) else "exists", frozenset()))
        else:
            raise ApiError.bad_request(f"unable to parse requirement: {term!r}")
    return reqs


def selector_from_label_selector(sel: dict | None) -> list[Requirement]:
    """Convert a ``metav1.LabelSelector`` object (matchLabels/matchExpressions) to requirements."""
    if not sel:
        return []
    reqs = [Requirement(k, "in", frozenset([v])) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in sel.get("matchExpressions") or []:
        reqs.append(Requirement(e["key"], ops[e["operator"]], frozenset(e.get("values") or ())))
    return reqs


def labels_match(reqs: list[Requirement], labels: dict | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


FIELD_PATHS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "status.phase": ("status", "phase"),
    "spec.nodeName": ("spec", "nodeName"),
    "type": ("type",),
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.kind": ("involvedObject", "kind"),
    "involvedObject.namespace": ("involvedObject", "namespace"),
    "involvedObject.uid": ("involvedObject", "uid"),
    "involvedObject.apiVersion": ("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": ("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": ("involvedObject", "fieldPath"),
    "reason": ("reason",), "reportingComponent": ("reportingComponent",), "source": ("source", "component"),
    "regarding.name": ("involvedObject", "name"), "regarding.kind": ("involvedObject", "kind"),
    "regarding.namespace": ("involvedObject", "namespace"), "regarding.uid": ("involvedObject", "uid"),
    "regarding.apiVersion": ("involvedObject", "apiVersion"), "reportingController": ("reportingComponent",),
    "spec.serviceAccountName": ("spec", "serviceAccountName"), "spec.schedulerName": ("spec", "schedulerName"),
    "spec.restartPolicy": ("spec", "restartPolicy"), "status.podIP": ("status", "podIP"),
    "status.nominatedNodeName": ("status", "nominatedNodeName"), "spec.unschedulable": ("spec", "unschedulable"),
    "status.successful": ("status", "succeeded"),
}


def parse_field_selector(expr: str | None) -> list[tuple[tuple[str, ...], bool, str]]:
    """Parse ``metadata.name=x,status.phase!=Running`` into (path, equal, value) triples."""
    if not expr:
        return []
    out = []
    for term in expr.split(","):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^([A-Za-z.]+)\s*(==|!=|=)\s*(.*)$", term)
        if not m or m.group(1) not in FIELD_PATHS:
            raise ApiError.bad_request(f'"{term}" is not a known field selector: only '
                                       '"metadata.name", "metadata.namespace", "status.phase"')
        out.append((FIELD_PATHS[m.group(1)], m.group(2) != "!=", m.group(3)))
    return out


def fields_match(sel, obj: dict) -> bool:
    for path, equal, value in sel:
        cur = obj
        for p in path:
            cur = cur.get(p) if isinstance(cur, dict) else None
        if ((cur if cur is not None else "") == value) != equal:
            return False
    return True
