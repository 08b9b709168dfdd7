"""Secret values: recognising SOPS-encrypted files and keeping plaintext out of output.

Masking is the second line of defence. The first is never to emit plaintext: decrypted values live
in memory, reach helm only through a 0600 file in a private temporary directory, and every string
stackyard prints about a tool run passes through :meth:`SecretRegistry.redact` first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

import yaml

#: Airflow never masks strings shorter than this; stackyard refuses such secrets for that reason.
MIN_SECRET_LENGTH = 5
MASK = "***"
_ENCRYPTED_SCALAR = re.compile(r"^ENC\[[A-Z0-9_]+,data:")


def is_sops_encrypted(data: bytes) -> bool:
    """True if ``data`` is a SOPS-encrypted YAML/JSON document.

    It must carry SOPS metadata (a ``sops`` mapping with a ``mac``) and no plaintext leaf among
    the values SOPS encrypts (everything but the metadata, unless an unencrypted suffix says so).
    """
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        return False
    if not isinstance(doc, dict) or not isinstance(doc.get("sops"), dict) or not doc["sops"].get("mac"):
        return False
    suffix = doc["sops"].get("unencrypted_suffix") or "_unencrypted"
    return all(_ENCRYPTED_SCALAR.match(leaf) for leaf in _leaves(
        {k: v for k, v in doc.items() if k != "sops"}, suffix
    ))


def _leaves(node: Any, unencrypted_suffix: str) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if not str(key).endswith(unencrypted_suffix):
                yield from _leaves(value, unencrypted_suffix)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value, unencrypted_suffix)
    elif node is not None and node != "":
        yield str(node)


def secret_leaves(values: Any, path: str = "") -> list[tuple[str, str]]:
    """Every scalar leaf of a decrypted secrets tree as (dotted path, string value)."""
    if isinstance(values, dict):
        return [leaf for key, value in values.items() for leaf in secret_leaves(value, f"{path}.{key}" if path else str(key))]
    if isinstance(values, list):
        return [leaf for index, value in enumerate(values) for leaf in secret_leaves(value, f"{path}[{index}]")]
    if values is None or isinstance(values, bool):
        return []
    return [(path, str(values))]


class SecretRegistry:
    """The plaintext values this process has decrypted, so output can be redacted before use."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                if value:
                    self._values.add(value)
                    # Multi-line secrets (certificates) also leak line by line.
                    self._values.update(line for line in value.splitlines() if len(line) >= MIN_SECRET_LENGTH)
            self._pattern = None

    def redact(self, text: str) -> str:
        if not self._values or not text:
            return text
        with self._lock:
            if self._pattern is None:
                # Longest first so a secret containing another is replaced whole.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            pattern = self._pattern
        return pattern.sub(MASK, text)

    def __contains__(self, value: str) -> bool:
        return value in self._values


#: The process-wide registry. Hooks add decrypted leaves to it (and to Airflow's masker).
SECRETS = SecretRegistry()
