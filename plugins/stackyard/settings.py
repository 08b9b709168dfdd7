"""Where stackyard keeps things, read from the environment once.

Local mode (``eval "$(make -s env)"``) sets these to folders under ``.stackyard/``; the compose
stack and production set them to an OCI registry and an S3 bucket. Connection ids are Airflow
connections: the cluster (cncf-kubernetes), the SOPS identity, and AWS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stackyard.exceptions import InputError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GATE_TEST_PARALLELISM = 64
GATE_WINDOW = 3


def _store(env: Mapping[str, str], home: Path, name: str) -> str:
    """A store's default: ``<STACKYARD_S3_URL>/<name>`` when that is given, else a folder of ``home``."""
    s3 = (env.get("STACKYARD_S3_URL") or "").rstrip("/")
    if s3:
        if not s3.startswith("s3://") or len(s3) <= len("s3://"):
            raise InputError(f"STACKYARD_S3_URL must be s3://bucket[/prefix], got {s3!r}")
        return f"{s3}/{name}"
    return f"file://{home / name}"


@dataclass(frozen=True)
class Settings:
    root: Path
    home: Path
    registry_url: str
    manifest_store_url: str
    records_url: str
    kubernetes_conn_id: str = "stackyard_kube"
    sops_conn_id: str = "stackyard_sops"
    aws_conn_id: str = "aws_default"
    registry_plain_http: bool = False
    stacks_registry: str | None = None  # STACKYARD_STACKS: the stack registry file (default below)
    gate_config_file: str | None = None  # STACKYARD_GATE_CONFIG: the gate's suite (default below)
    image_mirrors: str | None = None  # STACKYARD_IMAGE_MIRRORS: registry=host[/prefix],… (docs/images.md)
    image_plain_http: tuple[str, ...] = ()  # STACKYARD_IMAGE_PLAIN_HTTP: registry hosts without TLS
    image_registry_conn_id: str = "stackyard_images"  # credentials of private image registries
    gate_test_parallelism_raw: str | None = None  # STACKYARD_GATE_TEST_PARALLELISM (property below)
    gate_window_raw: str | None = None  # STACKYARD_GATE_WINDOW (property below)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        root = Path(env.get("STACKYARD_ROOT") or PROJECT_ROOT)
        home = Path(env.get("STACKYARD_HOME") or root / ".stackyard")
        return cls(
            root=root,
            home=home,
            registry_url=env.get("STACKYARD_REGISTRY") or f"dir://{home / 'registry'}",
            manifest_store_url=env.get("STACKYARD_MANIFEST_STORE") or _store(env, home, "manifests"),
            records_url=env.get("STACKYARD_RECORD_STORE") or _store(env, home, "records"),
            kubernetes_conn_id=env.get("STACKYARD_KUBE_CONN_ID", cls.kubernetes_conn_id),
            sops_conn_id=env.get("STACKYARD_SOPS_CONN_ID", cls.sops_conn_id),
            aws_conn_id=env.get("STACKYARD_AWS_CONN_ID", cls.aws_conn_id),
            registry_plain_http=env.get("STACKYARD_REGISTRY_PLAIN_HTTP", "").lower() in ("1", "true", "yes"),
            stacks_registry=env.get("STACKYARD_STACKS") or None,
            gate_config_file=env.get("STACKYARD_GATE_CONFIG") or None,
            image_mirrors=env.get("STACKYARD_IMAGE_MIRRORS") or None,
            image_plain_http=tuple(h.strip() for h in env.get("STACKYARD_IMAGE_PLAIN_HTTP", "").split(",") if h.strip()),
            image_registry_conn_id=env.get("STACKYARD_IMAGE_CONN_ID", cls.image_registry_conn_id),
            gate_test_parallelism_raw=env.get("STACKYARD_GATE_TEST_PARALLELISM") or None,
            gate_window_raw=env.get("STACKYARD_GATE_WINDOW") or None,
        )

    @property
    def include_dir(self) -> Path:
        return self.root / "include"

    @property
    def stacks_file(self) -> Path:
        """The stack registry the rollout DAGs are built from (docs/rollouts.md)."""
        return Path(self.stacks_registry) if self.stacks_registry else self.include_dir / "stacks.yaml"

    @property
    def charts_dir(self) -> Path:
        return self.include_dir / "charts"

    @property
    def umbrella_template_dir(self) -> Path:
        return self.include_dir / "umbrella"

    @property
    def gate_config(self) -> Path:
        """The L3 gate's optional system-test suite (``STACKYARD_GATE_CONFIG``, ``include/gate.yaml``)."""
        return Path(self.gate_config_file) if self.gate_config_file else self.include_dir / "gate.yaml"

    @property
    def gate_test_parallelism(self) -> int:
        """How many of a candidate's test hooks the gate runs at once (``STACKYARD_GATE_TEST_PARALLELISM``,
        default 64); checked when used, so a bad value fails the test task, not every DAG's parse."""
        from stackyard.core.system_tests import parse_parallelism

        return parse_parallelism(self.gate_test_parallelism_raw, GATE_TEST_PARALLELISM,
                                 source="STACKYARD_GATE_TEST_PARALLELISM")

    @property
    def gate_window(self) -> int:
        """How many queued changes the gate tests at once, each on L3 plus the changes ahead of it
        (``STACKYARD_GATE_WINDOW``, default 3; 1 tests one change at a time)."""
        from stackyard.core.system_tests import parse_parallelism

        return parse_parallelism(self.gate_window_raw, GATE_WINDOW, source="STACKYARD_GATE_WINDOW",
                                 what="changes to test at once")

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache" / "charts"
