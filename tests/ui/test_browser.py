"""The Stacks view in a real browser: Debian's chromium, headless, driven by Playwright, against
an Airflow api-server started here (the same ``AirflowServer`` as ``make up``).

Two L3 gate runs go through that server's scheduler (REST API trigger): one promotes orders 1.1.0,
one rejects catalog 1.2.0 and keeps its stack. The test logs in, opens Browse → Stacks inside
Airflow's UI, and checks the matrix shows what those runs put where. A screenshot is saved in the
test's tmp dir and its path printed (CI keeps it as an artifact).

Chromium is Debian's package (``apt-get install chromium``; ``.ci/run`` installs it): never a
downloaded browser. Missing chromium fails under ``CI=true`` and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from urllib.parse import quote
from pathlib import Path

import pytest

from dev.local import AirflowServer, free_port

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]


def require_chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it in CI)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def api(server: AirflowServer, method: str, path: str, token: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{server.url}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def run_gate(server: AirflowServer, token: str, conf: dict) -> str:
    run = api(server, "POST", "/api/v2/dags/l3_gate/dagRuns", token, {"logical_date": None, "conf": conf})
    return run["dag_run_id"]


def wait_for(server: AirflowServer, token: str, run_id: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api(server, "GET", f"/api/v2/dags/l3_gate/dagRuns/{run_id}", token)["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    raise TimeoutError(f"gate run {run_id} did not finish; see {server.log_path}")


def test_stacks_view_in_airflows_ui_shows_what_the_gate_runs_deployed(local_stack, monkeypatch, tmp_path):
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("STACKYARD_RECORD_STORE", f"file://{tmp_path / 'stackyard' / 'records'}")
    local_stack.seed()
    local_stack.publish("orders", "1.1.0")
    local_stack.publish("catalog", "1.2.0", failing_test=True)
    server = AirflowServer(home=tmp_path / "airflow", env=dict(os.environ), port=free_port(), parallelism=2)
    shot = tmp_path / "stacks-view.png"
    with server:
        token = server.token()
        promoted = run_gate(server, token, {"service": "orders", "chart_version": "1.1.0", "requested_by": "alice"})
        assert wait_for(server, token, promoted) == "success"
        rejected = run_gate(server, token, {"service": "catalog", "chart_version": "1.2.0", "requested_by": "bob",
                                            "keep_stack_on_failure": True})
        assert wait_for(server, token, rejected) == "failed"
        [kept] = [ns.metadata.name for ns in local_stack.core_v1().list_namespace(
            label_selector="stackyard.io/stack-type=ephemeral").items if ns.status.phase != "Terminating"]

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{server.url}/", wait_until="networkidle")
                page.locator("input[name=username]").fill(server.user)
                page.locator("input[name=password]").fill(server.password)
                page.locator("button[type=submit]").click()
                page.wait_for_url(lambda url: "/auth/" not in url, timeout=60_000)
                page.goto(f"{server.url}/plugin/stacks", wait_until="networkidle")
                frame = page.frame_locator("iframe").first
                frame.locator("body[data-loaded=overview]").wait_for(timeout=60_000)
                l3_orders = frame.locator('td[data-service="orders"][data-stack="L3"]')
                assert "1.1.0" in l3_orders.inner_text()
                assert "1.0.0" in frame.locator('td[data-service="catalog"][data-stack="L3"]').inner_text()
                assert frame.locator('th[data-stack="%s"]' % kept).count() == 0  # ephemeral collapsed
                frame.locator("#show-ephemeral").check()
                cell = frame.locator(f'td[data-service="catalog"][data-stack="{kept}"]')
                assert "1.2.0" in cell.inner_text() and cell.get_attribute("data-state") == "ahead"
                assert frame.locator(".banner.err").count() == 0, frame.locator("#sources").inner_text()
                href = frame.locator('td[data-service="orders"][data-stack="L3"] a').get_attribute("href")
                assert href == f"/dags/l3_gate/runs/{quote(promoted, safe='')}"
                page.screenshot(path=str(shot), full_page=True)
                frame.locator('nav button[data-tab="history"]').click()
                history = frame.locator("#history").inner_text()
                assert "orders 1.0.0 → 1.1.0" in history and "rejected: system tests failed" in history
                assert history.count("l3-catalog-test") <= 1  # a failing test is named once
                # Both of Airflow's themes: the view follows the UI's choice (next-themes, key "theme").
                backgrounds = {}
                for theme in ("light", "dark"):
                    page.evaluate(f"localStorage.setItem('theme', '{theme}')")
                    page.reload(wait_until="networkidle")
                    frame = page.frame_locator("iframe").first
                    frame.locator(f"html[data-theme={theme}] body[data-loaded=overview]").wait_for(timeout=60_000)
                    backgrounds[theme] = frame.locator("body").evaluate(
                        "b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).color]")
                    page.screenshot(path=str(tmp_path / f"stacks-view-{theme}.png"), full_page=True)
                assert backgrounds["light"][0] != backgrounds["dark"][0], backgrounds
                assert all(bg != fg for bg, fg in backgrounds.values()), backgrounds
            finally:
                browser.close()
        local_stack.core_v1().delete_namespace(kept)
    assert shot.stat().st_size > 10_000
    # pytest rotates tmp dirs; CI collects artifacts from the state folder (STACKYARD_ARTIFACTS overrides).
    artifacts = Path(os.environ.get("STACKYARD_ARTIFACTS") or ROOT / ".stackyard" / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    kept_shot = shutil.copy2(shot, artifacts / "stacks-view.png")
    for theme in ("light", "dark"):
        shutil.copy2(tmp_path / f"stacks-view-{theme}.png", artifacts / f"stacks-view-{theme}.png")
    print(f"\nstacks view screenshot: {shot}\nstacks view screenshot (artifact): {kept_shot}")
