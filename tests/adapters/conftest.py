"""A real S3 API for the store tests: the session's ``moto_endpoint`` (tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.moto import FAKE_CREDENTIALS


@pytest.fixture(scope="session")
def s3_client_factory(moto_endpoint: str) -> Callable[[], Any]:
    """Builds a new client per call (boto3 clients are thread-safe, but processes need their own)."""
    import boto3

    def make_client() -> Any:
        return boto3.client(
            "s3",
            endpoint_url=moto_endpoint,
            **FAKE_CREDENTIALS,
        )

    return make_client


@pytest.fixture
def s3_bucket(s3_client_factory: Callable[[], Any]) -> str:
    """A fresh, empty bucket per test, so tests share the server but never state."""
    name = f"stackyard-test-{uuid.uuid4().hex[:12]}"
    s3_client_factory().create_bucket(Bucket=name)
    return name
