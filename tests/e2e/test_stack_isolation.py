"""Two stacks of one L3 on one cluster, through the DAGs: an L3 with a cert-manager-like chart
(CRDs, cluster-wide RBAC, a webhook) deploys as two personal stacks side by side; removing one
leaves the other's objects and the cluster's CRDs; stacks made with the old release name
(``stack``) are still touched and destroyed."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from kubernetes import config
from kubernetes.client import ApiextensionsV1Api, RbacAuthorizationV1Api

from stackyard.core import ephemeral as S
from stackyard.core.cluster_objects import ANNOTATION_CRD_CHART_VERSION, LABEL_CRD_MANAGED
from stackyard.core.manifest import Manifest, Provenance, ServicePin
from stackyard.steps.publishing import publish_chart

from tests.e2e.test_stacks import made_by_stackyard, remove, run
from tests.support.certpilot import CERTS, ISSUERS, certpilot_source

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def api(local_stack):
    return config.new_client_from_config(config_file=str(local_stack.kubeconfig))


@pytest.fixture
def l3_with_certpilot(local_stack, api):
    pins = {}
    for service in ("catalog",):
        ref = local_stack.publish(service)
        pins[service] = ServicePin(ref.version, ref.digest)
    ref = publish_chart(certpilot_source(local_stack.tmp / "certpilot"), registry=local_stack.registry,
                        helm=local_stack.helm, images=local_stack.images)
    pins["certpilot"] = ServicePin(ref.version, ref.digest)
    return local_stack.store.seed(Manifest.initial(pins, datetime.now(timezone.utc), Provenance(None, "tests", None)))


def cluster_role(api, name):
    # Listed, not read by name: the sandbox does not yet decode a percent-encoded ':' in a path.
    return next((r for r in RbacAuthorizationV1Api(api).list_cluster_role().items if r.metadata.name == name), None)


def test_two_personal_stacks_with_crds_and_cluster_rbac_coexist(local_stack, dagbag, l3_with_certpilot, api):
    try:
        for name in ("iso-alice", "iso-bob"):
            state, tasks = run(dagbag, "stack_create", {"name": name, "owner": f"{name}@example.com"})
            assert state == "success", tasks
            [release] = local_stack.helm.list(namespace=name)
            assert release.name == name
            assert cluster_role(api, f"{name}-certpilot:controller") is not None

        crds = ApiextensionsV1Api(api)
        for crd in (ISSUERS, CERTS):
            meta = crds.read_custom_resource_definition(crd).metadata
            assert meta.labels[LABEL_CRD_MANAGED] == "true" and meta.annotations[ANNOTATION_CRD_CHART_VERSION] == "1.0.0"
            assert "meta.helm.sh/release-name" not in meta.annotations

        state, tasks = run(dagbag, "stack_destroy", {"name": "iso-alice"})
        assert state == "success", tasks
        assert cluster_role(api, f"iso-alice-certpilot:controller") is None
        assert cluster_role(api, f"iso-bob-certpilot:controller") is not None
        assert crds.read_custom_resource_definition(CERTS) and crds.read_custom_resource_definition(ISSUERS)
    finally:
        for name in ("iso-alice", "iso-bob"):
            run(dagbag, "stack_destroy", {"name": name})
            remove(local_stack, name)


def test_a_stack_with_the_old_release_name_is_touched_and_destroyed(local_stack, dagbag, l3_with_certpilot):
    name = "legacy-carol"
    metadata = S.ephemeral_stack_metadata(owner="carol", purpose=S.Purpose.PERSONAL, manifest_version=1,
                                          created=datetime.now(timezone.utc))
    made_by_stackyard(local_stack, name, metadata.labels, metadata.annotations)
    package = local_stack.registry.fetch("catalog", l3_with_certpilot.services["catalog"].chart_version)
    local_stack.helm.upgrade_install("stack", package, namespace=name, timeout="60s")  # as stack_create did before
    try:
        state, tasks = run(dagbag, "stack_touch", {"name": name})
        assert state == "success", tasks
        state, tasks = run(dagbag, "stack_destroy", {"name": name})
        assert state == "success", tasks
        assert local_stack.helm.list(namespace=name) == []
    finally:
        remove(local_stack, name)
