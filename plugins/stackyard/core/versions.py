"""Chart versions exactly as helm accepts, compares and orders them.

helm 4 parses a chart's ``version`` with Masterminds/semver v3 (``NewVersion``), measured with
``helm package`` (4.1.4): an optional leading ``v``; one to three numeric parts, missing ones
read as 0 (``1.2`` is 1.2.0, leading zeros allowed: ``01.2.3``); an optional pre-release and
build metadata as in SemVer 2 (dot-separated ``[0-9A-Za-z-]`` identifiers, a numeric
pre-release identifier without leading zeros); each number at most 2^64 - 1. So ``v1.19.0``,
``1.2`` and ``1.2.3-rc.1+build`` are chart versions; ``V1.2.3``, ``1.2.3.4``, ``1.2.3-01`` and
``1.2.3+b..1`` are not.

The text a chart declares is kept as it is (:attr:`ChartVersion.text`, ``str()``): manifests,
the registry and the UI show ``v1.19.0``, never a normalised ``1.19.0``. Precedence is SemVer 2's
(section 11), on the numbers: ``v1.2`` = ``1.2.0`` < ``1.2.1-rc.1`` < ``1.2.1``; pre-release
identifiers compare left to right, numeric ones numerically and below alphanumeric ones, a
longer list winning a tie; build metadata is ignored (``1.0.0+a`` = ``1.0.0+b`` in order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stackyard.exceptions import InputError

_NUMBER = r"[0-9]+"
_PRERELEASE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_BODY = (rf"v?({_NUMBER})(?:\.({_NUMBER}))?(?:\.({_NUMBER}))?"
         rf"(?:-({_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?"
         rf"(?:\+({_BUILD_ID}(?:\.{_BUILD_ID})*))?")
#: For JSON-schema ``pattern`` (a search, as DAG params use it): anchored, and ``(?!\n)`` so that
#: Python's ``$`` cannot stop before a final newline. Tasks check with :func:`parse_semver`.
SEMVER_PATTERN = rf"^{_BODY}$(?!\n)"
_VERSION = re.compile(_BODY)
_MAX_NUMBER = 2**64 - 1  # Masterminds parses each part as uint64

PrecedenceKey = tuple[int, int, int, tuple[tuple[int, int, str], ...]]


@dataclass(frozen=True)
class SemVer:
    """One chart version: its numbers for ordering and the text it was written as.

    Equality is textual identity (``v1.2.0`` and ``1.2.0`` are two versions of equal
    precedence, like ``1.0.0+a`` and ``1.0.0+b``); use :attr:`precedence` to order.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    text: str = ""

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
        if self.text:
            return self.text
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
    """Parse ``text`` as helm parses a chart version, or raise :class:`InputError` saying why."""
    if not isinstance(text, str):
        raise InputError(f"version must be a string, got {type(text).__name__}")
    match = _VERSION.fullmatch(text)
    numbers = [int(part) if part else 0 for part in match.groups()[:3]] if match else []
    if match is None or any(number > _MAX_NUMBER for number in numbers):
        raise InputError(
            f"{text!r} is not a semantic version as helm accepts chart versions ([v]MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD], "
            "e.g. 1.4.2, v1.19.0, 1.2.3-rc.1+build.5)"
        )
    prerelease, build = match.group(4), match.group(5)
    return SemVer(
        major=numbers[0],
        minor=numbers[1],
        patch=numbers[2],
        prerelease=tuple(prerelease.split(".")) if prerelease else (),
        build=tuple(build.split(".")) if build else (),
        text=text,
    )


def is_semver(text: object) -> bool:
    """Whether ``text`` is a string helm accepts as a chart version."""
    if not isinstance(text, str) or _VERSION.fullmatch(text) is None:
        return False
    try:
        parse_semver(text)
    except InputError:
        return False
    return True


def compare_semver(left: str | SemVer, right: str | SemVer) -> int:
    """-1, 0 or 1 as ``left`` has lower, equal or higher precedence than ``right``.

    0 does not mean identical: ``1.0.0+a`` and ``1.0.0+b``, or ``v1.2`` and ``1.2.0``, have
    equal precedence.
    """
    left_key = _as_semver(left).precedence
    right_key = _as_semver(right).precedence
    return (left_key > right_key) - (left_key < right_key)


def semver_sort_key(text: str) -> PrecedenceKey:
    """Key for ``sorted(versions, key=semver_sort_key)``: lowest precedence first."""
    return parse_semver(text).precedence


def _as_semver(version: str | SemVer) -> SemVer:
    return version if isinstance(version, SemVer) else parse_semver(version)
