"""Helm values composition: the one place that decides which layer wins.

Precedence, lowest first (a later layer overrides an earlier one key by key):

1. the chart's ``values.yaml`` (defaults that run on minikube);
2. ``profiles/<profile>/values.yaml`` (what this kind of stack needs);
3. ``profiles/<profile>/secrets.yaml``, decrypted (credentials for this kind of stack);
4. stack values injected by the pipeline under ``global.stackyard`` (stack, namespace, profile);
5. overrides a pipeline step sets for one release (never secrets), e.g. a canary's
   ``canary.enabled``/``canary.weight`` (see docs/rollouts.md).

Merging rules, as Helm applies them to ``-f`` files: mappings merge recursively; lists and
scalars replace; a ``null`` removes the key it overrides. Inputs are never mutated.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stackyard.exceptions import InputError

#: The key under ``global`` where the pipeline injects what it knows about the target stack.
STACK_VALUES_KEY = "stackyard"


@dataclass(frozen=True)
class ValuesLayer:
    """One source of values. ``source`` names it in errors and previews (never its content)."""

    source: str
    values: Mapping[str, Any]
    secret: bool = False


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` overridden by ``override`` under the rules in this module's docstring.

    ``None`` values are kept so that Helm, which applies the chart's own ``values.yaml`` again,
    still removes the key.
    """
    merged: dict[str, Any] = {key: copy.deepcopy(value) for key, value in base.items()}
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_values(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def compose(layers: Sequence[ValuesLayer]) -> dict[str, Any]:
    """Merge ``layers`` in order; the last one wins. Each layer must be a mapping."""
    result: dict[str, Any] = {}
    for layer in layers:
        if not isinstance(layer.values, Mapping):
            raise InputError(f"{layer.source}: values must be a mapping, got {type(layer.values).__name__}")
        result = merge_values(result, layer.values)
    return result


def stack_values(*, stack: str, namespace: str, profile: str) -> dict[str, Any]:
    """Layer 4: what the pipeline tells every chart about the stack it is deployed to.

    It sits under ``global`` so that every subchart of an umbrella sees the same values.
    """
    return {"global": {STACK_VALUES_KEY: {"stack": stack, "namespace": namespace, "profile": profile}}}


def nest_under(service: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Values for a subchart of an umbrella: Helm reads them under the subchart's name."""
    return {service: copy.deepcopy(dict(values))}

