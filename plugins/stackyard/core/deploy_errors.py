"""What a failed ``helm upgrade --install`` said, classified: the one rule the gate decides by.

:func:`classify` reads helm's own output (already redacted) and returns a
:class:`~stackyard.core.records.DeployFailure`: the kind, the failing objects, the service that
owns them (which may not be the one being gated) and helm's first error lines. The kinds, in the
order the rules are tried:

1. ``render``: helm never got valid manifests: a template error (``parse error``, ``execution
   error``, ``nil pointer``, ``YAML parse error``), values refused by ``values.schema.json``, or
   the API server refusing a manifest as invalid (strict field validation ``unknown field``,
   ``… is invalid:``, an admission webhook's denial, a kind with no CRD). Deterministic: the
   gate fails the deploy at once, without retries, and rejects the candidate.
2. ``conflict``: an object exists that another owner holds (``cannot be imported into the
   current release``). Not the candidate's fault and not fixed by a retry: an error.
3. ``not_ready``: the manifests were applied but workloads did not become ready (``resource
   Deployment/ns/name not ready``, ``timed out waiting for the condition``): a rejection.
4. ``transient``: the API server failed or could not be reached (5xx texts, ``connection
   refused``, ``i/o timeout``, ``TLS handshake timeout``, …): retried, then an error.
5. ``unknown``: anything else (for example a bare 500 whose message names no cause). Not a
   verdict on the chart: retried, then an error.

Pure: text in, record out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stackyard.core.records import DeployFailure, FailureKind

#: How much of helm's error the record and the rejection reason quote.
MAX_ERROR_LINES = 6
MAX_ERROR_CHARS = 1500

_RENDER = re.compile("|".join([
    r"parse error at \(", r"execution error at \(", r"\bexecuting \"", r"nil pointer evaluating",
    r"YAML parse error", r"error converting YAML to JSON", r"function \"[^\"]+\" not defined",
    r"values don't meet the specifications of the schema", r"strict decoding error", r"unknown field \"",
    r"field not declared in schema", r"failed to create typed patch object", r"\bis invalid: ",
    r"error validating (data|\")", r"admission webhook \"[^\"]+\" denied the request",
    r"no matches for kind", r"ensure CRDs are installed first", r"unable to build kubernetes objects",
    r"chart requires kubeVersion", r"Chart\.yaml file is missing",
]))
_CONFLICT = re.compile(r"cannot be imported into the current release|exists and cannot be imported")
_NOT_READY = re.compile(
    r"\bnot ready\b|timed out waiting for the condition|context deadline exceeded|Progress deadline exceeded"
)
_TRANSIENT = re.compile("|".join([
    r"Internal error occurred", r"the server is currently unable to handle the request",
    r"the server has received too many requests", r"the server was unable to return a response",
    r"etcdserver:", r"connection refused", r"connection reset by peer", r"i/o timeout",
    r"TLS handshake timeout", r"no such host", r"dial tcp", r"unexpected EOF", r"http2: client connection lost",
    r"Service Unavailable", r"Too Many Requests", r"an error on the server", r"could not get information about the resource",
    r"Kubernetes cluster unreachable",
]), re.IGNORECASE)

# helm 4's readiness message: "resource Deployment/<namespace>/<name> not ready. status: …".
_OBJECT = re.compile(r"resource ([A-Za-z]+)/([a-z0-9][a-z0-9-]*)/([a-z0-9][a-z0-9.-]*?) not ready")
# A template's path names its chart: "l3/charts/<service>/templates/…" in an umbrella.
_TEMPLATE_PATH = re.compile(r"(?:^|[\s(\"<])[A-Za-z0-9_.-]+/charts/([a-z0-9][a-z0-9-]*)/templates/")
# An object named in an API server answer: 'Deployment.apps "l3-orders" is invalid', 'Deployment "l3-orders"'.
_NAMED = re.compile(r"\b([A-Z][A-Za-z]+)(?:\.[a-z0-9.]+)? \"([a-z0-9][a-z0-9.-]*)\"")
_HELM_NOISE = re.compile(r"^(level=\w+ |Release \"[^\"]+\" does not exist|WARNING: )")


def classify(helm_output: str, *, release: str, services: Iterable[str] = ()) -> DeployFailure:
    """The deploy failure ``helm_output`` describes; see the module docstring for the rules."""
    text = helm_output or ""
    kind = _kind(text)
    objects = _objects(text)
    return DeployFailure(kind=kind, objects=objects, helm_error=helm_error(text),
                         service=_service(text, objects, release=release, services=set(services)))


def _kind(text: str) -> FailureKind:
    if _RENDER.search(text):
        return FailureKind.RENDER
    if _CONFLICT.search(text):
        return FailureKind.CONFLICT
    if _NOT_READY.search(text):
        return FailureKind.NOT_READY
    if _TRANSIENT.search(text):
        return FailureKind.TRANSIENT
    return FailureKind.UNKNOWN


def helm_error(text: str) -> str:
    """helm's own error, first lines: from its ``Error:`` line on (its log lines dropped)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("Error:")), None)
    kept = lines[start:] if start is not None else [line for line in lines if not _HELM_NOISE.match(line)]
    quoted = "\n".join(kept[:MAX_ERROR_LINES])
    return quoted if len(quoted) <= MAX_ERROR_CHARS else quoted[:MAX_ERROR_CHARS - 1] + "…"


def _objects(text: str) -> list[str]:
    found = [f"{kind}/{name}" for kind, _, name in _OBJECT.findall(text)]
    found += [f"{kind}/{name}" for kind, name in _NAMED.findall(text) if kind not in {"Error", "Release"}]
    return list(dict.fromkeys(found))  # first mention first, no repeats


def _service(text: str, objects: list[str], *, release: str, services: set[str]) -> str | None:
    """The service whose part of the umbrella failed: the subchart a template path names, else
    the ``<release>-<service>`` naming of a failing object (charts' usual fullname)."""
    for name in _TEMPLATE_PATH.findall(text):
        if not services or name in services:
            return name
    for ref in objects:
        name = ref.split("/", 1)[1]
        for service in sorted(services, key=len, reverse=True):  # longest first: "orders-api" before "orders"
            if name in (service, f"{release}-{service}") or name.startswith(f"{release}-{service}-"):
                return service
    return None


def describe(failure: DeployFailure) -> str:
    """The rejection or error reason: what failed, where, and helm's first error line."""
    what = {
        FailureKind.RENDER: "the chart did not render or a manifest is invalid",
        FailureKind.CONFLICT: "an object already exists and belongs to something else",
        FailureKind.NOT_READY: "workloads did not become ready",
        FailureKind.TRANSIENT: "the Kubernetes API failed",
        FailureKind.UNKNOWN: "helm failed",
    }[failure.kind]
    where = f" in {failure.service}" if failure.service else ""
    objects = f" ({', '.join(failure.objects[:5])})" if failure.objects else ""
    first = failure.helm_error.splitlines()[0] if failure.helm_error else ""
    return f"{what}{where}{objects}: {first}" if first else f"{what}{where}{objects}"
