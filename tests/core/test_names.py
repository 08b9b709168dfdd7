"""One definition of every name rule: full matches only, and patterns that hold as JSON-schema searches."""

from __future__ import annotations

import re

import pytest

from stackyard.core import names
from stackyard.exceptions import InputError

LABELS_GOOD = ["a", "a1", "a-b", "0", "x" * 63]
LABELS_BAD = ["", "A", "-a", "a-", "a_b", "a.b", "x" * 64, "evil\n", "\nevil", "ev il", "é", None, 5]


@pytest.mark.parametrize("value", LABELS_GOOD)
def test_dns_labels(value):
    assert names.is_dns_label(value) and names.dns_label(value, "name") == value
    assert re.search(names.DNS_LABEL_PATTERN, value)


@pytest.mark.parametrize("value", LABELS_BAD)
def test_not_dns_labels_even_with_a_trailing_newline(value):
    assert not names.is_dns_label(value)
    with pytest.raises(InputError, match=r"^name: .* is not a DNS-1123 label"):
        names.dns_label(value, "name")
    if isinstance(value, str):
        assert not re.search(names.DNS_LABEL_PATTERN, value)  # the pattern as jsonschema uses it: a search


@pytest.mark.parametrize("value, ok", [
    ("a.b", True), ("a", True), ("a..b", False), ("a.b\n", False), (".a", False), ("a." + "b" * 63, True),
    (".".join(["a" * 63] * 3) + "." + "a" * 61, True), (".".join(["a" * 63] * 3) + "." + "a" * 62, False),
])
def test_dns_subdomains(value, ok):
    assert names.is_dns_subdomain(value) is ok
    if ok:
        assert re.search(names.DNS_SUBDOMAIN_PATTERN, value)
    elif len(value) <= 253:  # the pattern checks the form; the length is a maxLength
        assert not re.search(names.DNS_SUBDOMAIN_PATTERN, value)


@pytest.mark.parametrize("namespace, problem", [
    ("kube-system", "system namespace"), ("kube-anything", "system namespace"), ("default", "system namespace"),
    ("openshift-x", "system namespace"), ("l3", "L3 gate"), ("l3-0b6502da", "L3 gate"), ("stage", None), ("l3x", None),
])
def test_namespaces_that_belong_to_the_cluster_or_the_gate(namespace, problem):
    found = names.namespace_problem(namespace)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("value, ok", [
    ("https://ci.example.com/job/1", True), ("http://ci:8080/", True), ("javascript:alert(1)", False),
    ("https://ci/1\n", False), ("ftp://x", False), ("https://", False), ("https://a b", False),
    ("https://x/" + "a" * 2000, False), (None, False),
])
def test_http_urls(value, ok):
    if ok:
        assert names.http_url(value, "ci_url") == value
        assert re.search(names.HTTP_URL_PATTERN, value)
    else:
        with pytest.raises(InputError, match="ci_url: expected an http"):
            names.http_url(value, "ci_url")


@pytest.mark.parametrize("value, ok", [("alice", True), ("CI job #7", True), ("x" * 200, True), ("x" * 201, False),
                                       ("", False), ("bob\nFAKE", False), (7, False)])
def test_free_text_is_bounded_and_printable(value, ok):
    if ok:
        assert names.free_text(value, "requested_by") == value
    else:
        with pytest.raises(InputError, match="requested_by: expected printable text of 1 to 200"):
            names.free_text(value, "requested_by")


def test_a_hundred_kilobyte_value_is_shown_cut_in_the_error():
    with pytest.raises(InputError) as caught:
        names.free_text("x" * 100_000, "requested_by")
    assert len(str(caught.value)) < 200 and "100000 characters" in str(caught.value)
