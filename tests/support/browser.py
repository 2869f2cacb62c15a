"""The page tests' shared parts: Debian's Chromium driven by Playwright, the app served over
real HTTP on a free port, and the HTTP API as a host site and a moderator call it.

Import the `browser` and `page` fixtures into a test module to use them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

from tests.support.processes import wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    yield tab
    context.close()


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app under werkzeug's threaded server on a free port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["moderation"].redis.close()


@dataclass(frozen=True)
class HostSite:
    """The HTTP API as a host site calls it, with its API key."""

    url: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def submit(self, body: dict[str, Any]) -> None:
        response = requests.post(
            f"{self.url}/v1/comments", json=body, headers=self.headers, timeout=10
        )
        assert response.status_code == 202, response.text

    def record(self, comment_id: str) -> dict[str, Any]:
        response = requests.get(
            f"{self.url}/v1/comments/{comment_id}", headers=self.headers, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    def decided(self, comment_id: str) -> dict[str, Any]:
        """The record once a worker decided the comment."""

        def record() -> dict[str, Any] | None:
            found = self.record(comment_id)
            return found if found["status"] != "pending" else None

        return wait_for(record, timeout=60, interval=0.1, what=f"a decision on {comment_id}")

    def report(self, comment_id: str, reporter: str, reason: str, note: str = "") -> dict:
        response = requests.post(
            f"{self.url}/v1/comments/{comment_id}/reports",
            json={"reporter": reporter, "reason": reason, "note": note},
            headers=self.headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()


@dataclass(frozen=True)
class ModeratorApi:
    """The review API as a moderator calls it, with their token."""

    url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.url}/v1/review/{path}", headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = requests.post(
            f"{self.url}/v1/review/{path}", json=body, headers=self.headers, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()
