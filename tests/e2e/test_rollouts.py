"""Rollouts to persistent and production stacks on the kube sandbox, through dag.test().

Each test writes its own stack registry (STACKYARD_STACKS) with stacks in fresh namespaces,
parses rollout_stacks.py from it, and checks the cluster (helm releases), the rollout records
and the task states.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from dev.demo import chart_variant
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose
from stackyard.core.records import RolloutRecord, rollouts_stream
from stackyard.core.rollout import canary_release, release_service, service_release
from stackyard.core.times import format_utc
from stackyard.steps.publishing import publish_chart
from stackyard.adapters.record_store import open_record_store

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY, ROOT


pytestmark = [pytest.mark.slow, pytest.mark.cluster]  # no fault injection: runs on a real cluster too

FACTORY = ROOT / "dags" / "rollout_stacks.py"


class Rollouts:
    def __init__(self, local_stack, tmp_path: Path, monkeypatch) -> None:
        self.ls, self.tmp, self.monkeypatch = local_stack, tmp_path, monkeypatch
        monkeypatch.setenv("STACKYARD_RECORD_STORE", f"file://{tmp_path / 'records'}")
        self.records = open_record_store(f"file://{tmp_path / 'records'}")

    def name(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:6]}"

    def dagbag(self, **stacks):
        from airflow.dag_processing.dagbag import DagBag

        path = self.tmp / "stacks.yaml"
        path.write_text(yaml.safe_dump({"stacks": stacks}))
        self.monkeypatch.setenv("STACKYARD_STACKS", str(path))
        bag = DagBag(dag_folder=str(FACTORY))
        assert bag.import_errors == {}
        return bag

    def bump(self, service: str, version: str, *, failing_test: bool = False, source: Path | None = None) -> Manifest:
        """Publish ``service`` ``version`` and make it the next L3 (what a passing gate run does)."""
        if source is None:
            ref = self.ls.publish(service, version, failing_test=failing_test)
        else:
            variant = chart_variant(source, self.tmp / "variants" / f"{service}-{version}", version=version, failing_test=failing_test)
            ref = publish_chart(variant, registry=self.ls.registry, helm=self.ls.helm, images=self.ls.images)
        latest = self.ls.store.latest()
        candidate = propose(latest, service, version, ref.digest, datetime.now(timezone.utc), Provenance(None, "tests", None))
        return self.ls.store.promote(candidate)

    def releases(self, namespace: str) -> dict[str, str]:
        """service (or ``<service>-canary``) → chart version; each release is named ``<namespace>-<service>``."""
        found = {}
        for r in self.ls.helm.list(namespace=namespace):
            assert r.name in (service_release(namespace, r.chart_name), canary_release(service_release(namespace, r.chart_name)))
            found[release_service(namespace, r.name, r.chart_name)] = r.chart_version
        return found

    def history(self, service: str, namespace: str) -> list[dict]:
        return self.ls.helm.history(service_release(namespace, service), namespace=namespace)

    def rollouts(self, stack: str) -> list[dict]:
        """Oldest first."""
        return [r.data for r in reversed(self.records.list(rollouts_stream(stack)))]


@pytest.fixture
def rollouts(local_stack, tmp_path, monkeypatch) -> Rollouts:
    return Rollouts(local_stack, tmp_path, monkeypatch)


def qa(namespace: str, **fields) -> dict:
    return {"owner": "team-qa", "type": "persistent", "profile": "qa1", "namespace": namespace, **fields}


def apps_v1(local_stack):
    from kubernetes import client, config

    return client.AppsV1Api(config.new_client_from_config(config_file=str(local_stack.kubeconfig)))


def mapped_states(run) -> dict[str, str]:
    """State of each mapped ``upgrade`` instance, by the service it is named after."""
    return {ti.rendered_map_index: ti.state for ti in run.get_task_instances()
            if ti.task_id == "upgrade" and ti.map_index >= 0}


def run(bag, dag_id: str, conf: dict | None = None):
    dag_run = bag.get_dag(dag_id).test(run_conf=conf or {})
    tasks = {ti.task_id: ti.state for ti in dag_run.get_task_instances() if ti.map_index < 0}
    return dag_run.state, tasks, mapped_states(dag_run)


def last_note(dag_id: str) -> str | None:
    """The run note of the DAG's latest run (set by stackyard's listener when the run ended)."""
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc())).first().note


# --- persistent stacks ---------------------------------------------------------------------------------


def test_qa_stack_catches_up_from_l3_v1_to_v3_one_service_at_a_time(local_stack, rollouts):
    local_stack.seed()
    stack = rollouts.name("qa")
    bag = rollouts.dagbag(**{stack: qa(stack)})
    dag_id = f"rollout_{stack}"

    state, tasks, upgrades = run(bag, dag_id)
    assert state == "success", (tasks, upgrades)
    assert upgrades == {"catalog": "success", "orders": "success", "storefront": "success"}
    assert rollouts.releases(stack) == {"catalog": "1.0.0", "orders": "1.0.0", "storefront": "1.0.0"}

    rollouts.bump("orders", "1.1.0")
    v3 = rollouts.bump("catalog", "1.1.0")
    state, tasks, upgrades = run(bag, dag_id)

    assert state == "success", (tasks, upgrades)
    assert list(upgrades) == ["catalog", "orders"]  # alphabetical, storefront unchanged
    assert rollouts.releases(stack) == {"catalog": "1.1.0", "orders": "1.1.0", "storefront": "1.0.0"}
    records = rollouts.rollouts(stack)
    assert [(r["service"], r["from_version"], r["to_version"], r["status"]) for r in records[3:]] == [
        ("catalog", "1.0.0", "1.1.0", "succeeded"), ("orders", "1.0.0", "1.1.0", "succeeded")]
    catalog, orders = records[3:]
    assert catalog["finished"] <= orders["started"]  # one at a time
    assert catalog["manifest_version"] == v3.version and catalog["values_digest"].startswith("sha256:")
    assert catalog["run_id"] == orders["run_id"] and catalog["profile"] == "qa1"
    assert last_note(dag_id) == f"catalog 1.1.0 → {stack}: succeeded; orders 1.1.0 → {stack}: succeeded"
    # The values really came from the qa1 profile: orders' qa1 profile runs 2 replicas.
    assert apps_v1(local_stack).read_namespaced_deployment(service_release(stack, "orders"), stack).spec.replicas == 2

    # Nothing left to do: the run succeeds as up to date and records nothing.
    state, tasks, upgrades = run(bag, dag_id)
    assert state == "success" and tasks["summary"] == "success" and upgrades == {}
    assert len(rollouts.rollouts(stack)) == 5
    assert last_note(dag_id).startswith(f"{stack}: nothing changed")


def test_a_failing_upgrade_stops_the_run_and_rolls_back_only_that_service(local_stack, rollouts, capfd, monkeypatch):
    from tests.support.webhook import Receiver

    receiver = Receiver()
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": f"http://127.0.0.1:{receiver.port}", "extra": {"format": "json"}}))
    local_stack.seed()
    stack = rollouts.name("qa")
    bag = rollouts.dagbag(**{stack: qa(stack, services=["catalog", "orders", "storefront"])})
    dag_id = f"rollout_{stack}"
    assert run(bag, dag_id)[0] == "success"
    revisions_before = {s: len(rollouts.history(s, stack)) for s in ("catalog", "orders", "storefront")}

    rollouts.bump("catalog", "1.1.0")
    rollouts.bump("orders", "1.1.0", failing_test=True)
    rollouts.bump("storefront", "1.1.0")
    state, tasks, upgrades = run(bag, dag_id)

    assert state == "failed"
    assert upgrades == {"catalog": "success", "orders": "failed", "storefront": "skipped"}
    assert tasks["summary"] == "failed"
    assert rollouts.releases(stack) == {"catalog": "1.1.0", "orders": "1.0.0", "storefront": "1.0.0"}
    orders_history = rollouts.history("orders", stack)
    assert orders_history[-1]["status"] == "deployed" and orders_history[-1]["chart"] == "orders-1.0.0"
    assert len(orders_history) == revisions_before["orders"] + 2  # the upgrade, then the rollback
    assert len(rollouts.history("storefront", stack)) == revisions_before["storefront"]  # never touched
    last = rollouts.rollouts(stack)[-1]
    assert (last["service"], last["status"]) == ("orders", "rolled_back")
    assert "chart tests failed; rolled back to revision 1 (1.0.0)" in last["reason"]
    out = capfd.readouterr().out
    assert f"rollout of {stack} stopped at orders (1.0.0 -> 1.1.0): rolled_back" in out
    assert "not attempted: storefront" in out
    note = last_note(dag_id)
    assert note.startswith(f"catalog 1.1.0 → {stack}: succeeded; orders 1.1.0 → {stack}: rolled_back (chart tests failed")
    assert note.endswith("not attempted: storefront")
    receiver.server.shutdown()
    [(_, _, alert)] = receiver.requests  # the stack's owner hears of the rollback, once
    assert alert["kind"] == "rollout_failed" and alert["fields"]["service"] == "orders"
    assert alert["fields"]["after failure"] == "rolled back to 1.0.0" and alert["dag_id"] == dag_id


def test_plan_only_changes_nothing(local_stack, rollouts, capfd):
    local_stack.seed()
    stack = rollouts.name("qa")
    bag = rollouts.dagbag(**{stack: qa(stack)})
    state, _, _ = run(bag, f"rollout_{stack}", {"plan_only": True})
    assert state == "success"
    assert rollouts.releases(stack) == {} and rollouts.rollouts(stack) == []
    assert "3 service(s) to change, one at a time: catalog (new) -> 1.0.0 (install)" in capfd.readouterr().out


# --- production --------------------------------------------------------------------------------------


def production(namespace: str, stage: str, **fields) -> dict:
    return {"owner": "team-release", "type": "production", "namespace": namespace,
            "source": {"healthy_on": stage, "for_hours": 0}, "triggerers": {"roles": ["prod-deployers"]},
            "services": ["catalog", {"name": "orders", "canary": True}], **fields}


def today_utc() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def closed_hours() -> str:
    """A one-hour window that starts two hours from now (UTC): never open now."""
    start = (datetime.now(timezone.utc).hour + 2) % 24
    return f"{start:02d}:00-{(start + 1) % 24:02d}:00" if start != 23 else "23:00-24:00"


@pytest.mark.parametrize(
    "windows, words",
    [
        ({"timezone": "UTC", "freeze": [today_utc()]}, f"freeze {today_utc()}: no deployments"),
        ({"timezone": "UTC", "allow": [{"hours": closed_hours()}]}, "outside the deployment windows"),
    ],
)
def test_production_outside_its_window_or_on_a_freeze_date_changes_nothing_and_says_why(local_stack, rollouts, capfd, windows, words):
    local_stack.seed()
    prod, stage = rollouts.name("prod"), rollouts.name("stage")
    bag = rollouts.dagbag(**{stage: qa(stage, profile="stage"), prod: production(prod, stage, windows=windows)})

    state, tasks, upgrades = run(bag, f"rollout_{prod}")

    assert state == "success" and tasks["plan"] == "success" and upgrades == {}
    assert f"rollout_{prod}: changing nothing: {words}" in capfd.readouterr().out
    assert local_stack.core_v1().list_namespace(field_selector=f"metadata.name={prod}").items == []
    assert rollouts.rollouts(prod) == []


def test_production_secrets_without_the_key_fail_clearly_and_change_nothing(local_stack, rollouts, capfd):
    seeded = local_stack.seed()
    prod, stage = rollouts.name("prod"), rollouts.name("stage")
    bag = rollouts.dagbag(**{stage: qa(stage, profile="stage"), prod: production(prod, stage, services=["orders"])})
    # Stage's history, as its rollout DAG records it: orders 1.0.0 deployed there a day ago.
    day_ago = datetime.now(timezone.utc) - timedelta(days=1)
    rollouts.records.write(RolloutRecord(
        stack=stage, type="persistent", dag_id=f"rollout_{stage}", namespace=stage, profile="stage", service="orders",
        from_version=None, to_version="1.0.0", action="install", manifest_version=seeded.version, run_id="manual__s",
        status="succeeded", started=day_ago, finished=day_ago))

    state, tasks, upgrades = run(bag, f"rollout_{prod}")

    assert state == "failed" and upgrades == {"orders": "failed"}
    out = capfd.readouterr().out
    assert "profiles/production/secrets.yaml: no access to key" in out
    assert rollouts.releases(prod) == {}
    [attempt] = rollouts.rollouts(prod)
    assert attempt["status"] == "failed" and "nothing was changed on the stack" in attempt["reason"]
    assert attempt["profile"] == "production" and "no access to key" in attempt["reason"]


PRODUCTION_SECRETS = {"DATABASE_PASSWORD": "prod-db-password-for-tests", "API_TOKEN": "prod-api-token-for-tests"}


PRODUCTION_KEY = "age1z7zdnynxqgjk0rmesrg24avs9ctgvmr0dpc8kmm9ma3gw5cwv9qqncthdq"  # include/charts/*/.sops.yaml


@pytest.fixture
def production_charts(local_stack, tmp_path, monkeypatch, sops_bin):
    """Copies of catalog and orders whose production secrets are encrypted to a key made here,
    and a SOPS identity holding it (plus the example key for the other profiles)."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    charts = {}
    for service in ("catalog", "orders"):
        copy = tmp_path / "prodcharts" / service
        shutil.copytree(CHARTS / service, copy)
        # The production key is this test's: its creation rule says so too (the chart contract).
        rules = copy / ".sops.yaml"
        rules.write_text(rules.read_text().replace(PRODUCTION_KEY, str(identity.to_public())))
        secrets = copy / "profiles" / "production" / "secrets.yaml"
        secrets.write_text(yaml.safe_dump({"secrets": PRODUCTION_SECRETS}))
        subprocess.run([sops_bin, "--encrypt", "--in-place", "--age", str(identity.to_public()), str(secrets)],
                       check=True, cwd=tmp_path, capture_output=True)
        charts[service] = copy
    keys = tmp_path / "keys.txt"
    keys.write_text(EXAMPLE_AGE_KEY.read_text().strip() + "\n" + str(identity) + "\n")
    keys.chmod(0o600)
    monkeypatch.setenv("AIRFLOW_CONN_STACKYARD_SOPS", json.dumps({"conn_type": "generic", "extra": {"age_key_file": str(keys)}}))
    pins = {}
    for service, copy in charts.items():
        ref = publish_chart(copy, registry=local_stack.registry, helm=local_stack.helm, images=local_stack.images)
        pins[service] = ServicePin(ref.version, ref.digest)
    local_stack.store.seed(Manifest.initial(pins, datetime.now(timezone.utc), Provenance(None, "tests", None)))
    return charts


class Probe:
    """An HTTP endpoint standing in for the canary's health URL; ``status`` is what it answers."""

    def __init__(self) -> None:
        probe = self
        self.status = 200

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(probe.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/health/{{service}}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def probe():
    server = Probe()
    yield server
    server.server.shutdown()


def test_production_canary_promotes_then_aborts_leaving_stable_untouched(local_stack, rollouts, production_charts, probe, capfd):
    """The first form of the registry's canary ({weight, check}) still works: one step, no router
    (replicas), the HTTP check; a first install has no stable track and goes in directly."""
    prod, stage = rollouts.name("prod"), rollouts.name("stage")
    check = {"type": "http", "url": probe.url, "timeout_seconds": 5}
    bag = rollouts.dagbag(**{
        stage: qa(stage, profile="stage", services=["catalog", "orders"]),
        prod: production(prod, stage, canary={"weight": 5, "check": check}),
    })
    assert run(bag, f"rollout_{stage}")[0] == "success"
    state, tasks, upgrades = run(bag, f"rollout_{prod}")
    assert state == "success", (tasks, upgrades)
    first = rollouts.rollouts(prod)[-1]
    assert first["service"] == "orders" and "first install: no stable release" in first["reason"]
    # The production secrets were decrypted with the key made for this test and reached the release.
    secret = local_stack.core_v1().read_namespaced_secret(service_release(prod, "orders"), prod)
    import base64
    assert base64.b64decode(secret.data["DATABASE_PASSWORD"]).decode() == PRODUCTION_SECRETS["DATABASE_PASSWORD"]
    assert PRODUCTION_SECRETS["DATABASE_PASSWORD"] not in json.dumps(rollouts.rollouts(prod))

    # Promote: the canary passes its chart tests and the HTTP check, then becomes the stable release.
    rollouts.bump("orders", "1.1.0", source=production_charts["orders"])
    assert run(bag, f"rollout_{stage}")[0] == "success"
    state, tasks, upgrades = run(bag, f"rollout_{prod}")
    assert state == "success", (tasks, upgrades)
    assert rollouts.releases(prod) == {"catalog": "1.0.0", "orders": "1.1.0"}  # no orders-canary left
    promoted = rollouts.rollouts(prod)[-1]
    assert promoted["service"] == "orders" and promoted["status"] == "succeeded"
    assert promoted["canary"]["state"] == "promoted" and promoted["canary"]["provider"] == "replicas"
    assert [h["kind"] for h in promoted["canary"]["history"]] == ["weight", "check", "promote", "finished"]
    assert promoted["canary"]["history"][0]["weight"] == 5
    assert "status 200" in promoted["canary"]["history"][1]["checks"][0]["message"]
    # every step was written ahead: the records before the final one say canary_running
    assert {r["status"] for r in rollouts.rollouts(prod)[-5:-1]} == {"canary_running"}
    stable_revisions = len(rollouts.history("orders", prod))

    # Abort: a new orders passes on stage, but its canary fails the HTTP check in production.
    rollouts.bump("orders", "1.2.0", source=production_charts["orders"])
    assert run(bag, f"rollout_{stage}")[0] == "success"
    probe.status = 503
    capfd.readouterr()
    state, tasks, upgrades = run(bag, f"rollout_{prod}")

    assert state == "failed" and upgrades == {"orders": "failed"}
    assert rollouts.releases(prod) == {"catalog": "1.0.0", "orders": "1.1.0"}  # canary removed
    assert len(rollouts.history("orders", prod)) == stable_revisions  # stable never touched
    aborted = rollouts.rollouts(prod)[-1]
    assert (aborted["service"], aborted["to_version"], aborted["status"]) == ("orders", "1.2.0", "canary_aborted")
    assert aborted["canary"]["state"] == "aborted" and aborted["canary"]["weight"] == 0
    assert "canary check failed: http (value 503, threshold 200)" in aborted["reason"] and "status 503" in aborted["reason"]
    assert "stable release untouched" in capfd.readouterr().out


def test_production_pods_run_the_pinned_digests_while_stage_runs_tags(local_stack, rollouts, production_charts):
    """pin_images (on for production): every container of the release's pods, init containers
    included, runs ``repository@digest`` from its chart's image lock; stage (off) runs the tags."""
    from stackyard.core.charts import load_chart_bytes

    prod, stage = rollouts.name("prod"), rollouts.name("stage")
    bag = rollouts.dagbag(**{
        stage: qa(stage, profile="stage", services=["catalog", "orders"]),
        prod: production(prod, stage, services=["catalog", "orders"], pin_images=True),
    })
    assert run(bag, f"rollout_{stage}")[0] == "success"
    state, tasks, upgrades = run(bag, f"rollout_{prod}")
    assert state == "success", (tasks, upgrades)

    locked = {}
    for service in ("catalog", "orders"):
        package = local_stack.registry.fetch(service, "1.0.0").read_bytes()
        locked.update(load_chart_bytes(package, service).images.digests())
    digests = set(locked.values())

    def images(namespace):
        pods = local_stack.core_v1().list_namespaced_pod(namespace).items
        specs = [c for p in pods for c in [*(p.spec.init_containers or []), *p.spec.containers]]
        ids = [s.image_id for p in pods for s in [*(p.status.init_container_statuses or []),
                                                  *(p.status.container_statuses or [])]]
        return [c.image for c in specs], ids

    running, ids = images(prod)
    assert running and all("@sha256:" in image and image.rsplit("@", 1)[1] in digests for image in running), running
    assert sorted(image.rsplit("@", 1)[1] for image in running) == sorted(i.rsplit("@", 1)[1] for i in ids)
    tagged, _ = images(stage)
    assert tagged and not any("@" in image for image in tagged)


# --- the registry --------------------------------------------------------------------------------------


BAD_ENTRIES = {
    "schedule": ({"schedule": "every morning"}, "schedule: 'every morning' is not a 5-field cron expression"),
    "type": ({"type": "staging"}, "type: 'staging' is not one of persistent, production"),
    "unknown-field": ({"windws": {}}, "windws: unknown field"),
    "timezone": ({"windows": {"timezone": "Berlin"}}, "windows.timezone: 'Berlin' is not a known IANA time zone"),
    "canary": ({"canary": {"weight": 0}}, "canary.weight: expected a percentage from 1 to 50"),
    "canary-steps": ({"canary": {"steps": [50, 5]}}, "canary.steps: weights [50, 5] must increase strictly"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ENTRIES))
def test_a_bad_entry_drops_only_its_dag_and_is_an_import_error_naming_it(rollouts, monkeypatch, kind):
    from airflow.dag_processing.dagbag import DagBag

    fields, message = BAD_ENTRIES[kind]
    path = rollouts.tmp / "stacks.yaml"
    path.write_text(yaml.safe_dump({"stacks": {"good": qa("good-ns"), "bad": qa("bad-ns", **fields)}}))
    monkeypatch.setenv("STACKYARD_STACKS", str(path))

    bag = DagBag(dag_folder=str(ROOT / "dags"))

    assert "rollout_good" in bag.dags and "rollout_bad" not in bag.dags
    assert "l3_gate" in bag.dags
    [(where, error)] = bag.import_errors.items()
    assert where.endswith("stack_registry_check.py")
    assert f"stack bad: {message}" in error and "1 invalid stack entry" in error


def test_the_dag_processor_keeps_the_good_dags_active_next_to_the_import_error(rollouts, tmp_path):
    """Through a real dag-processor and its database: the bad entry's error is listed, the other
    stacks' DAGs are active (not stale) and have no import error."""
    import os
    import sqlite3

    path = tmp_path / "stacks.yaml"
    path.write_text(yaml.safe_dump({"stacks": {"good": qa("good-ns"), "bad": qa("bad-ns", schedule="nope")}}))
    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copy(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db", home / "airflow.db")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "STACKYARD_STACKS": str(path),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}
    subprocess.run(["airflow", "dag-processor", "-n", "1"], env=env, check=True, capture_output=True, timeout=300)

    db = sqlite3.connect(home / "airflow.db")
    dags = dict(db.execute("select dag_id, is_stale or has_import_errors from dag where dag_id in ('rollout_good', 'rollout_bad')"))
    errors = dict(db.execute("select filename, stacktrace from import_error"))
    assert dags == {"rollout_good": 0}
    [(filename, stacktrace)] = errors.items()
    assert filename == "stack_registry_check.py" and "stack bad: schedule: 'nope'" in stacktrace
