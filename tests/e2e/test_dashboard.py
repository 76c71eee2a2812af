"""The live dashboard in headless Chromium: a paused projection's lag rises, then falls."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.conftest import StackSettings
from tests.e2e.conftest import ROOT
from tests.helpers import unique_email

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No background networking: the machine has no network beyond loopback.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SHOT = ROOT / ".stack" / "test-artifacts" / "dashboard.png"


def graph_lag(page: Page) -> int:
    return int(page.evaluate("() => (window.campusDashboard.history.graph || [-1]).slice(-1)[0]"))


def wait_until(page: Page, check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check(page):  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"dashboard never showed it; graph lag history: "
                f"{page.evaluate('() => window.campusDashboard.history.graph')}"
            )
        page.wait_for_timeout(250)


def test_paused_projection_lag_rises_on_the_chart_and_falls_after_resume(
    stack: StackSettings,
) -> None:
    writes = 15
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        try:
            page.goto(f"{stack.service_url('gateway')}/dashboard")
            page.fill("#email", stack.admin_email)
            page.fill("#password", stack.admin_password.get_secret_value())
            page.click("#login button")
            page.wait_for_selector("tr[data-projection='graph']", timeout=20_000)
            assert page.text_content("#status") == "live"
            page.click("button[data-name='graph'][data-action='pause']")
            page.wait_for_selector("tr[data-projection='graph'] td.paused", timeout=10_000)

            with httpx.Client(
                base_url=stack.service_url("users"), timeout=10, auth=stack.operator_auth()
            ) as http:
                for _ in range(writes):
                    r = http.post(
                        "/users",
                        json={
                            "email": unique_email("dash"),
                            "full_name": "Dashboard Student",
                            "password": "dash-pass-1",
                        },
                    )
                    assert r.status_code == 201
            wait_until(page, lambda p: graph_lag(p) >= writes)
            risen = graph_lag(page)

            page.click("button[data-name='graph'][data-action='resume']")
            wait_until(page, lambda p: graph_lag(p) == 0)
            history = page.evaluate("() => window.campusDashboard.history.graph")
            assert max(history) >= risen >= writes and history[-1] == 0
            # The chart itself drew the series (Chart.js keeps it in the dataset).
            drawn = page.evaluate(
                "() => Chart.getChart('lagChart').data.datasets"
                ".find(d => d.label === 'graph').data.map(p => p.y)"
            )
            assert max(drawn) >= writes and drawn[-1] == 0
            # The writes that waited in Kafka while paused are graph's slowest, each linked to
            # its trace in Zipkin.
            link = page.wait_for_selector(
                "#slowest tr[data-projection='graph'] a[href*='/traces/']", timeout=10_000
            )
            assert link is not None
            assert (link.get_attribute("href") or "").startswith(stack.zipkin_public_url)
            SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOT), full_page=True)
        finally:
            # Never leave the projection paused for the tests after this one.
            with httpx.Client(
                base_url=stack.service_url("graph"), timeout=10, auth=stack.operator_auth()
            ) as http:
                http.post("/projections/graph/resume")
            browser.close()
    assert SHOT.stat().st_size > 10_000


def test_the_empty_state_names_make_seed_until_the_campus_has_data(stack: StackSettings) -> None:
    """With data the hint is hidden; with an empty campus (a fresh stack's graph) it shows."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            seeded = browser.new_page()
            _sign_in(seeded, stack)
            seeded.wait_for_function(
                "() => window.campusDashboard && document.getElementById('graph').children.length",
                timeout=30_000,
            )
            # This stack has groups (the suite's own writes and `make seed`): no hint.
            assert seeded.is_hidden("#emptyState")

            fresh = browser.new_page()
            # What a fresh stack's graph holds: the admin account alone, no group.
            only_admin = '{"nodes": [{"id": "u1", "label": "Admin", "kind": "user"}], "edges": []}'
            fresh.route(
                "**/dashboard/data/graph*",
                lambda route: route.fulfill(content_type="application/json", body=only_admin),
            )
            _sign_in(fresh, stack)
            fresh.wait_for_selector("#emptyState", state="visible", timeout=30_000)
            assert "make seed" in (fresh.text_content("#emptyState") or "")
        finally:
            browser.close()


def _sign_in(page: Page, stack: StackSettings) -> None:
    page.goto(f"{stack.service_url('gateway')}/dashboard")
    page.fill("#email", stack.admin_email)
    page.fill("#password", stack.admin_password.get_secret_value())
    page.click("#login button")
    page.wait_for_selector("tr[data-projection='graph']", timeout=20_000)
