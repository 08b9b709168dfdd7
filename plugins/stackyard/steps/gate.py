"""The L3 gate's steps, as plain functions over the stores (the DAG wires them to tasks).

validate → build candidate → create stack → deploy → system tests → promote | reject, then
teardown and summary. Each step is safe to retry: the candidate package is byte-identical for the
same candidate, promotion is a compare-and-swap that recognises its own earlier success, and
removing a stack that is gone is success.

How a run ends is decided here, once (docs/l3-gate.md, "Outcomes"): :func:`rejection` says
whether what failed is a verdict on the candidate (its deploy or its tests failed) and
:func:`outcome` turns the run's facts into ``promoted``, ``requeued``, ``rejected`` or
``error`` (infrastructure failed: no verdict, no rejection).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from stackyard.core import names
from stackyard.core.charts import Profile, contract_files, load_chart_bytes
from stackyard.core.deploy_errors import classify, describe
from stackyard.core.gate_config import SystemTestSuite, load_gate_config
from stackyard.core.manifest import Manifest, Provenance, ServicePin, check_candidate, propose, validate_service_name
from stackyard.core.records import DeployFailure, FailureKind, GateOutcome, RejectionReport
from stackyard.core.umbrella import UmbrellaTemplate
from stackyard.core.versions import is_semver
from stackyard.core.stack_registry import Stack
from stackyard.exceptions import AccessDeniedError, InputError, NotFoundError, UnavailableError
from stackyard.steps.publishing import build_manifest_package, check_contract, pin_of
from stackyard.adapters.manifest_store import ManifestStore
from stackyard.adapters.chart_registry import ChartRegistry

# The umbrella is deployed as one release. Its release Secret (rendered manifests + values; helm
# does not store subcharts' files) measured in bench/gate_overhead with generated services that
# compress independently: 67 KiB at 50 services, 199 KiB at 150, 394 KiB at 300 (38% of helm's
# 1 MiB cap; ~1.3 KiB per service, the cap near 780 services). One install of 300 services takes
# ~5 s on the sandbox; one release per service ~7x longer (helm-4-facts). See docs/l3-gate.md.
# Its name is the stack's (``l3-<id>``, core.cluster_objects.stack_release): two candidates never
# share a release name, so cluster-wide objects named after it never collide.

PROFILE = "ephemeral"
log = logging.getLogger(__name__)
_FAILED_TEST = re.compile(r"TEST SUITE:\s+(\S+)\s*\n(?:.*\n)*?Phase:\s+(\w+)")


def system_test_suite(path: Path) -> SystemTestSuite | None:
    """The suite of ``include/gate.yaml`` (:mod:`stackyard.core.gate_config`); None when the file
    or its ``system_tests`` entry is absent; InputError naming the file and the field."""
    if not path.is_file():
        return None
    return load_gate_config(path.read_text(), origin=str(path)).system_tests


@dataclass(frozen=True)
class GateRequest:
    service: str
    chart_version: str
    requested_by: str | None = None
    ci_url: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> GateRequest:
        """Checks each field and names the one that is wrong."""
        missing = [key for key in ("service", "chart_version") if not params.get(key)]
        if missing:
            raise InputError(f"missing required parameter(s): {', '.join(missing)}")
        # Exactly as given: a name or version with surrounding whitespace is refused, not trimmed.
        service = validate_service_name(params["service"], "service")
        version = params["chart_version"]
        if not is_semver(version):
            raise InputError(f"chart_version: {version!r} is not a semantic version as helm accepts "
                             "chart versions (e.g. 1.4.2, v1.19.0, 1.5.0-rc.1)")
        requested_by, ci_url = params.get("requested_by") or None, params.get("ci_url") or None
        return cls(
            service=service, chart_version=version,
            requested_by=None if requested_by is None else names.free_text(requested_by, "requested_by"),
            ci_url=None if ci_url is None else names.http_url(ci_url, "ci_url"),
        )


def validate(request: GateRequest, *, store: ManifestStore, registry: ChartRegistry, now: datetime,
             run_id: str | None, stacks: Iterable[Stack] = (),
             decrypt: Callable[[Profile], Any] | None = None) -> Manifest:
    """The candidate (current L3 + this one change), or an InputError naming what is wrong
    (:func:`check_request`)."""
    current, pin = check_request(request, store=store, registry=registry, stacks=stacks, decrypt=decrypt)
    candidate = propose(current, request.service, request.chart_version, pin.digest, created=now,
                        provenance=provenance_of(request, run_id), images=pin.images)
    check_candidate(current, candidate)
    return candidate


def provenance_of(request: GateRequest, run_id: str | None) -> Provenance:
    return Provenance(dag_run_id=run_id, requested_by=request.requested_by, ci_url=request.ci_url)


def check_request(request: GateRequest, *, store: ManifestStore, registry: ChartRegistry,
                  stacks: Iterable[Stack] = (), decrypt: Callable[[Profile], Any] | None = None,
                  ) -> tuple[Manifest, ServicePin]:
    """Current L3 and the requested change's pin, or an InputError naming what is wrong.

    The chart must keep the chart contract for ``stacks`` (it may have been published by an
    older stackyard), and with ``decrypt`` its ephemeral secrets must open with the keys the
    gate has: a key it lacks fails here, once, instead of at every deploy attempt."""
    current = store.latest()
    if current is None:
        raise InputError("there is no L3 manifest yet: seed version 1 first (stackyard manifest seed)")
    try:
        ref = registry.resolve(request.service, request.chart_version)
    except NotFoundError:
        raise NotFoundError(
            f"chart_version: {request.service} {request.chart_version} is not in the registry {registry.url}; "
            "publish it first (stackyard chart publish)"
        ) from None
    package = registry.fetch(request.service, request.chart_version).read_bytes()
    check_contract(request.service, contract_files(package, f"{request.service}-{request.chart_version}.tgz"), stacks)
    if decrypt is not None:
        profile = load_chart_bytes(package, f"{request.service} {request.chart_version}").profile(PROFILE)
        try:
            decrypt(profile)
        except AccessDeniedError as exc:
            raise InputError(f"{request.service} {request.chart_version}: the gate cannot decrypt "
                             f"{profile.secrets_source} with the keys it has: {exc}") from None
        except UnavailableError as exc:  # the key service is down: not the chart's fault; deploy retries
            log.warning("could not check that %s decrypts (the key service is unavailable): %s",
                        profile.secrets_source, exc)
    pin = ServicePin(request.chart_version, ref.digest, pin_of(registry, ref).images)
    # The version must differ from L3's (propose's rule), refused here before the change is queued.
    propose(current, request.service, request.chart_version, pin.digest, created=current.created,
            provenance=Provenance(), images=pin.images)
    return current, pin


def build_candidate(candidate: Manifest, *, registry: ChartRegistry, template: UmbrellaTemplate) -> dict[str, str]:
    """Publish the candidate umbrella (immutable; a rebuild of the same candidate is a no-op)."""
    version, data = build_manifest_package(candidate, registry=registry, template=template, candidate=True)
    with tempfile.TemporaryDirectory(prefix="stackyard-candidate-") as tmp:
        package = Path(tmp) / f"l3-{version}.tgz"
        package.write_bytes(data)
        ref = registry.publish(package)
    return {"chart_ref": f"{ref.name}:{ref.version}", "digest": ref.digest}


def failed_tests(helm_test_output: str) -> list[str]:
    """Names of the test pods helm reported as not Succeeded."""
    return [name for name, phase in _FAILED_TEST.findall(helm_test_output) if phase != "Succeeded"]



#: The gate's steps in pipeline order: the first one that failed is the reason of an ``error``.
STEPS = ("validate", "build_candidate", "create_stack", "deploy", "system_tests", "system_test_suite", "promote",
         "reject")
#: The steps that may hand a queued change over to a new run (XCom ``requeue``: its run id;
#: ``conflict``: why): the tests stop early when a change ahead failed; promote and reject, when
#: what was tested is no longer what L3 will be.
HANDING_OVER = ("system_tests", "promote", "reject")


def rejection(*, deploy_failure: DeployFailure | None, test_run: Mapping[str, Any] | None,
              suite_failed: bool) -> tuple[str, RejectionReport] | None:
    """Why the candidate is rejected, or None when what failed is no verdict on it.

    A rejection is a deploy that failed for the candidate's own reasons (it did not render, a
    manifest is invalid, its workloads did not become ready) or tests that ran and failed. A
    deploy or a test run that failed because the cluster or the API failed is no verdict.
    """
    if deploy_failure is not None:
        if not deploy_failure.kind.rejects:
            return None
        return f"deploy failed: {describe(deploy_failure)}", RejectionReport(
            failed_tests=[], test_output="", failure=deploy_failure)
    if test_run is not None and not test_run.get("passed"):
        output = str(test_run.get("output") or "")
        failed = failed_tests(output)
        tests = list(test_run.get("tests") or [])
        if failed:
            return f"system tests failed: {', '.join(failed)}", RejectionReport(
                failed_tests=failed, test_output=output, tests=tests)
        failure = classify(output, release=str(test_run.get("release") or ""))
        if failure.kind is FailureKind.NOT_READY:  # a test pod that never finished is a failed test
            return f"system tests failed: {describe(failure)}", RejectionReport(
                failed_tests=[], test_output=output, tests=tests, failure=failure)
        return None
    if suite_failed:
        return "the system test suite failed (see the system_test_suite log)", RejectionReport(
            failed_tests=[], test_output="")
    return None


def outcome(*, promoted: bool, conflict: str | None, rejected: str | None,
            errors: Mapping[str, str], superseded: str | None = None) -> tuple[GateOutcome, str | None]:
    """How the run ended and why. ``errors`` maps a failed step to its error line."""
    if promoted:
        return GateOutcome.PROMOTED, None
    if superseded:
        return GateOutcome.SUPERSEDED, superseded
    if conflict:
        return GateOutcome.REQUEUED, conflict
    if rejected:
        return GateOutcome.REJECTED, rejected
    for step in (*STEPS, *sorted(set(errors) - set(STEPS))):
        if step in errors:
            return GateOutcome.ERROR, f"{step}: {errors[step]}"
    return GateOutcome.ERROR, "the run failed before a verdict (see the failed task's log)"
