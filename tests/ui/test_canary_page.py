"""The stack page's canary weight history in Debian's chromium: the page's JSON comes from the real
view code (stackyard.core.fleet) over a rollout record with a stepwise canary that was aborted."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from stackyard.core import fleet as views
from stackyard.core.fleet import ClusterState, NamespaceRow, ReleaseRow
from stackyard.core.manifest import Manifest, Provenance, ServicePin
from stackyard.core.records import RolloutRecord, Stored

from tests.support.page_server import serve_page
from tests.ui.test_browser import LAUNCH_ARGS, require_chromium

pytestmark = pytest.mark.slow
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)
FAILING = {"name": "errors", "passed": False, "value": 0.4, "threshold": 0.05, "message": "0.4 is above max 0.05"}


def aborted_canary() -> Stored[RolloutRecord]:
    line = {"run_id": "manual__1#1"}
    history = [{**line, "time": "2026-03-04T09:00:00Z", "kind": "weight", "weight": 10, "reason": "step 1 of 2: weight 10"},
               {**line, "time": "2026-03-04T09:05:00Z", "kind": "check", "weight": 10, "checks": [FAILING],
                "reason": "weight 10 observed for 300 s"},
               {**line, "time": "2026-03-04T09:05:01Z", "kind": "abort", "weight": 0,
                "reason": "1 failed check(s) of 1 allowed: errors (value 0.4, threshold 0.05)"},
               {**line, "time": "2026-03-04T09:05:02Z", "kind": "finished", "weight": 0, "reason": "aborted"}]
    record = RolloutRecord.from_json({
        "stack": "prod", "type": "production", "dag_id": "rollout_prod", "namespace": "prod", "profile": "production",
        "service": "orders", "from_version": "1.0.0", "to_version": "1.1.0", "action": "upgrade", "manifest_version": 2,
        "run_id": "manual__1", "status": "canary_aborted", "started": "2026-03-04T09:00:00Z",
        "finished": "2026-03-04T09:05:02Z", "reason": "canary check failed: errors = 0.4 (threshold 0.05)",
        "canary": {"release": "prod-orders-canary", "weight": 0, "check": "errors", "provider": "gateway-api",
                   "state": "aborted", "history": history}})
    return Stored(NOW, record, "k1")


@pytest.fixture
def site():
    seed = Manifest.initial({"orders": ServicePin("1.0.0")}, NOW, Provenance(None, "t", None))
    managed = {"app.kubernetes.io/managed-by": "stackyard", "stackyard.io/stack-type": "production"}
    cluster = ClusterState((NamespaceRow("prod", managed),), (ReleaseRow("orders", "prod", "deployed", "orders-1.0.0"),), NOW,
                           objects={"prod": []})
    rollouts = {"prod": [aborted_canary()]}
    matrix = views.fleet_matrix(history=[seed], cluster=cluster, rollouts=rollouts)
    ok = {"ok": True, "read_at": "2026-03-04T10:00:00Z"}
    overview = {"sources": {"cluster": ok}, "now": "2026-03-04T10:00:00Z", "matrix": matrix,
                "ephemeral": views.ephemeral_view(cluster, {}, [], NOW), "persistent": views.persistent_view([], cluster, rollouts, NOW)}
    status = views.stack_status("prod", matrix, rollouts["prod"], [])
    page = views.stack_detail(status, namespace="prod", objects=[], warnings=[],
                              deployed={"orders": {"version": "1.0.0", "status": "deployed", "release": "orders"}},
                              releases=[], live={}, compared_kinds=set())
    answers = {"/stacks/api/overview": overview, "/stacks/api/history?limit=30": {"sources": {}, "entries": []},
               "/stacks/api/stacks/prod": {"sources": {}, **page, "namespace": "prod"}}
    with serve_page(answers) as url:
        yield url, json.loads(json.dumps(answers["/stacks/api/stacks/prod"]))


def test_the_stack_page_shows_the_canary_weight_history(site, tmp_path):
    base, document = site
    assert document["rollouts"][0]["canary"]["history"][1]["checks"] == [FAILING]  # the JSON API's document
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(f"{base}/stacks/", wait_until="networkidle")
            page.locator("body[data-loaded=overview]").wait_for(timeout=30_000)
            page.locator('th[data-stack="prod"]').click()
            page.locator("body[data-stack=prod]").wait_for(timeout=30_000)
            heading = page.locator('h3[data-canary="orders"]').inner_text()
            assert "orders 1.1.0" in heading and "via gateway-api" in heading and "canary_aborted" in heading
            rows = page.locator("table.canary-history tbody tr")
            assert [rows.nth(i).get_attribute("data-kind") for i in range(rows.count())] == ["weight", "check", "abort", "finished"]
            assert "10 %" in rows.nth(0).inner_text()
            assert "errors failed 0.4 (threshold 0.05)" in rows.nth(1).inner_text()
            assert "errors (value 0.4, threshold 0.05)" in rows.nth(2).inner_text()
            page.screenshot(path=str(tmp_path / "canary-history.png"), full_page=True)
        finally:
            browser.close()
