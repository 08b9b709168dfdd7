"""Traffic providers: the layer that really gives a canary its share.

One small interface, :class:`TrafficProvider` — ``set_weight(weight)`` (0..100, idempotent),
``current()`` (the share as the traffic layer holds it now), ``remove()`` (the canary takes no
traffic any more and stackyard's canary objects are gone; idempotent) — and four providers:

- :class:`GatewayApiRoute` — the weights of an HTTPRoute's ``backendRefs`` (stable Service vs canary
  Service), ``gateway.networking.k8s.io/v1``. The route is created and owned by stackyard (label
  ``app.kubernetes.io/managed-by: stackyard``), or adopted when named (``adopt=True``: its rules that
  send to the stable Service get a canary backendRef beside it; nothing else is touched).
- :class:`IngressNginxCanary` — a second Ingress ``<stable ingress>-canary`` with
  ``nginx.ingress.kubernetes.io/canary: "true"`` and ``canary-weight``, mirroring the stable Ingress's
  hosts and paths that send to the stable Service, to the canary Service.
- :class:`Route53Weighted` — weighted record sets (SetIdentifier ``stable``/``canary``) between the
  legacy endpoint and the Kubernetes ingress, ``change_resource_record_sets`` UPSERT (boto3).
- :class:`ReplicaRatio` — no traffic layer: the canary Deployment's pods sit behind the stable
  Service, so its share is approximately its pod share. An approximation, said as such.

Objects a provider did not create are never deleted; an existing object of the same name that
stackyard does not own is refused (adopt it by naming it), so nothing of someone else is lost.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

from stackyard.exceptions import ConflictError, InputError, NotFoundError

__all__ = ["GatewayApiRoute", "IngressNginxCanary", "ReplicaRatio", "Route53Weighted", "TrafficProvider",
           "MANAGED_BY"]

LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_BY = "stackyard"
NGINX_CANARY = "nginx.ingress.kubernetes.io/canary"
NGINX_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
GATEWAY_GROUP, GATEWAY_VERSION, HTTPROUTES = "gateway.networking.k8s.io", "v1", "httproutes"


@runtime_checkable
class TrafficProvider(Protocol):
    name: str

    def set_weight(self, weight: int) -> None: ...

    def current(self) -> int: ...

    def remove(self) -> None: ...


def _check_weight(weight: object) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise InputError(f"canary weight {weight!r}: expected an integer from 0 to 100")
    return weight


def _owned(obj: dict[str, Any]) -> bool:
    return (obj.get("metadata", {}).get("labels") or {}).get(LABEL_MANAGED) == MANAGED_BY


def _api_exception():
    from kubernetes.client.exceptions import ApiException

    return ApiException


# --- gateway-api ------------------------------------------------------------------------------------


class GatewayApiRoute:
    """An HTTPRoute splitting ``stable_service`` and ``canary_service`` (same ``port``) by weight.

    Created by stackyard: one rule (``hostnames`` and ``path_prefix``) attached to ``gateway``
    (``[namespace/]name``). Adopted (``adopt=True``): the route must exist and have at least one rule
    sending to the stable Service."""

    name = "gateway-api"

    def __init__(self, api_client: Any, *, namespace: str, route: str, stable_service: str,
                 canary_service: str, port: int, gateway: str | None = None, hostnames: tuple[str, ...] = (),
                 path_prefix: str = "/", adopt: bool = False) -> None:
        from kubernetes.client import CustomObjectsApi

        if not adopt and not gateway:
            raise InputError(f"gateway-api: route {route} is created by stackyard and needs a gateway to attach to")
        self.api = CustomObjectsApi(api_client)
        self.namespace, self.route, self.adopt = namespace, route, adopt
        self.stable, self.canary, self.port = stable_service, canary_service, port
        self.gateway, self.hostnames, self.path_prefix = gateway, tuple(hostnames), path_prefix

    def _where(self) -> str:
        return f"gateway-api: HTTPRoute {self.namespace}/{self.route}"

    def _read(self) -> dict[str, Any] | None:
        try:
            return self.api.get_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.namespace,
                                                         HTTPROUTES, self.route)
        except _api_exception() as exc:
            if exc.status == 404:
                return None
            raise

    def _backend(self, service: str, weight: int) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": service, "port": self.port, "weight": weight}

    def _is(self, ref: dict[str, Any], service: str) -> bool:
        return ref.get("name") == service and ref.get("kind", "Service") == "Service" and ref.get("group", "") == ""

    def _new(self, weight: int) -> dict[str, Any]:
        gw_namespace, _, gw_name = (self.gateway or "").rpartition("/")
        parent = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gw_name}
        if gw_namespace:
            parent["namespace"] = gw_namespace
        spec: dict[str, Any] = {
            "parentRefs": [parent],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": self.path_prefix}}],
                       "backendRefs": [self._backend(self.stable, 100 - weight), self._backend(self.canary, weight)]}],
        }
        if self.hostnames:
            spec["hostnames"] = list(self.hostnames)
        return {"apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}", "kind": "HTTPRoute",
                "metadata": {"name": self.route, "namespace": self.namespace, "labels": {LABEL_MANAGED: MANAGED_BY}},
                "spec": spec}

    def _split(self, route: dict[str, Any], weight: int | None) -> dict[str, Any]:
        """The route with every rule that sends to the stable Service split ``100-w``/``w``
        (``weight=None``: the canary backendRef dropped, stable back to 100 — its share restored)."""
        touched = 0
        for rule in route.get("spec", {}).get("rules") or []:
            refs = rule.get("backendRefs") or []
            if not any(self._is(ref, self.stable) for ref in refs):
                continue
            touched += 1
            kept = [ref for ref in refs if not self._is(ref, self.canary)]
            for ref in kept:
                if self._is(ref, self.stable):
                    ref["weight"] = 100 if weight is None else 100 - weight
            if weight is not None:
                kept.append(self._backend(self.canary, weight))
            rule["backendRefs"] = kept
        if not touched:
            raise InputError(f"{self._where()}: no rule sends to the stable Service {self.stable}")
        return route

    def set_weight(self, weight: int) -> None:
        weight = _check_weight(weight)
        route = self._read()
        if route is None:
            if self.adopt:
                raise NotFoundError(f"{self._where()}: named to be adopted, but it does not exist")
            try:
                self.api.create_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.namespace,
                                                         HTTPROUTES, self._new(weight))
            except _api_exception() as exc:
                if exc.status == 409:
                    raise ConflictError(f"{self._where()}: created by someone else meanwhile") from None
                if exc.status == 404:
                    raise NotFoundError(f"{self._where()}: namespace missing, or the cluster has no Gateway API "
                                        "(CRD httproutes.gateway.networking.k8s.io)") from None
                raise
            return
        if not self.adopt and not _owned(route):
            raise ConflictError(f"{self._where()} exists and is not managed by stackyard; "
                                "name it to adopt it (adopt: true) or choose another route name")
        self._replace(self._split(route, weight))

    def _replace(self, route: dict[str, Any]) -> None:
        # the body carries the resourceVersion read: a concurrent change fails (409), it is never lost
        try:
            self.api.replace_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.namespace, HTTPROUTES,
                                                      self.route, route)
        except _api_exception() as exc:
            if exc.status == 409:
                raise ConflictError(f"{self._where()} changed while its weights were set; retry") from None
            raise

    def current(self) -> int:
        route = self._read()
        if route is None:
            return 0
        for rule in route.get("spec", {}).get("rules") or []:
            refs = rule.get("backendRefs") or []
            if any(self._is(ref, self.stable) for ref in refs):
                total = sum(int(ref.get("weight", 1)) for ref in refs)
                canary = sum(int(ref.get("weight", 1)) for ref in refs if self._is(ref, self.canary))
                return round(100 * canary / total) if total else 0
        return 0

    def remove(self) -> None:
        route = self._read()
        if route is None:
            return
        if not self.adopt and not _owned(route):
            raise ConflictError(f"{self._where()} exists and is not managed by stackyard; not touching it")
        # the route stays (it is what sends traffic to stable); only the canary backendRef goes
        self._replace(self._split(route, None))


# --- ingress-nginx ----------------------------------------------------------------------------------


class IngressNginxCanary:
    """``<stable_ingress>-canary``: the stable Ingress's rules that send to ``stable_service``, sent to
    ``canary_service`` (same port), with ingress-nginx's canary annotations."""

    name = "ingress-nginx"

    def __init__(self, api_client: Any, *, namespace: str, stable_ingress: str, stable_service: str,
                 canary_service: str, canary_ingress: str | None = None) -> None:
        from kubernetes.client import NetworkingV1Api

        self.api = NetworkingV1Api(api_client)
        self.client = api_client
        self.namespace, self.stable_ingress = namespace, stable_ingress
        self.stable, self.canary = stable_service, canary_service
        self.canary_ingress = canary_ingress or f"{stable_ingress}-canary"

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.api.read_namespaced_ingress(name, self.namespace, _preload_content=False).data)
        except _api_exception() as exc:
            if exc.status == 404:
                return None
            raise

    def _mirror(self, stable: dict[str, Any], weight: int) -> dict[str, Any]:
        rules = []
        for rule in stable.get("spec", {}).get("rules") or []:
            paths = []
            for path in (rule.get("http") or {}).get("paths") or []:
                service = (path.get("backend") or {}).get("service") or {}
                if service.get("name") != self.stable:
                    continue
                paths.append({**path, "backend": {"service": {**service, "name": self.canary}}})
            if paths:
                rules.append({**({"host": rule["host"]} if rule.get("host") else {}), "http": {"paths": paths}})
        if not rules:
            raise InputError(f"ingress-nginx: Ingress {self.namespace}/{self.stable_ingress} has no path "
                             f"sending to the stable Service {self.stable}")
        spec: dict[str, Any] = {"rules": rules}
        if stable["spec"].get("ingressClassName"):
            spec["ingressClassName"] = stable["spec"]["ingressClassName"]
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": self.canary_ingress, "namespace": self.namespace,
                             "labels": {LABEL_MANAGED: MANAGED_BY},
                             "annotations": {NGINX_CANARY: "true", NGINX_WEIGHT: str(weight)}},
                "spec": spec}

    def set_weight(self, weight: int) -> None:
        weight = _check_weight(weight)
        stable = self._read(self.stable_ingress)
        if stable is None:
            raise NotFoundError(f"ingress-nginx: the stable Ingress {self.namespace}/{self.stable_ingress} "
                                "does not exist")
        body = self._mirror(stable, weight)
        existing = self._read(self.canary_ingress)
        if existing is None:
            try:
                self.api.create_namespaced_ingress(self.namespace, body)
            except _api_exception() as exc:
                if exc.status == 409:
                    raise ConflictError(f"ingress-nginx: Ingress {self.canary_ingress} created meanwhile") from None
                raise
            return
        if not _owned(existing):
            raise ConflictError(f"ingress-nginx: Ingress {self.namespace}/{self.canary_ingress} exists and is "
                                "not managed by stackyard; not touching it")
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        try:
            self.api.replace_namespaced_ingress(self.canary_ingress, self.namespace, body)
        except _api_exception() as exc:
            if exc.status == 409:
                raise ConflictError(f"ingress-nginx: Ingress {self.canary_ingress} changed meanwhile; retry") from None
            raise

    def current(self) -> int:
        existing = self._read(self.canary_ingress)
        if existing is None or not _owned(existing):
            return 0
        annotations = existing["metadata"].get("annotations") or {}
        if annotations.get(NGINX_CANARY) != "true":
            return 0
        try:
            return int(annotations.get(NGINX_WEIGHT, "0"))
        except ValueError:
            raise InputError(f"ingress-nginx: Ingress {self.canary_ingress}: {NGINX_WEIGHT} "
                             f"{annotations.get(NGINX_WEIGHT)!r} is not an integer") from None

    def remove(self) -> None:
        existing = self._read(self.canary_ingress)
        if existing is None:
            return
        if not _owned(existing):
            raise ConflictError(f"ingress-nginx: Ingress {self.namespace}/{self.canary_ingress} is not "
                                "managed by stackyard; not deleting it")
        try:
            self.api.delete_namespaced_ingress(self.canary_ingress, self.namespace)
        except _api_exception() as exc:
            if exc.status != 404:
                raise


# --- route53 ----------------------------------------------------------------------------------------


class Route53Weighted:
    """Two weighted record sets of ``record_name``/``record_type`` in ``zone_id``: ``stable`` (the legacy
    endpoint, weight ``100-w``) and ``canary`` (the Kubernetes ingress, weight ``w``). ``client`` is a
    boto3 ``route53`` client (from the AWS connection)."""

    name = "route53"

    def __init__(self, client: Any, *, zone_id: str, record_name: str, stable_value: str, canary_value: str,
                 record_type: str = "CNAME", ttl: int = 60, stable_id: str = "stable",
                 canary_id: str = "canary") -> None:
        if not record_name or not stable_value or not canary_value:
            raise InputError("route53: record_name, stable_value and canary_value are all required")
        self.client, self.zone_id = client, zone_id
        self.record_name = record_name if record_name.endswith(".") else record_name + "."
        self.record_type, self.ttl = record_type, ttl
        self.stable_value, self.canary_value = stable_value, canary_value
        self.stable_id, self.canary_id = stable_id, canary_id

    def _record(self, identifier: str, value: str, weight: int) -> dict[str, Any]:
        return {"Name": self.record_name, "Type": self.record_type, "SetIdentifier": identifier, "Weight": weight,
                "TTL": self.ttl, "ResourceRecords": [{"Value": value}]}

    def _change(self, changes: list[dict[str, Any]], comment: str) -> None:
        self.client.change_resource_record_sets(HostedZoneId=self.zone_id,
                                                ChangeBatch={"Comment": comment, "Changes": changes})

    def _sets(self) -> dict[str, dict[str, Any]]:
        """The weighted sets of this name and type, by SetIdentifier."""
        found: dict[str, dict[str, Any]] = {}
        kwargs = {"HostedZoneId": self.zone_id, "StartRecordName": self.record_name,
                  "StartRecordType": self.record_type}
        while True:
            page = self.client.list_resource_record_sets(**kwargs)
            for item in page["ResourceRecordSets"]:
                if item["Name"] != self.record_name or item["Type"] != self.record_type:
                    return found
                if "SetIdentifier" in item:
                    found[item["SetIdentifier"]] = item
            if not page.get("IsTruncated"):
                return found
            kwargs = {"HostedZoneId": self.zone_id, "StartRecordName": page["NextRecordName"],
                      "StartRecordType": page["NextRecordType"]}
            if page.get("NextRecordIdentifier"):
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def set_weight(self, weight: int) -> None:
        weight = _check_weight(weight)
        # one batch: Route 53 applies both or neither, so the shares always add up to 100
        self._change([{"Action": "UPSERT", "ResourceRecordSet": self._record(self.stable_id, self.stable_value,
                                                                             100 - weight)},
                      {"Action": "UPSERT", "ResourceRecordSet": self._record(self.canary_id, self.canary_value,
                                                                             weight)}],
                     f"stackyard canary: {weight}% to {self.canary_value}")

    def current(self) -> int:
        sets = self._sets()
        canary = int(sets.get(self.canary_id, {}).get("Weight", 0))
        total = canary + int(sets.get(self.stable_id, {}).get("Weight", 0))
        return round(100 * canary / total) if total else 0

    def remove(self) -> None:
        sets = self._sets()
        changes = [{"Action": "UPSERT", "ResourceRecordSet": self._record(self.stable_id, self.stable_value, 100)}]
        if self.canary_id in sets:  # DELETE must name the set exactly as it is
            changes.append({"Action": "DELETE", "ResourceRecordSet": sets[self.canary_id]})
        self._change(changes, "stackyard canary removed")


# --- replicas ---------------------------------------------------------------------------------------


class ReplicaRatio:
    """The canary Deployment behind the stable Service, scaled to ``round(total * w / 100)`` pods (at
    least 1 while ``w > 0``), ``total`` being the stable Deployment's replicas. The Service balances
    per connection over all ready pods, so the canary's share is about ``n / (total + n)`` — an
    approximation; ``current()`` reports that pod share, not the weight asked for."""

    name = "replicas"

    def __init__(self, api_client: Any, *, namespace: str, stable_deployment: str, canary_deployment: str) -> None:
        from kubernetes.client import AppsV1Api

        self.api = AppsV1Api(api_client)
        self.namespace, self.stable, self.canary = namespace, stable_deployment, canary_deployment

    def _replicas(self, name: str) -> int:
        try:
            scale = self.api.read_namespaced_deployment_scale(name, self.namespace)
        except _api_exception() as exc:
            if exc.status == 404:
                raise NotFoundError(f"replicas: Deployment {self.namespace}/{name} does not exist") from None
            raise
        return int(scale.spec.replicas or 0)

    @staticmethod
    def canary_replicas(total: int, weight: int) -> int:
        return 0 if weight == 0 else max(1, round(total * weight / 100))

    def _scale(self, replicas: int) -> None:
        try:
            self.api.patch_namespaced_deployment_scale(self.canary, self.namespace, {"spec": {"replicas": replicas}})
        except _api_exception() as exc:
            if exc.status == 404:
                raise NotFoundError(f"replicas: the canary Deployment {self.namespace}/{self.canary} "
                                    "does not exist") from None
            raise

    def set_weight(self, weight: int) -> None:
        weight = _check_weight(weight)
        total = self._replicas(self.stable)
        if total == 0 and weight:
            raise InputError(f"replicas: the stable Deployment {self.namespace}/{self.stable} has 0 replicas; "
                             "a pod share cannot be set")
        self._scale(self.canary_replicas(total, weight))

    def current(self) -> int:
        canary = self._replicas(self.canary)
        total = self._replicas(self.stable) + canary
        return round(100 * canary / total) if total else 0

    def remove(self) -> None:
        try:
            self._scale(0)
        except NotFoundError:
            pass  # already gone (the canary release was uninstalled)
