"""Release leases (``coordination.k8s.io/v1`` Lease ``stackyard-helm-<release>``) and the guard that
takes one around every helm upgrade, rollback and uninstall, recovering an abandoned release first.

The rules are :mod:`stackyard.core.release_recovery`; this module reads and writes the Lease (compare and
swap on its ``resourceVersion``), renews it from a thread while helm runs, and runs the recovery.
A released lease stays (holder cleared, last holder kept in an annotation): it is what proves a
later pending revision was, or was not, written by stackyard.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from stackyard.core.release_recovery import (
    DEFAULT_FOREIGN_GRACE, DEFAULT_LEASE_SECONDS, Action, Holder, LeaseView, Revision, holder_alive,
    lease_name, parse_helm_time, plan_recovery,
)
from stackyard.exceptions import ConflictError, InputError, NotFoundError
from stackyard.adapters.runner import process_alive

if TYPE_CHECKING:
    from stackyard.adapters.helm import Helm

ANNOTATION_HOLDER = "stackyard.io/holder"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def this_host() -> str:
    return socket.gethostname()


class LeaseClient:
    """The Lease objects of one cluster (a ``kubernetes.client.ApiClient``)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes.client import CoordinationV1Api

        self.api = CoordinationV1Api(api_client)

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return json.loads(self.api.read_namespaced_lease(name, namespace, _preload_content=False).data)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create; ConflictError if it exists, NotFoundError if the namespace does not."""
        from kubernetes.client.exceptions import ApiException

        try:
            return json.loads(self.api.create_namespaced_lease(namespace, body, _preload_content=False).data)
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(f"lease {body['metadata']['name']} was just taken") from None
            if exc.status == 404:
                raise NotFoundError(f"namespace {namespace} does not exist") from None
            raise

    def replace(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace at the body's resourceVersion; ConflictError if the lease changed since read."""
        from kubernetes.client.exceptions import ApiException

        name = body["metadata"]["name"]
        try:
            return json.loads(self.api.replace_namespaced_lease(name, namespace, body, _preload_content=False).data)
        except ApiException as exc:
            if exc.status in (409, 404):
                raise ConflictError(f"lease {name} changed since it was read") from None
            raise


def lease_view(lease: dict[str, Any]) -> LeaseView:
    meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
    raw = (meta.get("annotations") or {}).get(ANNOTATION_HOLDER)
    holder = None
    if raw:
        try:
            holder = Holder.from_dict(json.loads(raw))
        except (ValueError, InputError):
            holder = None
    return LeaseView(
        holder=holder, held=bool(spec.get("holderIdentity")),
        acquired=parse_helm_time(spec.get("acquireTime")), renewed=parse_helm_time(spec.get("renewTime")),
        duration_seconds=int(spec.get("leaseDurationSeconds") or DEFAULT_LEASE_SECONDS),
    )


class ReleaseGuard:
    """``with guard(helm, release, namespace, action):`` — hold the release's lease for the
    operation, after recovering it if an earlier operation was interrupted.

    ``record`` receives one dict per recovery (written to the stack's record stream by the
    caller); a live holder is waited for up to ``wait_seconds``, then ConflictError names it.
    """

    def __init__(
        self,
        leases: LeaseClient,
        holder: Holder,
        *,
        record: Callable[[str, dict[str, Any]], None] | None = None,
        log: logging.Logger | None = None,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        wait_seconds: float = DEFAULT_LEASE_SECONDS * 2,
        foreign_grace=DEFAULT_FOREIGN_GRACE,
        clock: Clock = _utc_now,
        poll_seconds: float = 1.0,
    ) -> None:
        self.leases, self.holder = leases, holder
        self.record = record or (lambda namespace, event: None)
        self.log = log or logging.getLogger("stackyard.leases")
        self.lease_seconds, self.wait_seconds, self.foreign_grace = lease_seconds, wait_seconds, foreign_grace
        self.clock, self.poll_seconds = clock, poll_seconds

    @contextmanager
    def __call__(self, helm: Helm, release: str, namespace: str, action: str) -> Iterator[None]:
        taken = self._acquire(release, namespace, action)
        if taken is None:  # no namespace yet: nothing can be pending in it
            yield
            return
        lease, previous = taken
        stop = threading.Event()
        state = {"lease": lease, "release": release}
        renewer = threading.Thread(target=self._renew, args=(namespace, state, stop), daemon=True,
                                   name=f"lease-{release}")
        renewer.start()
        try:
            self._recover(helm, release, namespace, action, previous)
            yield
        finally:
            stop.set()
            renewer.join()
            self._release(namespace, release, state["lease"])

    # -- the lease --------------------------------------------------------------------------------
    def _body(self, release: str, *, resource_version: str | None = None, acquired: datetime | None = None,
              held: bool = True) -> dict[str, Any]:
        now = self.clock()
        meta: dict[str, Any] = {
            "name": lease_name(release),
            "labels": {LABEL_MANAGED: "stackyard"},
            "annotations": {ANNOTATION_HOLDER: json.dumps(self.holder.to_dict(), sort_keys=True)},
        }
        if resource_version:
            meta["resourceVersion"] = resource_version
        spec: dict[str, Any] = {
            "holderIdentity": self.holder.identity if held else None,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": _micro_time(acquired or now),
            "renewTime": _micro_time(now),
        }
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _acquire(self, release: str, namespace: str, action: str) -> tuple[dict[str, Any], LeaseView | None] | None:
        deadline = time.monotonic() + self.wait_seconds
        announced = False
        while True:
            current = self.leases.read(namespace, lease_name(release))
            try:
                if current is None:
                    try:
                        return self.leases.create(namespace, self._body(release)), None
                    except NotFoundError:
                        return None
                view = lease_view(current)
                if view.held and self._alive(view):
                    who = view.holder.describe() if view.holder else current["spec"].get("holderIdentity")
                    if time.monotonic() >= deadline:
                        raise ConflictError(
                            f"helm release {release} in {namespace} is held by {who} (lease "
                            f"{lease_name(release)} renewed {current['spec'].get('renewTime')}); not taking it over "
                            f"from a live operation: {action} again once it has finished"
                        )
                    if not announced:
                        self.log.info("release %s in %s is held by %s; waiting up to %.0fs", release, namespace, who,
                                      self.wait_seconds)
                        announced = True
                    time.sleep(self.poll_seconds)
                    continue
                rv = (current.get("metadata") or {}).get("resourceVersion")
                return self.leases.replace(namespace, self._body(release, resource_version=rv)), view
            except ConflictError as exc:
                if "held by" in str(exc):
                    raise
                continue  # someone else moved first: read again

    def _alive(self, view: LeaseView) -> bool:
        holder = view.holder
        if holder is not None and holder.host == self.holder.host:
            if holder.pid == self.holder.pid:
                return True  # this process: another thread of ours; never take it over
            return holder_alive(view, now=self.clock(), process_alive=process_alive(holder.pid))
        return holder_alive(view, now=self.clock(), process_alive=None)

    def _renew(self, namespace: str, state: dict[str, Any], stop: threading.Event) -> None:
        while not stop.wait(self.lease_seconds / 3):
            lease = state["lease"]
            meta = lease.get("metadata") or {}
            acquired = parse_helm_time((lease.get("spec") or {}).get("acquireTime"))
            try:
                state["lease"] = self.leases.replace(namespace, self._body(
                    state["release"], resource_version=meta.get("resourceVersion"), acquired=acquired))
            except Exception as exc:  # a missed renewal only shortens the lease; helm goes on
                self.log.warning("could not renew lease %s in %s: %s", meta.get("name"), namespace, exc)

    def _release(self, namespace: str, release: str, lease: dict[str, Any]) -> None:
        meta = lease.get("metadata") or {}
        acquired = parse_helm_time((lease.get("spec") or {}).get("acquireTime"))
        try:
            self.leases.replace(namespace, self._body(release, resource_version=meta.get("resourceVersion"),
                                                      acquired=acquired, held=False))
        except Exception as exc:  # the lease expires by itself; our process is gone soon
            self.log.warning("could not release lease %s in %s: %s", meta.get("name"), namespace, exc)

    # -- recovery ---------------------------------------------------------------------------------
    def _recover(self, helm: Helm, release: str, namespace: str, action: str, previous: LeaseView | None) -> None:
        try:
            history = [Revision.from_history_row(row) for row in helm.history(release, namespace=namespace)]
        except NotFoundError:
            return
        plan = plan_recovery(history, previous, now=self.clock(), foreign_grace=self.foreign_grace)
        if plan.action is Action.PROCEED:
            return
        if plan.action is Action.REFUSE:
            raise ConflictError(f"cannot {action} helm release {release} in {namespace}: {plan.reason}")
        self.log.warning("recovering helm release %s in %s before %s: %s", release, namespace, action, plan.reason)
        if plan.action is Action.ROLLBACK:
            helm.rollback_unguarded(release, plan.to_revision, namespace=namespace)
        else:
            helm.uninstall_unguarded(release, namespace=namespace)
        event = {
            "event": "release_recovered", "release": release, "namespace": namespace, "before": action,
            "action": plan.action.value, "pending_revision": plan.pending.revision if plan.pending else None,
            "pending_status": plan.pending.status if plan.pending else None, "to_revision": plan.to_revision,
            "reason": plan.reason, "interrupted_by": previous.holder.to_dict() if previous and previous.holder else None,
            "recovered_by": self.holder.to_dict(),
        }
        self.log.warning("recovered helm release %s in %s: %s", release, namespace, plan.action.value)
        self.record(namespace, event)
