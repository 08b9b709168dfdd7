"""The loopback OCI registry of the tests: the same starter local mode uses (:mod:`dev.oci_registry`)."""

from dev.oci_registry import free_port, local_oci_registry  # noqa: F401
