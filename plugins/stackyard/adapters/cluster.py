"""Cluster objects through a kubernetes ``ApiClient``: discovery (which kinds are cluster-scoped),
reading an object by kind and name, and stackyard's server-side apply of CRDs.

The scope of a kind comes from the cluster's own discovery (``/api``, ``/apis`` and each
group-version's resource list, ``namespaced``), never from a list of kinds kept here: a real
cluster serves kinds nobody here knows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from stackyard.core.cluster_objects import CRD_API_GROUP, FIELD_MANAGER, LABEL_CRD_MANAGED, Rendered
from stackyard.exceptions import UnavailableError

_CRDS = f"/apis/{CRD_API_GROUP}/v1/customresourcedefinitions"


class Cluster:
    def __init__(self, api_client: Any) -> None:
        self.api = api_client

    # -- discovery ---------------------------------------------------------------------------
    @cached_property
    def _resources(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(group, kind) → {namespaced, path} for every kind the cluster serves (preferred
        version of each group; a kind served only in another version is found on demand)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        self._add_resources(found, "", "/api/v1")
        for group in self._get("/apis").get("groups") or []:
            for version in group.get("versions") or []:
                self._add_resources(found, group["name"], f"/apis/{version['groupVersion']}")
        return found

    def _add_resources(self, found: dict, group: str, path: str) -> None:
        try:
            listing = self._get(path)
        except _NotFound:
            return  # a group-version that vanished between the two calls
        for resource in listing.get("resources") or []:
            if "/" in resource.get("name", ""):
                continue  # subresources (pods/log) are not kinds of their own
            found.setdefault((group, resource["kind"]), {
                "namespaced": bool(resource.get("namespaced")), "path": f"{path}/{resource['name']}",
            })

    def scope(self, group: str, kind: str) -> bool | None:
        """True if ``kind`` of ``group`` is namespaced, False if cluster-scoped, None if not served."""
        entry = self._resources.get((group, kind))
        return None if entry is None else entry["namespaced"]

    # -- objects -----------------------------------------------------------------------------
    def get_cluster_object(self, obj: Rendered) -> dict[str, Any] | None:
        """The live cluster-scoped object ``obj`` names, or None if it does not exist."""
        entry = self._resources.get((obj.group, obj.kind))
        if entry is None:
            return None
        try:
            return self._get(f"{entry['path']}/{obj.name}")
        except _NotFound:
            return None

    def get_crd(self, name: str) -> dict[str, Any] | None:
        try:
            return self._get(f"{_CRDS}/{name}")
        except _NotFound:
            return None

    def stackyard_crds(self) -> list[dict[str, Any]]:
        return self._get(_CRDS, query=[("labelSelector", f"{LABEL_CRD_MANAGED}=true")]).get("items") or []

    def apply_crd(self, body: Mapping[str, Any], *, wait_seconds: float = 60.0) -> dict[str, Any]:
        """Server-side apply as field manager ``stackyard`` (taking over fields another manager,
        e.g. an old helm release, set), then wait until the API server serves it (Established)."""
        name = body["metadata"]["name"]
        applied = self._call(
            "PATCH", f"{_CRDS}/{name}", query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=dict(body), content_type="application/apply-patch+yaml",  # the client serializes it (JSON is YAML)
        )
        deadline = time.monotonic() + wait_seconds
        while True:
            conditions = (applied.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                self.__dict__.pop("_resources", None)  # discovery changed
                return applied
            if time.monotonic() > deadline:
                raise UnavailableError(f"CRD {name} was applied but not Established within {wait_seconds:.0f}s")
            time.sleep(0.5)
            applied = self._get(f"{_CRDS}/{name}")

    # -- plumbing ----------------------------------------------------------------------------
    def _get(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        return self._call("GET", path, query=query)

    def _call(self, method: str, path: str, *, query=None, body: dict[str, Any] | None = None,
              content_type: str = "application/json") -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self.api.call_api(
                path, method, query_params=query or [], body=body,
                header_params={"Accept": "application/json", "Content-Type": content_type},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
            )
        except ApiException as exc:
            if exc.status == 404:
                raise _NotFound(path) from None
            raise
        return json.loads(response.data or b"{}")


class _NotFound(LookupError):
    pass
