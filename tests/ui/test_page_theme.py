"""The Stacks page in Debian's chromium, light and dark, inside a parent page like Airflow's UI.

The page's JSON comes from the real view code (stackyard.core.fleet over generated inputs) and is
served beside the page by a small local server; the parent page sets the theme the way Airflow
3.3 does (next-themes: class ``dark``/``light`` on <html>, choice in localStorage ``theme``).
Both themes are screenshot; the iframe's background must differ and its text stay readable.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from stackyard.core import fleet as views
from stackyard.core.fleet import ClusterState, NamespaceRow, ReleaseRow
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose

from tests.support.page_server import serve_page
from tests.ui.test_browser import LAUNCH_ARGS, require_chromium

pytestmark = pytest.mark.slow
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)
ORDERS_IMAGE = "registry.example.com/orders:1.0.0"
PINNED = "sha256:" + "ab12" * 16
MOVED = "sha256:" + "cd34" * 16


def documents() -> dict[str, object]:
    seed = Manifest.initial({"orders": ServicePin("1.0.0", images={ORDERS_IMAGE: PINNED}), "catalog": ServicePin("1.0.0")},
                            NOW, Provenance(None, "t", None))
    history = [seed, propose(seed, "orders", "1.1.0", None, NOW, Provenance("g2", "bob", None))]
    managed = {"app.kubernetes.io/managed-by": "stackyard", "stackyard.io/stack-type": "persistent"}
    pod = {"kind": "Pod", "metadata": {"name": "orders-1", "namespace": "qa1", "labels": {"app.kubernetes.io/name": "orders"}},
           "spec": {"containers": [{"name": "orders", "image": ORDERS_IMAGE}]},
           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                      "containerStatuses": [{"name": "orders", "restartCount": 5, "imageID": f"registry.example.com/orders@{MOVED}",
                                             "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    cluster = ClusterState((NamespaceRow("qa1", managed),), (ReleaseRow("orders", "qa1", "deployed", "orders-1.0.0"),), NOW,
                           objects={"qa1": [pod]})
    matrix = views.fleet_matrix(history=history, cluster=cluster, rollouts={})
    ok = {"ok": True, "read_at": "2026-03-04T10:00:00Z"}
    overview = {"sources": {"cluster": ok}, "now": "2026-03-04T10:00:00Z", "matrix": matrix,
                "ephemeral": views.ephemeral_view(cluster, {}, [], NOW), "persistent": views.persistent_view([], cluster, {}, NOW)}
    status = views.stack_status("qa1", matrix, [], [])
    deployed = {"orders": {"version": "1.0.0", "status": "deployed", "release": "orders"}}
    page = views.stack_detail(status, namespace="qa1", objects=[pod], warnings=[], deployed=deployed,
                              releases=[], live={}, compared_kinds=set(), pinned=views.pinned_images(deployed, history))
    return {"/stacks/api/overview": overview, "/stacks/api/history?limit=30": {"sources": {}, "entries": []},
            "/stacks/api/stacks/qa1": {"sources": {}, **page, "namespace": "qa1"}}


PARENT = """<!doctype html><html class="%s"><head><style>body{margin:0;font-family:Georgia,serif;font-size:15px}
html.dark body{background:#111}</style><script>localStorage.setItem("theme", "%s")</script></head>
<body><iframe src="/stacks/" style="width:1200px;height:800px;border:0"></iframe></body></html>"""


@pytest.fixture
def site():
    def parent(path: str):
        if path.startswith("/parent/"):
            theme = path.rsplit("/", 1)[1]
            return (PARENT % (theme, theme)).encode(), "text/html"
        return None

    with serve_page(documents(), extra=parent) as url:
        yield url


def luminance(css: str) -> float:
    r, g, b = [int(float(x)) / 255 for x in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    x, y = sorted((luminance(a), luminance(b)), reverse=True)
    return (x + 0.05) / (y + 0.05)


def test_the_page_follows_airflows_light_and_dark_theme_and_type(site, tmp_path):
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 850})
            for theme in ("light", "dark"):
                page.goto(f"{site}/parent/{theme}", wait_until="networkidle")
                frame = page.frame_locator("iframe").first
                frame.locator("body[data-loaded=overview]").wait_for(timeout=30_000)
                colours = frame.locator("body").evaluate(
                    "b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).color, getComputedStyle(b).fontFamily,"
                    " document.documentElement.dataset.theme]")
                cell = frame.locator('td[data-service="orders"][data-stack="qa1"]')
                assert cell.get_attribute("data-health") == "degraded"
                cell_colours = cell.evaluate("c => [getComputedStyle(c).backgroundColor, getComputedStyle(c).color]")
                page.screenshot(path=str(tmp_path / f"stacks-{theme}.png"), full_page=True)
                seen[theme] = (colours, cell_colours)
                assert colours[3] == theme
                assert "Georgia" in colours[2]  # the parent's type, not the page's own default
                assert contrast(colours[0], colours[1]) >= 4.5, colours  # WCAG AA body text
                assert contrast(*cell_colours) >= 3, cell_colours
            frame.locator('th[data-stack="qa1"]').click()  # the stack's page, from its column
            frame.locator("body[data-stack=qa1]").wait_for(timeout=30_000)
            row = frame.locator('#stack-services tr[data-service="orders"]')
            assert row.get_attribute("data-health") == "degraded" and "CrashLoopBackOff" in row.inner_text()
            images = row.locator("td[data-images]")  # the pinned digest, short; full on hover; the mismatch flagged
            assert images.get_attribute("data-images") == "mismatch" and PINNED[7:19] in images.inner_text()
            assert images.locator("span[title]").first.get_attribute("title") == f"{ORDERS_IMAGE}@{PINNED}"
            assert "not the pinned digest" in images.inner_text()
            page.screenshot(path=str(tmp_path / "stack-page-dark.png"), full_page=True)
            # Toggling Airflow's theme recolours the open page without a reload.
            page.evaluate("document.documentElement.className = 'light'")
            frame.locator("html[data-theme=light]").wait_for(timeout=5_000)
        finally:
            browser.close()
    assert seen["light"][0][0] != seen["dark"][0][0]
    assert luminance(seen["dark"][0][0]) < 0.1 < luminance(seen["light"][0][0])
    for theme in ("light", "dark"):
        assert (tmp_path / f"stacks-{theme}.png").stat().st_size > 5_000
    print(f"\nstacks view screenshots: {tmp_path}/stacks-light.png, stacks-dark.png, stack-page-dark.png")
