"""Every name stackyard checks, defined once: Kubernetes names, services, stacks, profiles.

Checks are always a full match (``re.fullmatch``): ``$`` alone also matches before a final
newline, which once let ``"evil\\n"`` through. The ``*_PATTERN`` strings are for JSON-schema
``pattern`` (DAG params, forms), which is a *search*: they are anchored ``^...$`` and end with
``(?!\\n)`` so that Python's ``$`` cannot stop before a trailing newline (a no-op in JavaScript,
where ``$`` already means the end). Tasks still check with the functions here.
"""

from __future__ import annotations

import re

from stackyard.exceptions import InputError

#: Kubernetes limits (RFC 1123): a label is at most 63 characters, a subdomain 253.
DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
#: helm's limit on release names (a service's release is named after it; canaries add "-canary").
RELEASE_NAME_MAX = 53

_LABEL_BODY = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_SUBDOMAIN_BODY = rf"{_LABEL_BODY}(\.{_LABEL_BODY})*"
_CONNECTION_ID_BODY = r"[A-Za-z0-9_.-]{1,250}"
_ROLE_OR_USER_BODY = r"[A-Za-z0-9][A-Za-z0-9_.@ -]{0,99}"


def _schema_pattern(body: str) -> str:
    return rf"^{body}$(?!\n)"


#: For JSON-schema ``pattern`` (a search): a DNS-1123 label, which services, stacks and profiles are.
DNS_LABEL_PATTERN = _schema_pattern(_LABEL_BODY)
SERVICE_NAME_PATTERN = DNS_LABEL_PATTERN
STACK_NAME_PATTERN = DNS_LABEL_PATTERN
PROFILE_NAME_PATTERN = DNS_LABEL_PATTERN
DNS_SUBDOMAIN_PATTERN = _schema_pattern(_SUBDOMAIN_BODY)

_DNS_LABEL = re.compile(_LABEL_BODY)
_DNS_SUBDOMAIN = re.compile(_SUBDOMAIN_BODY)
_CONNECTION_ID = re.compile(_CONNECTION_ID_BODY)
_ROLE_OR_USER = re.compile(_ROLE_OR_USER_BODY)

_LABEL_RULE = "lowercase letters, digits and '-', starting and ending alphanumeric, at most 63"


def is_dns_label(value: object) -> bool:
    return isinstance(value, str) and len(value) <= DNS_LABEL_MAX and _DNS_LABEL.fullmatch(value) is not None


_LABEL_CHARACTERS = re.compile(r"[-a-z0-9\n]*")


def all_dns_labels(values: list[str]) -> bool:
    """Whether every string of ``values`` is a DNS-1123 label, as :func:`is_dns_label` decides,
    in a few C-speed passes over the joined list (a registry may list tens of thousands of
    services; tests compare the two). A value holding a newline cannot pass: the joined text
    would then have more newlines than separators."""
    if not values:
        return False
    joined = "\n".join(values)
    return (joined.count("\n") == len(values) - 1 and max(map(len, values)) <= DNS_LABEL_MAX
            and _LABEL_CHARACTERS.fullmatch(joined) is not None and "\n\n" not in joined
            and "\n-" not in joined and "-\n" not in joined
            and joined[:1] not in ("", "-", "\n") and joined[-1:] not in ("-", "\n"))


def is_dns_subdomain(value: object) -> bool:
    return (isinstance(value, str) and len(value) <= DNS_SUBDOMAIN_MAX
            and _DNS_SUBDOMAIN.fullmatch(value) is not None)


def is_connection_id(value: object) -> bool:
    return isinstance(value, str) and _CONNECTION_ID.fullmatch(value) is not None


def is_role_or_user(value: object) -> bool:
    return isinstance(value, str) and _ROLE_OR_USER.fullmatch(value) is not None


def dns_label(value: object, where: str) -> str:
    """``value`` if it is a DNS-1123 label, else InputError ``<where>: ... is not a DNS-1123 label``."""
    if not is_dns_label(value):
        raise InputError(f"{where}: {value!r} is not a DNS-1123 label ({_LABEL_RULE})")
    return value  # type: ignore[return-value]


def dns_subdomain(value: object, where: str) -> str:
    if not is_dns_subdomain(value):
        raise InputError(f"{where}: {value!r} is not a DNS-1123 subdomain (dot-separated labels, at most 253)")
    return value  # type: ignore[return-value]


def service_name(value: object, where: str = "service") -> str:
    """A service name: a DNS-1123 label (it names helm releases and Kubernetes objects)."""
    return dns_label(value, where)


def stack_name(value: object, where: str = "name") -> str:
    """A stack name: a DNS-1123 label (it is the stack's namespace by default)."""
    return dns_label(value, where)


def profile_name(value: object, where: str = "profile") -> str:
    """A profile name: a DNS-1123 label (the folder ``profiles/<name>/`` of a chart)."""
    return dns_label(value, where)


#: Namespaces a stack may never use: the cluster's own.
SYSTEM_NAMESPACE_PREFIXES = ("kube-", "openshift-")
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
#: The L3 gate's namespaces: ``l3-<candidate id>`` (and ``l3``, its release).
GATE_NAMESPACE_PREFIX = "l3-"


def namespace_problem(namespace: str) -> str | None:
    """Why ``namespace`` belongs to the cluster or the gate (None when it is free to use)."""
    if namespace in SYSTEM_NAMESPACES or namespace.startswith(SYSTEM_NAMESPACE_PREFIXES):
        return f"{namespace!r} is a system namespace (kube-*, openshift-*, default)"
    if namespace == "l3" or namespace.startswith(GATE_NAMESPACE_PREFIX):
        return f"{namespace!r} is reserved for the L3 gate's stacks (l3-*)"
    return None


# --- what forms accept besides names: links and free text -------------------------------------------

#: Links people click in the UI and the reports (``ci_url``): http(s) only, no spaces.
MAX_URL = 2000
_HTTP_URL_BODY = r"https?://[^\s/?#]+[^\s]*"
HTTP_URL_PATTERN = _schema_pattern(_HTTP_URL_BODY)
_HTTP_URL = re.compile(_HTTP_URL_BODY)
#: Free text a form takes (``requested_by``, ``owner``): stored and shown, so bounded.
MAX_FREE_TEXT = 200


def http_url(value: object, where: str) -> str:
    """``value`` if it is an http(s) URL of at most MAX_URL characters, else InputError."""
    if not isinstance(value, str) or len(value) > MAX_URL or _HTTP_URL.fullmatch(value) is None:
        raise InputError(f"{where}: expected an http(s) URL of at most {MAX_URL} characters, got {_cut(value)}")
    return value


def free_text(value: object, where: str, limit: int = MAX_FREE_TEXT) -> str:
    """``value`` if it is text of 1 to ``limit`` characters without control characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > limit or not value.isprintable():
        raise InputError(f"{where}: expected printable text of 1 to {limit} characters, got {_cut(value)}")
    return value


def _cut(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}... ({len(value) if isinstance(value, str) else '?'} characters)"
