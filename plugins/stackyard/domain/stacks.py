"""Stacks as Kubernetes namespaces: the labels and annotations that describe them.

A stack is a namespace that stackyard labels. Labels select (the reaper lists with one label
selector); annotations carry values labels cannot hold (timestamps). These keys are the contract
between the gate, ``stack_create``, the reaper and the Stacks view: defined here only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum

from stackyard.exceptions import InputError

PREFIX = "stackyard.io"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "stackyard"
LABEL_STACK_TYPE = f"{PREFIX}/stack-type"
LABEL_PURPOSE = f"{PREFIX}/purpose"
LABEL_OWNER = f"{PREFIX}/owner"
LABEL_MANIFEST_VERSION = f"{PREFIX}/manifest-version"
ANNOTATION_CREATED = f"{PREFIX}/created"
ANNOTATION_LAST_ACTIVITY = f"{PREFIX}/last-activity"
ANNOTATION_TTL = f"{PREFIX}/ttl"
ANNOTATION_CREATED_BY = f"{PREFIX}/created-by"
ANNOTATION_OWNER = f"{PREFIX}/owner"

DEFAULT_TTL = timedelta(days=7)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TTL = re.compile(r"^(\d+)([dh])$")


class StackType(str, Enum):
    EPHEMERAL = "ephemeral"
    PERSISTENT = "persistent"
    PRODUCTION = "production"


class Purpose(str, Enum):
    L3_GATE = "l3-gate"
    PERSONAL = "personal"


@dataclass(frozen=True)
class StackMetadata:
    labels: dict[str, str]
    annotations: dict[str, str]


def validate_stack_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.match(name):
        raise InputError(f"stack name {name!r} is not a DNS-1123 label (lowercase a-z, 0-9, '-', at most 63)")
    return name


def label_value(value: str) -> str:
    """``value`` made safe for a label (63 chars, alphanumerics, '-', '_', '.'); the full value
    also goes into an annotation where it matters (the owner)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:63].strip("-_.")
    return cleaned if _LABEL_VALUE.match(cleaned) else ""


def format_ttl(ttl: timedelta) -> str:
    hours = int(ttl.total_seconds() // 3600)
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


def parse_ttl(text: str) -> timedelta:
    """``7d`` or ``36h``; anything else raises InputError (the reaper then keeps the stack)."""
    match = _TTL.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise InputError(f"TTL {text!r} is not like '7d' or '36h'")
    amount = int(match.group(1))
    return timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)


def timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ephemeral_stack_metadata(
    *, owner: str, purpose: Purpose, manifest_version: int, created: datetime,
    ttl: timedelta = DEFAULT_TTL, created_by: str = "",
) -> StackMetadata:
    """Labels and annotations of a new ephemeral stack: everything the reaper needs to remove it."""
    return StackMetadata(
        labels={
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_STACK_TYPE: StackType.EPHEMERAL.value,
            LABEL_PURPOSE: purpose.value,
            LABEL_OWNER: label_value(owner) or "unknown",
            LABEL_MANIFEST_VERSION: str(manifest_version),
        },
        annotations={
            ANNOTATION_CREATED: timestamp(created),
            ANNOTATION_LAST_ACTIVITY: timestamp(created),
            ANNOTATION_TTL: format_ttl(ttl),
            ANNOTATION_OWNER: owner,
            ANNOTATION_CREATED_BY: created_by,
        },
    )


def gate_stack_name(candidate_id: str) -> str:
    """The gate's ephemeral stack for a candidate: ``l3-<first 8 of its id>``."""
    return f"l3-{candidate_id[:8]}"
