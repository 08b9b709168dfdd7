"""The sops CLI: the only module that builds sops command lines.

Decryption goes through stdin and stdout: neither the encrypted input nor the plaintext output
touches disk here, and stdout is data (never logged). Exit codes that a retry cannot fix become
typed errors with the message a user needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackyard.exceptions import AccessDeniedError, InputError, ToolError, UnavailableError
from stackyard.adapters.runner import ToolRunner

# sops' documented exit codes (cmd/sops/codes) that mean "this input or key cannot work".
_COULD_NOT_READ_INPUT = 2
_DECRYPT_FAILURES = {24: "could not decrypt the MAC", 25: "could not decrypt the values"}
_MAC_MISMATCH = 51
_MAC_NOT_FOUND = 52
_COULD_NOT_RETRIEVE_KEY = 128
_FAILED_KEY = re.compile(r"^\s+(\S+): FAILED", re.MULTILINE)
# How an unreachable KMS endpoint shows in sops' output (Go's net errors), as opposed to a refusal.
_UNREACHABLE = re.compile(r"connection refused|no such host|i/o timeout|network is unreachable|connection reset")


@dataclass(frozen=True)
class SopsConfig:
    """How sops finds keys: an age identity (file or value) and/or AWS credentials for KMS.

    ``home`` is a private directory used as ``HOME`` so that sops sees only the identities given
    here, not whatever happens to sit in the worker's ``~/.config/sops``.
    """

    home: Path
    binary: str = "sops"
    age_key_file: str | None = None
    age_key: str | None = field(default=None, repr=False)
    aws_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    base_env: Mapping[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in self.base_env.items() if k in ("PATH", "TMPDIR", "LANG")}
        env["HOME"] = str(self.home)
        if self.age_key_file:
            env["SOPS_AGE_KEY_FILE"] = self.age_key_file
        if self.age_key:
            env["SOPS_AGE_KEY"] = self.age_key
        env.update(self.aws_env)
        return env


class Sops:
    def __init__(self, config: SopsConfig, runner: ToolRunner | None = None) -> None:
        self.config = config
        self.runner = runner or ToolRunner()

    def decrypt(self, encrypted: bytes, *, source: str) -> dict[str, Any]:
        """Decrypt a SOPS YAML document held in memory; ``source`` names it in errors."""
        try:
            result = self.runner.run(
                "sops",
                [self.config.binary, "decrypt", "--input-type", "yaml", "--output-type", "json", "/dev/stdin"],
                env=self.config.env(), stdin=encrypted, stdout_is_data=True,
            )
        except ToolError as exc:
            raise self._explain(exc, source) from None
        values = json.loads(result.stdout or "{}")
        if not isinstance(values, dict):
            raise InputError(f"{source}: decrypted secrets must be a mapping")
        return values

    def encrypt(self, plaintext: bytes, *, recipients_args: list[str], source: str) -> bytes:
        """Encrypt YAML from memory, for tooling and tests (``recipients_args`` like ``["--age", R]``)."""
        try:
            result = self.runner.run(
                "sops",
                [self.config.binary, "encrypt", "--input-type", "yaml", "--output-type", "yaml",
                 *recipients_args, "/dev/stdin"],
                env=self.config.env(), stdin=plaintext, stdout_is_data=True,
            )
        except ToolError as exc:
            raise self._explain(exc, source) from None
        return result.stdout.encode()

    def kill(self) -> None:
        self.runner.kill()

    @staticmethod
    def _explain(exc: ToolError, source: str) -> Exception:
        if exc.exit_code == _COULD_NOT_RETRIEVE_KEY:
            keys = ", ".join(_FAILED_KEY.findall(exc.output_tail)) or "the keys in its metadata"
            unreachable = _UNREACHABLE.search(exc.output_tail)
            if unreachable:
                return UnavailableError(f"{source}: could not reach the key service for {keys} ({unreachable.group(0)})")
            return AccessDeniedError(f"{source}: no access to key {keys}; sops could not get the data key")
        if exc.exit_code in (_MAC_MISMATCH, _MAC_NOT_FOUND):
            return InputError(f"{source}: MAC mismatch, the file was modified outside sops or is corrupt")
        if exc.exit_code in _DECRYPT_FAILURES:
            return InputError(f"{source}: {_DECRYPT_FAILURES[exc.exit_code]}; the file is corrupt")
        if exc.exit_code == _COULD_NOT_READ_INPUT or "metadata not found" in exc.output_tail:
            return InputError(f"{source}: sops could not read it (not a SOPS document?)")
        return exc
