"""stackyard.core.health: one named case per rule, per kind, then the roll-ups."""

from __future__ import annotations

import pytest

from stackyard.core.health import (
    Health, Status, assess_namespace, daemonset_health, deployment_health, pod_health, release_health,
    service_of, stack_health, statefulset_health, worst,
)

H, P, D, F, M, U = Health.HEALTHY, Health.PROGRESSING, Health.DEGRADED, Health.FAILED, Health.MISSING, Health.UNKNOWN


def deployment(replicas=2, updated=2, available=2, total=None, generation=1, observed=1, paused=False, condition=None):
    conditions = [condition] if condition else []
    return {"kind": "Deployment", "metadata": {"name": "orders", "generation": generation},
            "spec": {"replicas": replicas, "paused": paused},
            "status": {"observedGeneration": observed, "replicas": replicas if total is None else total,
                       "updatedReplicas": updated, "availableReplicas": available, "readyReplicas": available,
                       "conditions": conditions}}


@pytest.mark.parametrize("name, obj, expected", [
    ("all replicas updated and available", deployment(), H),
    ("paused rollout", deployment(paused=True), P),
    ("progress deadline exceeded", deployment(available=0, condition={"type": "Progressing", "reason": "ProgressDeadlineExceeded"}), D),
    ("new spec not observed yet", deployment(generation=2, observed=1), P),
    ("replicas not all updated", deployment(updated=1), P),
    ("old replicas pending termination", deployment(total=3), P),
    ("updated replicas not available", deployment(available=1), P),
])
def test_deployment_rules(name, obj, expected):
    assert deployment_health(obj).health is expected, name


def sts(replicas=1, ready=1, current="r1", update="r1", partition=0):
    return {"kind": "StatefulSet", "metadata": {"generation": 1},
            "spec": {"replicas": replicas, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}},
            "status": {"observedGeneration": 1, "readyReplicas": ready, "currentRevision": current, "updateRevision": update}}


@pytest.mark.parametrize("name, obj, expected", [
    ("all pods ready, one revision", sts(), H),
    ("fewer pods ready than desired", sts(replicas=3, ready=2), P),
    ("rolling update not finished", sts(update="r2"), P),
    ("a partitioned update is settled at its partition", sts(update="r2", partition=1), H),
])
def test_statefulset_rules(name, obj, expected):
    assert statefulset_health(obj).health is expected, name


@pytest.mark.parametrize("name, status, expected", [
    ("every node updated and available", {"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}, H),
    ("nodes not all updated", {"desiredNumberScheduled": 3, "updatedNumberScheduled": 2, "numberAvailable": 3}, P),
    ("nodes not all available", {"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1}, P),
])
def test_daemonset_rules(name, status, expected):
    assert daemonset_health({"kind": "DaemonSet", "metadata": {}, "status": status}).health is expected, name


def pod(phase="Running", ready="True", waiting=None, terminated=None, scheduled=None, restarts=0, name="orders-1"):
    state = {"waiting": waiting} if waiting else {"terminated": terminated} if terminated else {"running": {}}
    conditions = [{"type": "Ready", "status": ready}]
    if scheduled:
        conditions.append({"type": "PodScheduled", "status": "False", **scheduled})
    return {"kind": "Pod", "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "orders"}},
            "spec": {"restartPolicy": "Always"},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "orders", "state": state, "restartCount": restarts}]}}


@pytest.mark.parametrize("name, obj, expected, reason", [
    ("running and ready", pod(), H, None),
    ("completed", pod(phase="Succeeded"), H, "completed"),
    ("failed phase", pod(phase="Failed"), F, "pod failed"),
    ("crash loop", pod(ready="False", waiting={"reason": "CrashLoopBackOff", "message": "back-off 5m"}), D,
     "orders: CrashLoopBackOff: back-off 5m"),
    ("image cannot be pulled", pod(phase="Pending", ready="False", waiting={"reason": "ImagePullBackOff"}), D,
     "orders: ImagePullBackOff"),
    ("exited non-zero and restarting", pod(ready="False", terminated={"exitCode": 137, "reason": "OOMKilled"}), D,
     "orders: exited 137 (OOMKilled)"),
    ("unschedulable for now", pod(phase="Pending", ready="False", scheduled={"reason": "Unschedulable", "message": "0/3 nodes"}), P,
     "Pending: Unschedulable: 0/3 nodes"),
    ("starting, container creating", pod(phase="Pending", ready="False", waiting={"reason": "ContainerCreating"}), P, "Pending"),
    ("running, not ready yet", pod(ready="False"), P, "not ready"),
])
def test_pod_rules(name, obj, expected, reason):
    assert pod_health(obj) == Status(expected, reason), name


@pytest.mark.parametrize("status, expected", [
    ("deployed", H), ("failed", F), ("pending-install", P), ("pending-upgrade", P), ("pending-rollback", P),
    ("uninstalling", P), (None, U), ("something-new", U),
])
def test_helm_release_status_rules(status, expected):
    assert release_health(status).health is expected


def test_the_worst_status_wins_and_keeps_its_reason():
    assert worst([Status(H), Status(P, "a"), Status(D, "b"), Status(U, "c")]) == Status(D, "b")
    assert worst([Status(F, "x"), Status(D, "y")]).health is F
    assert worst([]).health is U  # nothing read is never healthy


@pytest.mark.parametrize("labels, expected", [
    ({"helm.sh/chart": "orders-1.2.0", "app.kubernetes.io/instance": "l3"}, "orders"),  # an umbrella's subchart
    ({"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": "l3"}, "orders"),  # pod labels
    ({"helm.sh/chart": "postgresql-15.2.1", "app.kubernetes.io/name": "postgresql",
      "app.kubernetes.io/instance": "catalog"}, "catalog"),  # a service chart's own dependency
    ({"app.kubernetes.io/name": "other"}, None),
])
def test_objects_belong_to_services_by_chart_name_or_release_labels(labels, expected):
    assert service_of(labels, {"orders", "catalog"}, {"catalog": "catalog"}) == expected


def rs(name, owner):
    return {"kind": "ReplicaSet", "metadata": {"name": name, "labels": {},
                                               "ownerReferences": [{"kind": "Deployment", "name": owner, "controller": True}]}}


def test_a_namespace_rolls_up_per_service_with_pods_found_through_their_owners():
    web = deployment(replicas=1, updated=1, available=0)
    web["metadata"].update(name="orders", labels={"helm.sh/chart": "orders-1.0.0"})
    crashing = pod(ready="False", waiting={"reason": "CrashLoopBackOff"}, restarts=4, name="orders-abc-1")
    crashing["metadata"] = {"name": "orders-abc-1", "labels": {},  # sparse pod labels: found via RS → Deployment
                            "ownerReferences": [{"kind": "ReplicaSet", "name": "orders-abc", "controller": True}]}
    objects = [web, rs("orders-abc", "orders"), crashing]
    deployed = {"orders": {"status": "deployed", "release": "l3"}, "catalog": {"status": "deployed", "release": "l3"}}
    events = [{"type": "Warning", "reason": "BackOff", "message": "Back-off restarting", "count": 7,
               "involvedObject": {"kind": "Pod", "name": "orders-abc-1"}, "lastTimestamp": "2026-03-04T10:00:00Z"}]
    health = assess_namespace(objects, deployed, events)
    assert health["orders"].status == Status(D, "orders: CrashLoopBackOff")
    assert health["orders"].restarts == 4 and health["orders"].pods == 1 and health["orders"].pods_ready == 0
    assert health["orders"].failing == [{"pod": "orders-abc-1", "reason": "orders: CrashLoopBackOff"}]
    assert health["orders"].workloads[0]["desired"] == 1 and health["orders"].workloads[0]["available"] == 0
    assert health["orders"].events[0]["reason"] == "BackOff"
    assert health["catalog"].status.health is M  # deployed, but nothing of it runs
    assert stack_health(health).health is D


def test_a_failing_readiness_probe_is_degraded_not_progressing():
    waiting = pod(ready="False", name="orders-1")
    events = [{"reason": "Unhealthy", "message": "Readiness probe failed: HTTP probe failed with statuscode: 500",
               "involvedObject": {"kind": "Pod", "name": "orders-1"}}]
    health = assess_namespace([waiting], {"orders": {"status": "deployed", "release": "orders"}}, events)
    assert health["orders"].status.health is D and "Readiness probe failed" in health["orders"].status.reason


def test_a_failed_helm_release_fails_the_service_even_if_pods_run():
    health = assess_namespace([pod()], {"orders": {"status": "failed", "release": "orders"}})
    assert health["orders"].status == Status(F, "helm release failed")
