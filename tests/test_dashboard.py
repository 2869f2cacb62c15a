"""/moderate/dashboard in a real headless Chromium (Debian's), against a real HTTP server.

A real worker process decides comments submitted through the HTTP API; a moderator overturns
one through the API; then the page must show the same numbers in its summary, its tables and
its four Chart.js charts (read back from Chart.js itself). Waits are on conditions with
deadlines (Playwright's `expect`, `wait_for`), never sleeps.

Set MODERATION_SCREENSHOTS=1 to write docs/screenshots/dashboard.png.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from moderation.storage.moderator_store import ModeratorCredentials, ModeratorStore, Role
from tests.support.browser import VIEWPORT, HostSite, ModeratorApi, needs_chromium, served
from tests.support.held import comment_body
from tests.support.processes import running_worker

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "dashboard.png"
CHARTS = ("outcomes", "reasons", "queue", "overturns")
CLEAN = (
    "Thanks for the thoughtful article, I learned a lot from it.",
    "Great reporting, please keep it up.",
    "I disagree with the second point, but it is well argued.",
)
HOLDABLE = (  # the lite model and the spam checks hold these (the test counts what they did)
    "you are a fucking idiot",
    "Check out my channel and subscribe http://bit.ly/x1 http://bit.ly/x2 http://bit.ly/x3",
)

pytestmark = needs_chromium
expect.set_options(timeout=15_000)


@dataclass(frozen=True)
class Live:
    """The running server, the `news` site as its host calls the API, and ann (who moderates
    news and blog) with her token."""

    url: str
    site: HostSite
    moderator: ModeratorCredentials

    def submit(self, comment_id: str, content: str) -> None:
        self.site.submit(comment_body(comment_id, content))

    def decided(self, comment_id: str) -> dict[str, Any]:
        return self.site.decided(comment_id)

    def review(self, comment_id: str, action: str) -> None:
        ModeratorApi(self.url, self.moderator.token).post(f"news/{comment_id}", {"action": action})


@pytest.fixture
def live(app: Flask, make_site, redis_client) -> Iterator[Live]:
    """The app served over HTTP: sites news, blog (ann's) and shop (bob's)."""
    app.config["MODERATE_DASHBOARD_POLL_SECONDS"] = 0.5
    api_key = make_site("news").api_key
    make_site("blog")
    make_site("shop")
    moderators = ModeratorStore(redis_client)
    ann = moderators.create("ann", Role.MODERATOR, ["news", "blog"])
    moderators.create("bob", Role.MODERATOR, ["shop"])
    with served(app) as url:
        yield Live(url, HostSite(url, api_key), ann)


# --- helpers ---------------------------------------------------------------------------------


def log_in(page: Page, live: Live) -> None:
    page.goto(f"{live.url}/moderate/login")
    page.get_by_label("Name").fill(live.moderator.name)
    page.get_by_label("Password").fill(live.moderator.password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/moderate$"))


def open_dashboard(page: Page, live: Live, query: str = "") -> None:
    page.goto(f"{live.url}/moderate/dashboard{query}")
    expect(page.locator("html")).to_have_class(re.compile(r"\bjs\b"))  # charts drawn, wired


def stat(page: Page, key: str):
    return page.locator(f'[data-stat="{key}"]')


def chart_sums(page: Page) -> dict[str, dict[str, float]]:
    """Each chart's datasets, as Chart.js holds them: {chart: {dataset label: sum}}."""
    return page.evaluate(
        """(keys) => Object.fromEntries(keys.map((key) => {
            const chart = Chart.getChart(document.getElementById(`${key}-chart`));
            return [key, Object.fromEntries(chart.data.datasets.map(
                (set) => [set.label, set.data.reduce((sum, value) => sum + (value || 0), 0)]))];
        }))""",
        list(CHARTS),
    )


def chart_data(page: Page, key: str) -> dict[str, Any]:
    """One chart's labels and datasets (label, data and our extra per-bar counts)."""
    return page.evaluate(
        """(key) => {
            const chart = Chart.getChart(document.getElementById(`${key}-chart`));
            return {labels: chart.data.labels, datasets: chart.data.datasets.map((set) => ({
                label: set.label, data: set.data,
                reviewed: set.reviewed || null, overturned: set.overturned || null}))};
        }""",
        key,
    )


def dashboard_json(page: Page, live: Live, query: str) -> tuple[int, dict[str, Any]]:
    """GET dashboard.json with the page's session cookie."""
    response = page.request.get(f"{live.url}/moderate/dashboard.json{query}")
    return response.status, response.json()


def recorded_requests(page: Page) -> list[str]:
    """The URLs the page asks for from now on (filled in as it asks)."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    return urls


def recorded_errors(page: Page) -> list[str]:
    """Uncaught exceptions and console errors from now on, failed loads included."""
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))
    page.on("console", console)
    return errors


def footer(page: Page, table: str) -> list[str]:
    return page.locator(f"#{table}-table tfoot td").all_text_contents()


# --- tests -----------------------------------------------------------------------------------


@pytest.mark.e2e
def test_the_dashboard_shows_what_the_worker_and_the_moderator_decided(
    page: Page, live: Live, redis_server, tmp_path: Path
) -> None:
    comments = {f"c-{i}": text for i, text in enumerate(CLEAN + HOLDABLE)}
    with running_worker(redis_server.url, tmp_path / "worker.log"):
        for comment_id, text in comments.items():
            live.submit(comment_id, text)
        records = {comment_id: live.decided(comment_id) for comment_id in comments}
    automatic = Counter(record["status"] for record in records.values())
    held = [comment_id for comment_id, record in records.items() if record["status"] == "held"]
    assert held, f"the worker held none of {HOLDABLE}: {records}"
    live.review(held[0], "approve")  # a moderator overturns one automatic hold

    log_in(page, live)
    requested, errors = recorded_requests(page), recorded_errors(page)  # from here on
    open_dashboard(page, live)
    expect(page.locator("#dash-title")).to_have_text("All my sites · last 24 hours")
    expected = {
        "submitted": len(comments),
        "approved": automatic["approved"],
        "held": automatic["held"],
        "rejected": automatic["rejected"],
        "moderated": 1,
        "queue_size": automatic["held"] - 1,
    }
    for key, value in expected.items():
        expect(stat(page, key)).to_have_text(str(value))
    _, data = dashboard_json(page, live, "")
    stats, totals = data["stats"], data["stats"]["totals"]
    # One moderator decision, against the automatic one: every label it named is overturned.
    assert totals["moderated"] == 1 and totals["overturned"] == totals["reviewed"] >= 1, totals
    expect(stat(page, "overturn_rate")).to_have_text("100%")
    detail = page.locator('[data-stat-detail="overturn_rate"]')
    expect(detail).to_have_text(f"{totals['overturned']} of {totals['reviewed']} reviewed")
    if automatic["held"] > 1:
        expect(stat(page, "oldest_waiting")).not_to_have_text("\N{EN DASH}")

    sums = chart_sums(page)
    assert sums["outcomes"] == {
        "Approved": automatic["approved"],
        "Held": automatic["held"],
        "Rejected": automatic["rejected"],
        "Moderator approved": 1,
        "Moderator rejected": 0,
        "Reported": 0,
    }
    reasons = chart_data(page, "reasons")
    assert dict(zip(reasons["labels"], reasons["datasets"][0]["data"], strict=True)) == {
        key.replace("_", " "): value for key, value in stats["held_by_reason"].items()
    }
    assert sum(stats["held_by_reason"].values()) >= automatic["held"]  # a hold has a reason
    overturns = chart_data(page, "overturns")
    (bars,) = overturns["datasets"]
    assert bars["data"] == [100] * len(stats["overturns"]) and "approved" not in stats["overturns"]
    assert sum(bars["overturned"]) == sum(bars["reviewed"]) == totals["reviewed"]
    assert page.locator("#overturns-table tbody tr").all_text_contents() == [
        f"{label[0]}{o}{o}100%"
        for label, o in zip(overturns["labels"], bars["overturned"], strict=True)
    ]
    sizes, minutes = (series["data"] for series in chart_data(page, "queue")["datasets"])
    assert sizes == data["view"]["queue"]["size"]  # (ages grow while the test reads them)
    assert sizes[-1] == automatic["held"] - 1  # the current hour: the queue now
    assert (minutes[-1] is not None) == (automatic["held"] > 1)
    assert footer(page, "outcomes")[:4] == [
        str(expected[key]) for key in ("submitted", "approved", "held", "rejected")
    ]
    for key in CHARTS:  # every chart drew on a canvas of real size
        box = page.locator(f"#{key}-chart").bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, (key, box)

    if os.environ.get("MODERATION_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    # The page re-reads the numbers while it is open (every 0.5 s here).
    page.evaluate("window.sameDocument = true")
    live.submit("c-late", "One more thought, submitted while the dashboard was open.")
    expect(stat(page, "submitted")).to_have_text(str(len(comments) + 1))
    assert page.evaluate("window.sameDocument") is True

    # The selectors: blog has no comments; 30 days are charted per day with the same totals.
    page.locator("#dash-site").select_option("blog")
    expect(page.locator("#dash-title")).to_have_text("blog · last 24 hours")
    expect(page).to_have_url(re.compile(r"/moderate/dashboard\?site=blog$"))
    for key in ("submitted", "approved", "held", "rejected", "queue_size"):
        expect(stat(page, key)).to_have_text("0")
    assert all(v == 0 for chart in chart_sums(page).values() for v in chart.values())
    page.locator("#dash-site").select_option("")
    page.locator("#dash-hours").select_option("720")
    expect(page.locator("#dash-title")).to_have_text("All my sites · last 30 days")
    expect(stat(page, "submitted")).to_have_text(str(len(comments) + 1))
    assert chart_sums(page)["outcomes"]["Held"] == automatic["held"]
    assert len(chart_data(page, "outcomes")["labels"]) in (30, 31)  # one bar per UTC day
    assert page.evaluate("window.sameDocument") is True

    # Everything, Chart.js included, came from the app itself.
    assert requested and all(url.startswith(f"{live.url}/") for url in requested), requested
    assert f"{live.url}/moderate/static/vendor/chart.umd.min.js" in requested
    assert not errors, errors


def test_the_dashboard_needs_a_login_and_shows_only_the_moderators_sites(
    page: Page, live: Live
) -> None:
    page.goto(f"{live.url}/moderate/dashboard")
    expect(page).to_have_url(re.compile(r"/moderate/login$"))
    status, body = dashboard_json(page, live, "")
    assert status == 401, body

    log_in(page, live)
    open_dashboard(page, live)
    options = page.locator("#dash-site option").all_text_contents()
    assert options == ["All my sites", "blog", "news"]
    status, body = dashboard_json(page, live, "?site=shop")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = dashboard_json(page, live, "?hours=5")
    assert status == 422 and "hours" in body["error"]["fields"], body
    status, body = dashboard_json(page, live, "?site=news&hours=168")
    assert status == 200 and body["stats"]["sites"] == ["news"] and body["stats"]["hours"] == 168
    open_dashboard(page, live, "?site=shop&hours=5")  # the page ignores what is not on offer
    expect(page.locator("#dash-title")).to_have_text("All my sites · last 24 hours")


def test_the_selectors_work_without_javascript(browser: Browser, live: Live) -> None:
    context = browser.new_context(viewport=VIEWPORT, java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, live)
        page.goto(f"{live.url}/moderate/dashboard")
        page.locator("#dash-site").select_option("blog")
        page.locator("#dash-hours").select_option("168")
        page.get_by_role("button", name="Apply").click()
        expect(page).to_have_url(re.compile(r"/moderate/dashboard\?site=blog&hours=168$"))
        expect(page.locator("#dash-title")).to_have_text("blog · last 7 days")
        expect(stat(page, "submitted")).to_have_text("0")
        expect(page.locator("#outcomes-table tbody tr")).to_have_count(168)
        expect(page.locator("#outcomes-chart")).to_be_hidden()  # no empty boxes without charts
    finally:
        context.close()
