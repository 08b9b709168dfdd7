"""Chart versions as helm 4 has them (SemVer 2 with helm's leniencies), one table per rule.

The VALID and INVALID tables are also run through the real ``helm package`` in
tests/adapters/test_helm_chart_versions.py, so they say what helm does, not what we guess."""

from __future__ import annotations

import pytest

from stackyard.core.versions import SemVer, compare_semver, is_semver, parse_semver, semver_sort_key
from stackyard.exceptions import InputError

VALID = {
    "three numeric parts": "1.2.3",
    "zeros are numbers": "0.0.0",
    "large numbers": "10.200.3000",
    "pre-release identifiers": "1.0.0-alpha.1",
    "hyphens inside identifiers": "1.0.0-x-y-z.--",
    "alphanumeric identifier may start with a digit": "1.0.0-0a",
    "build metadata": "1.0.0+20130313144700",
    "build metadata may have leading zeros": "1.0.0+001",
    "pre-release and build metadata": "1.0.0-beta+exp.sha.5114f85",
    "leading v (cert-manager's v1.19.0)": "v1.19.0",
    "leading v with pre-release and build": "v1.2.3-rc.1+b.5",
    "missing patch": "1.2",
    "missing minor and patch": "1",
    "leading v, missing patch": "v1.2",
    "missing patch with a pre-release": "1.2-rc.1",
    "leading zero in major": "01.2.3",
    "leading zero in minor": "1.02.3",
    "largest uint64": "18446744073709551615.0.0",
}

INVALID = {
    "four parts": "1.2.3.4",
    "capital V": "V1.2.3",
    "two v": "vv1.2.3",
    "only v": "v",
    "trailing dot": "1.",
    "leading dot": ".1",
    "beyond uint64": "18446744073709551616.0.0",
    "leading zero in numeric pre-release identifier": "1.2.3-01",
    "empty pre-release identifier": "1.2.3-alpha..1",
    "empty pre-release": "1.2.3-",
    "empty build metadata": "1.2.3+",
    "underscore": "1.2.3-alpha_1",
    "surrounding whitespace": " 1.2.3",
    "trailing newline": "1.2.3\n",
    "non-ascii digits": "1.2.\u0663",
    "empty string": "",
}


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_valid_versions_parse(text):
    assert is_semver(text)
    assert str(parse_semver(text)) == text


@pytest.mark.parametrize("text", INVALID.values(), ids=INVALID.keys())
def test_invalid_versions_are_refused_with_the_text_in_the_message(text):
    assert not is_semver(text)
    with pytest.raises(InputError, match="not a semantic version"):
        parse_semver(text)


@pytest.mark.parametrize("value", [None, 1, 1.2, b"1.2.3"], ids=["none", "int", "float", "bytes"])
def test_non_strings_are_not_versions(value):
    assert not is_semver(value)
    with pytest.raises(InputError, match="must be a string"):
        parse_semver(value)


def test_parse_splits_all_parts():
    assert parse_semver("1.2.3-rc.1+build.7") == SemVer(1, 2, 3, ("rc", "1"), ("build", "7"), "1.2.3-rc.1+build.7")


@pytest.mark.parametrize("text, parts", [
    ("v1.19.0", (1, 19, 0)), ("1.2", (1, 2, 0)), ("1", (1, 0, 0)), ("01.2.3", (1, 2, 3)), ("v1.2-rc.1", (1, 2, 0)),
])
def test_helm_leniencies_read_as_numbers_and_keep_their_text(text, parts):
    version = parse_semver(text)
    assert (version.major, version.minor, version.patch) == parts
    assert str(version) == text  # shown as declared, never normalised


# Each pair is (lower, higher) by the rule named.
ORDER = {
    "major compares numerically": ("2.0.0", "10.0.0"),
    "minor compares numerically": ("1.2.0", "1.10.0"),
    "patch compares numerically": ("1.0.2", "1.0.10"),
    "pre-release below its release": ("1.0.0-rc.1", "1.0.0"),
    "pre-release of next version above previous release": ("1.0.0", "1.0.1-alpha"),
    "numeric identifiers compare numerically": ("1.0.0-beta.2", "1.0.0-beta.11"),
    "alphanumeric identifiers compare in ascii order": ("1.0.0-alpha", "1.0.0-beta"),
    "uppercase sorts before lowercase in ascii": ("1.0.0-Beta", "1.0.0-alpha"),
    "numeric identifier below alphanumeric": ("1.0.0-1", "1.0.0-alpha"),
    "longer identifier list wins when prefix equal": ("1.0.0-alpha", "1.0.0-alpha.1"),
    "digits-leading alphanumeric is not numeric": ("1.0.0-9", "1.0.0-0a"),
    "a leading v orders by its numbers": ("v1.9.0", "1.10.0"),
    "a short version is padded with zeros": ("1.2", "1.2.1-rc.1"),
    "a leading zero is still the number": ("1.9.0", "01.10.0"),
}


@pytest.mark.parametrize(("lower", "higher"), ORDER.values(), ids=ORDER.keys())
def test_precedence(lower, higher):
    assert compare_semver(lower, higher) == -1
    assert compare_semver(higher, lower) == 1


EQUAL = {
    "identical": ("1.2.3", "1.2.3"),
    "build metadata ignored": ("1.2.3+a", "1.2.3+b"),
    "build metadata ignored against none": ("1.2.3-rc.1+a", "1.2.3-rc.1"),
    "leading v": ("v1.2.3", "1.2.3"),
    "missing parts are zeros": ("1.2", "1.2.0"),
    "leading zeros": ("01.02.03", "1.2.3"),
}


@pytest.mark.parametrize(("left", "right"), EQUAL.values(), ids=EQUAL.keys())
def test_equal_precedence(left, right):
    assert compare_semver(left, right) == 0


def test_the_specification_example_chain_sorts_in_order():
    # The example from section 11 of semver.org.
    chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    assert sorted(reversed(chain), key=semver_sort_key) == chain


def test_compare_accepts_parsed_versions():
    assert compare_semver(parse_semver("1.0.0"), "1.0.1") == -1


def test_compare_refuses_invalid_versions():
    with pytest.raises(InputError):
        compare_semver("1.0.0.0", "1.0.0")
