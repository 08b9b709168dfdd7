"""The profile half of the chart contract (docs/chart-contract.md), checked before a chart is
pushed and again when the gate takes it:

- every profile a deployment will ask for exists: ``ephemeral`` (gate candidates and personal
  stacks) and the profile of each stack in the registry that deploys the chart;
- profile names are DNS labels;
- every file under ``profiles/`` that looks like secrets (``secrets*.y*ml``, ``*.sops.*``, or
  content with a top-level ``sops:`` map or an ``ENC[`` value) is fully SOPS-encrypted;
- the recipients of each encrypted file are those the chart's ``.sops.yaml`` creation rule for
  its path names.

Pure: callers pass the files (path relative to the chart → bytes) and the stacks.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

import yaml

from stackyard.core.charts import PROFILES_DIR
from stackyard.core.secrets import is_sops_encrypted
from stackyard.core.stack_registry import Stack

EPHEMERAL_PROFILE = "ephemeral"
SOPS_CONFIG = ".sops.yaml"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SECRET_NAMES = ("secrets*.y*ml", "*.sops.*")
_ENC = "ENC["
#: sops metadata key → the field naming a recipient, per key type stackyard compares.
_RECIPIENT_FIELDS = {"age": "recipient", "kms": "arn", "pgp": "fp", "gcp_kms": "resource_id"}


def required_profiles(chart: str, stacks: Iterable[Stack]) -> dict[str, list[str]]:
    """profile → who deploys the chart with it (``ephemeral``: the gate and personal stacks)."""
    required = {EPHEMERAL_PROFILE: ["the L3 gate and personal stacks"]}
    for stack in stacks:
        if stack.services is None or any(entry.name == chart for entry in stack.services):
            required.setdefault(stack.profile, []).append(f"stack {stack.name}")
    return required


def looks_like_secrets(path: str, data: bytes) -> bool:
    name = PurePosixPath(path).name
    if any(fnmatch.fnmatch(name, pattern) for pattern in _SECRET_NAMES):
        return True
    try:
        docs = list(yaml.safe_load_all(data))
    except yaml.YAMLError:
        return _ENC.encode() in data
    return any(isinstance(doc, Mapping) and isinstance(doc.get("sops"), Mapping) for doc in docs) or any(
        _ENC in leaf for doc in docs for leaf in _string_leaves(doc))


def check_profiles(chart: str, files: Mapping[str, bytes], required: Mapping[str, list[str]]) -> list[str]:
    """Every breach of the contract, one message each (empty: the chart may be pushed)."""
    problems = []
    profiles = sorted({PurePosixPath(p).parts[1] for p in files
                       if PurePosixPath(p).parts[:1] == (PROFILES_DIR,) and len(PurePosixPath(p).parts) > 2})
    for name in profiles:
        if not _DNS_LABEL.match(name):
            problems.append(f"chart {chart}: profile {name!r} ({PROFILES_DIR}/{name}/) is not a DNS label "
                            "(lowercase a-z, 0-9 and '-', at most 63 characters)")
    for profile, users in sorted(required.items()):
        if profile not in profiles:
            problems.append(f"chart {chart}: no profile {profile!r} ({PROFILES_DIR}/{profile}/values.yaml), "
                            f"needed by {', '.join(users)}")
    rules = None
    for path, data in sorted(files.items()):
        if PurePosixPath(path).parts[:1] != (PROFILES_DIR,) or not looks_like_secrets(path, data):
            continue
        if not is_sops_encrypted(data):
            problems.append(f"chart {chart}: {path} looks like secrets but is not fully SOPS-encrypted (every "
                            f"value ENC[...] and sops metadata with a mac); encrypt it: sops encrypt -i {path}")
            continue
        if rules is None:
            rules = _creation_rules(chart, files.get(SOPS_CONFIG))
        if isinstance(rules, str):
            problems.append(rules)
            rules = []
            continue
        expected = _rule_for(path, rules)
        if expected is None:
            problems.append(f"chart {chart}: no creation rule of {SOPS_CONFIG} matches {path}")
            continue
        found = _file_recipients(data)
        if found != expected:
            problems.append(f"chart {chart}: {path} is encrypted to {_describe(found)} but {SOPS_CONFIG} says "
                            f"{_describe(expected)} for it; re-encrypt it: sops updatekeys {path}")
    return problems


# --- .sops.yaml and sops metadata -----------------------------------------------------------------

Recipients = dict[str, frozenset[str]]


def _creation_rules(chart: str, config: bytes | None) -> list[tuple[str, Recipients]] | str:
    """(path_regex, recipients) in order, or the message saying why they cannot be read."""
    if config is None:
        return f"chart {chart}: profiles carry encrypted files but the chart has no {SOPS_CONFIG}"
    try:
        doc = yaml.safe_load(config) or {}
    except yaml.YAMLError as exc:
        return f"chart {chart}: {SOPS_CONFIG} is not valid YAML: {exc}"
    rules = doc.get("creation_rules") if isinstance(doc, Mapping) else None
    if not isinstance(rules, list) or not all(isinstance(r, Mapping) for r in rules):
        return f"chart {chart}: {SOPS_CONFIG} has no list of creation_rules"
    out = []
    for rule in rules:
        try:
            regex = re.compile(str(rule.get("path_regex") or ""))
        except re.error as exc:
            return f"chart {chart}: {SOPS_CONFIG}: path_regex {rule.get('path_regex')!r} is not a regex: {exc}"
        groups = rule.get("key_groups") if isinstance(rule.get("key_groups"), list) else [rule]
        recipients: dict[str, set[str]] = {}
        for group in groups:
            for key in _RECIPIENT_FIELDS:
                recipients.setdefault(key, set()).update(_rule_values(group.get(key), _RECIPIENT_FIELDS[key]))
        out.append((regex.pattern, {k: frozenset(v) for k, v in recipients.items() if v}))
    return out


def _rule_values(value: Any, field: str) -> list[str]:
    """A rule's recipients: ``"a,b"``, ``[a, b]`` or (in key groups) ``[{arn: a}]``."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
    out = []
    for item in items:
        text = item.get(field) if isinstance(item, Mapping) else item
        if text is not None and str(text).strip():
            out.append(str(text).strip())
    return out


def _rule_for(path: str, rules: list[tuple[str, Recipients]]) -> Recipients | None:
    """The first rule whose path_regex is found in the path (sops' own matching), as sops does."""
    for pattern, recipients in rules:
        if re.search(pattern, path):
            return recipients
    return None


def _file_recipients(data: bytes) -> Recipients:
    meta = (yaml.safe_load(data) or {}).get("sops") or {}
    groups = meta.get("key_groups") if isinstance(meta.get("key_groups"), list) else [meta]
    found: dict[str, set[str]] = {}
    for group in groups:
        for key, field in _RECIPIENT_FIELDS.items():
            found.setdefault(key, set()).update(_rule_values(group.get(key) or [], field))
    return {k: frozenset(v) for k, v in found.items() if v}


def _describe(recipients: Recipients) -> str:
    return "; ".join(f"{key} {', '.join(sorted(values))}" for key, values in sorted(recipients.items())) or "no key"


def _string_leaves(node: Any) -> Iterable[str]:
    if isinstance(node, Mapping):
        for value in node.values():
            yield from _string_leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _string_leaves(value)
    elif isinstance(node, str):
        yield node


# --- canary: a Service per track ---------------------------------------------------------------------

LABEL_TRACK = "stackyard.io/track"


def canary_users(chart: str, stacks: Iterable[Stack]) -> dict[str, list[str]]:
    """profile → the stacks that deploy ``chart`` canary first with it (each must be able to)."""
    users: dict[str, list[str]] = {}
    for stack in stacks:
        if chart in stack.canary_services:
            users.setdefault(stack.profile, []).append(f"stack {stack.name}")
    return users


def _pod_labels(docs: list[dict[str, Any]]) -> dict[str, tuple[dict[str, str], Any]]:
    """Deployment name → (its pod template's labels, its replicas)."""
    found = {}
    for doc in docs:
        if doc.get("kind") == "Deployment":
            spec = doc.get("spec") or {}
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            found[(doc.get("metadata") or {}).get("name", "")] = ({str(k): str(v) for k, v in labels.items()},
                                                                  spec.get("replicas", 1))
    return found


def _service_selector(docs: list[dict[str, Any]], name: str) -> dict[str, str] | None:
    for doc in docs:
        if doc.get("kind") == "Service" and (doc.get("metadata") or {}).get("name") == name:
            return {str(k): str(v) for k, v in ((doc.get("spec") or {}).get("selector") or {}).items()}
    return None


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def check_canary(chart: str, stable: list[dict[str, Any]], canary: list[dict[str, Any]], *, stable_release: str,
                 canary_release: str, needed_by: str) -> list[str]:
    """What the chart must expose to be canaried (docs/chart-contract.md, "4. Canary"), from its
    manifests rendered as the stable release and as the canary release (``core.rollout.canary_values``):

    - as the stable release: a Service named after the release selecting its pods, which carry
      ``stackyard.io/track: stable``;
    - as the canary release: a Deployment ``<release>-canary`` whose pods carry
      ``stackyard.io/track: canary``, a Service named after the release selecting them and not the
      stable release's pods, and no other Deployment with replicas (``replicaCount: 0`` honoured).
    """
    problems = []
    where = f"chart {chart} (canary first for {needed_by})"
    stable_pods, canary_pods = _pod_labels(stable), _pod_labels(canary)
    selector = _service_selector(stable, stable_release)
    if selector is None:
        problems.append(f"{where}: rendered as release {stable_release}, it has no Service named {stable_release} "
                        "(the stable track's Service the traffic provider points at)")
    elif not any(_selects(selector, labels) for labels, _ in stable_pods.values()):
        problems.append(f"{where}: the Service {stable_release} selects none of the release's pods")
    if not any(labels.get(LABEL_TRACK) == "stable" for labels, _ in stable_pods.values()):
        problems.append(f"{where}: the stable release's pods carry no label {LABEL_TRACK}: stable")
    name = f"{canary_release}-canary"
    if name not in canary_pods:
        problems.append(f"{where}: with canary.enabled it renders no Deployment {name} (found: "
                        f"{', '.join(sorted(canary_pods)) or 'none'})")
        return problems
    labels, _ = canary_pods[name]
    if labels.get(LABEL_TRACK) != "canary":
        problems.append(f"{where}: the pods of Deployment {name} carry no label {LABEL_TRACK}: canary")
    canary_selector = _service_selector(canary, canary_release)
    if canary_selector is None:
        problems.append(f"{where}: rendered as release {canary_release}, it has no Service named {canary_release} "
                        "(the canary track's Service)")
    else:
        if not _selects(canary_selector, labels):
            problems.append(f"{where}: the Service {canary_release} does not select the pods of Deployment {name}")
        if any(_selects(canary_selector, other) for other, _ in stable_pods.values()):
            problems.append(f"{where}: the Service {canary_release} also selects the stable release's pods: "
                            "the two tracks' shares could not be told apart")
    for other, (_, replicas) in sorted(canary_pods.items()):
        if other != name and replicas not in (0, "0"):
            problems.append(f"{where}: with replicaCount: 0 the canary release still runs Deployment {other} with "
                            f"{replicas} replica(s)")
    return problems
