"""The example charts' plaintext secrets, for tests that prove they appear nowhere."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY, EXAMPLE_SERVICES

LOCAL_PROFILES = ("ephemeral", "qa1", "stage")  # production is encrypted to a key nobody local has


def example_plaintexts(sops_bin: str) -> set[str]:
    values = set()
    for service in EXAMPLE_SERVICES:
        for profile in LOCAL_PROFILES:
            out = subprocess.run(
                [sops_bin, "decrypt", "--output-type", "json", str(CHARTS / service / "profiles" / profile / "secrets.yaml")],
                env={"SOPS_AGE_KEY_FILE": str(EXAMPLE_AGE_KEY), "HOME": "/nonexistent"}, check=True, capture_output=True,
            ).stdout
            values.update(json.loads(out)["secrets"].values())
    return values
