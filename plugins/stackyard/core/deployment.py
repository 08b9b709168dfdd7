"""What one ``helm upgrade`` of a packaged chart is given: its values layers for a stack.

For a single service chart the profile applies at the top level. For an umbrella, each vendored
service chart's profile values and secrets are nested under that service's name, so one
``helm upgrade`` applies every service's profile. Layer order is the one in
:mod:`stackyard.core.values`; the chart's own ``values.yaml`` (layer 1) is applied by helm.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from stackyard.core.charts import Chart, Profile, load_chart_bytes, vendored_charts
from stackyard.core.values import ValuesLayer, nest_under, stack_values
from stackyard.exceptions import NotFoundError

Decrypt = Callable[[Profile], Mapping[str, Any]]


def profile_layers(chart: Chart, profile: str, decrypt: Decrypt) -> list[ValuesLayer]:
    """Layers 2 and 3 for one chart: the profile's values, then its decrypted secrets."""
    chosen = chart.profile(profile)
    layers = [ValuesLayer(chosen.values_source, chosen.values)]
    if chosen.secrets is not None:
        layers.append(ValuesLayer(chosen.secrets_source, decrypt(chosen), secret=True))
    return layers


def deployment_layers(
    package: bytes, *, origin: str, profile: str, stack: str, namespace: str, decrypt: Decrypt
) -> list[ValuesLayer]:
    """Every layer helm needs (after the charts' own defaults) to deploy ``package`` to a stack."""
    top = load_chart_bytes(package, origin)
    layers: list[ValuesLayer] = []
    if top.profiles:
        layers += profile_layers(top, profile, decrypt)
    for sub in vendored_charts(package, origin):
        if sub.profiles:
            layers += [
                ValuesLayer(layer.source, nest_under(sub.name, layer.values), layer.secret)
                for layer in profile_layers(sub, profile, decrypt)
            ]
    if not layers:
        raise NotFoundError(f"{top.name} {top.version}: no chart in the package has profile {profile!r}")
    layers.append(ValuesLayer("stack", stack_values(stack=stack, namespace=namespace, profile=profile)))
    return layers


def values_digest(values: Mapping[str, Any]) -> str:
    """What records keep instead of values: sha256 of the canonical JSON (keys sorted)."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()
