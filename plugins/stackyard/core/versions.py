"""Semantic Versioning 2.0.0 parsing and precedence, as Helm requires of chart versions.

Strict on purpose: no leading ``v``, no leading zeros in numeric parts, ASCII only. Build
metadata (``+build.5``) is accepted, kept in :attr:`SemVer.build`, and ignored for ordering,
as the specification says (section 10). Precedence rules (section 11):

1. major, minor and patch compare numerically;
2. a pre-release version ranks below the same version without one (``1.0.0-rc.1 < 1.0.0``);
3. pre-release identifiers compare left to right: numeric ones numerically, others in ASCII
   order, numeric below alphanumeric, and a longer list wins when all shared ones are equal.
"""

from __future__ import annotations

from functools import lru_cache

import re
from dataclasses import dataclass

from stackyard.exceptions import InputError

# The regular expression published with the specification, with \d narrowed to ASCII digits.
# Public (anchored) so forms can validate with the same rule, e.g. a DAG Param's pattern.
SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_SEMVER = re.compile(SEMVER_PATTERN)

PrecedenceKey = tuple[int, int, int, tuple[tuple[int, int, str], ...]]


@dataclass(frozen=True)
class SemVer:
    """One parsed version. Equality is textual identity; use :attr:`precedence` to order."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @property
    def precedence(self) -> PrecedenceKey:
        """A sort key implementing the specification's precedence (build metadata ignored)."""
        # A release gets a marker that sorts after every pre-release identifier list.
        release_marker = ((2, 0, ""),)
        identifiers = (
            tuple(_identifier_key(part) for part in self.prerelease)
            if self.prerelease
            else release_marker
        )
        return (self.major, self.minor, self.patch, identifiers)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def _identifier_key(identifier: str) -> tuple[int, int, str]:
    # Numeric identifiers (0) rank below alphanumeric ones (1); the marker for "no
    # pre-release" (2) ranks above both, so a release outranks all its pre-releases.
    if identifier.isdigit():
        return (0, int(identifier), "")
    return (1, 0, identifier)


def parse_semver(text: str) -> SemVer:
    """Parse ``text`` as a SemVer 2.0.0 version, or raise :class:`InputError` saying why."""
    if not isinstance(text, str):
        raise InputError(f"version must be a string, got {type(text).__name__}")
    match = _SEMVER.fullmatch(text)
    if match is None:
        raise InputError(
            f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], "
            "no leading 'v' or zeros)"
        )
    major, minor, patch, prerelease, build = match.groups()
    return SemVer(
        major=int(major),
        minor=int(minor),
        patch=int(patch),
        prerelease=tuple(prerelease.split(".")) if prerelease else (),
        build=tuple(build.split(".")) if build else (),
    )


def is_semver(text: object) -> bool:
    """Whether ``text`` is a string holding a valid SemVer 2.0.0 version."""
    return isinstance(text, str) and _SEMVER.fullmatch(text) is not None


def compare_semver(left: str | SemVer, right: str | SemVer) -> int:
    """-1, 0 or 1 as ``left`` has lower, equal or higher precedence than ``right``.

    0 does not mean identical: ``1.0.0+a`` and ``1.0.0+b`` have equal precedence.
    """
    left_key = _as_semver(left).precedence
    right_key = _as_semver(right).precedence
    return (left_key > right_key) - (left_key < right_key)


def semver_sort_key(text: str) -> PrecedenceKey:
    """Key for ``sorted(versions, key=semver_sort_key)``: lowest precedence first."""
    return parse_semver(text).precedence


def _as_semver(version: str | SemVer) -> SemVer:
    return version if isinstance(version, SemVer) else _parsed(version)


@lru_cache(maxsize=8192)
def _parsed(text: str) -> SemVer:
    # A fleet view compares the same few hundred version strings tens of thousands of times;
    # SemVer is immutable, so one parse per string is enough.
    return parse_semver(text)
