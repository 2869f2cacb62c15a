"""`make demo` as a newcomer meets it: `moderation up --demo` (Redis, the API, the workers and
the example newsroom in examples/newsroom), the lines it prints, and the whole loop in real
Chromium: a reader posts on the article, a clean comment is published, an abusive one waits for
a moderator, who approves it on /moderate with `a`, and it appears on the open article.

With MODERATION_SCREENSHOTS=1 the README's pictures are written to docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from playwright.sync_api import Browser, Page, expect

from moderation.core import credentials, webhook_requests
from moderation.storage.site_store import SiteStore
from tests.conftest import TEST_SECRET_KEY
from tests.support.browser import VIEWPORT, needs_chromium
from tests.support.processes import PROJECT_ROOT, moderation_env, wait_for
from tests.support.redis_server import RedisServer, free_port

pytestmark = [pytest.mark.e2e, needs_chromium]

SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
CLEAN = "Great news: the new cycle lanes make my commute so much safer."
ABUSIVE = "This is shit reporting, you stupid fucking idiot."
BANNER_END = "Enter shows this again; Ctrl-C stops everything."


@dataclass(frozen=True)
class Demo:
    article_url: str
    moderation_url: str
    moderator: str
    password: str
    log: Path
    process: subprocess.Popen[bytes]
    ports: tuple[int, int]  # the API's and the newsroom's, as configured
    redis_url: str

    @property
    def newsroom_url(self) -> str:
        return self.article_url.split("/articles/")[0]

    def printed(self) -> str:
        return self.log.read_text()


def printed_line(text: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}: (.+)$", text, re.MULTILINE)
    assert match, f"no line '{label}: ...' in:\n{text}"
    return match.group(1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`moderation up --demo` as `make demo` runs it, on its own Redis and free ports."""
    directory = tmp_path_factory.mktemp("demo")
    redis_server = RedisServer(directory / "redis")
    redis_server.start()
    api_port, newsroom_port = free_port(), free_port()
    env = moderation_env(
        redis_server.url, {"PORT": str(api_port), "NEWSROOM_PORT": str(newsroom_port)}
    )
    log = directory / "up.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moderation.ops.cli", "up", "--demo"],
            env=env,
            cwd=directory,  # ./var/ (the newsroom's database) goes there
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: BANNER_END in log.read_text(), timeout=180, what="the banner")
        printed = log.read_text()
        moderator, password = printed_line(printed, "demo moderator").split(" ")
        yield Demo(
            article_url=printed_line(printed, "demo article"),
            moderation_url=printed_line(printed, "demo moderation page"),
            moderator=moderator,
            password=password,
            log=log,
            process=process,
            ports=(api_port, newsroom_port),
            redis_url=redis_server.url,
        )
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole group
        process.stdin.close()
        process.wait(timeout=60)
        redis_server.stop()
    assert process.returncode == 0, log.read_text()[-2000:]
    # Every child stopped on its own: none killed, none left for cold.
    for forced in ("SIGKILL", "cold shut down"):
        assert forced not in log.read_text()


def test_make_demo_prints_the_three_lines_last_and_again_on_enter(demo: Demo) -> None:
    printed = demo.printed()
    assert re.fullmatch(rf"http://127\.0\.0\.1:{demo.ports[1]}/articles/[\w-]+", demo.article_url)
    assert demo.moderation_url == f"http://127.0.0.1:{demo.ports[0]}/moderate"
    assert re.fullmatch(r"[\w.-]+", demo.moderator) and len(demo.password) >= 16
    assert requests.get(demo.article_url, timeout=10).status_code == 200

    # Human-readable lines, and none of RQ's or gunicorn's routine ones.
    start = printed[: printed.index("demo article:")]
    assert "INFO workers.scoring.runtime: toxicity model ready: lite" in start
    assert not [line for line in start.splitlines() if line.startswith("{")]
    for routine in ("cleaning registries", "subscribing to channel", "Booting worker"):
        assert routine not in printed

    demo.process.stdin.write(b"\n")
    demo.process.stdin.flush()
    wait_for(lambda: demo.printed().count(BANNER_END) == 2, timeout=30, what="the banner again")
    assert demo.printed().count(f"demo moderator: {demo.moderator} {demo.password}") == 2


def log_in(page: Page, demo: Demo) -> None:
    page.goto(demo.moderation_url)
    page.get_by_label("Name").fill(demo.moderator)
    page.get_by_label("Password").fill(demo.password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/moderate$"))
    expect(page.locator("html")).to_have_class(re.compile(r"\bjs\b"))  # keys are wired


def post(page: Page, name: str, text: str) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_label("Comment").fill(text)
    page.get_by_role("button", name="Post Comment").click()


def published(page: Page, text: str):
    return page.locator("[data-comment-id]", has_text=text)


def test_a_comment_goes_from_the_article_to_the_moderator_and_back(
    browser: Browser, demo: Demo
) -> None:
    reader = browser.new_context(viewport=VIEWPORT).new_page()
    reader.goto(demo.article_url)

    post(reader, "Maya", CLEAN)
    expect(reader.get_by_role("status")).to_have_text("Your comment is published.")
    expect(published(reader, CLEAN)).to_have_count(1)

    post(reader, "Sam", ABUSIVE)
    expect(reader.get_by_role("status")).to_have_text(
        "Thanks! Your comment is awaiting moderation."
    )
    expect(reader.locator("[data-pending-id]", has_text=ABUSIVE)).to_contain_text(
        "awaiting moderation"
    )
    expect(published(reader, ABUSIVE)).to_have_count(0)
    pending_id = reader.locator("[data-pending-id]").get_attribute("data-pending-id")
    if os.environ.get("MODERATION_SCREENSHOTS") == "1":
        reader.screenshot(path=str(SCREENSHOTS / "demo-article.png"), full_page=True)
    reader.evaluate("window.sameDocument = true")

    # Another reader sees the published comment only.
    other = browser.new_context(viewport=VIEWPORT).new_page()
    other.goto(demo.article_url)
    expect(published(other, CLEAN)).to_have_count(1)
    expect(other.get_by_text(ABUSIVE)).to_have_count(0)

    moderator = browser.new_context(viewport=VIEWPORT).new_page()
    log_in(moderator, demo)
    held = moderator.locator(f'.card[data-key="demo/{pending_id}"]')
    expect(held).to_contain_text(ABUSIVE)
    expect(held).to_have_class(re.compile(r"\bis-focused\b"))
    if os.environ.get("MODERATION_SCREENSHOTS") == "1":
        moderator.screenshot(path=str(SCREENSHOTS / "demo-moderation.png"))
    moderator.keyboard.press("a")
    expect(moderator.locator("#toast")).to_have_text("Approved.")

    # The signed webhook reached the newsroom, and the open article shows it without a reload.
    expect(published(reader, ABUSIVE)).to_have_count(1, timeout=60_000)
    assert reader.locator(f'[data-comment-id="{pending_id}"]').count() == 1
    assert reader.evaluate("window.sameDocument") is True
    expect(published(other, ABUSIVE)).to_have_count(1, timeout=60_000)
    for context in (reader.context, other.context, moderator.context):
        context.close()


def test_the_newsroom_refuses_a_webhook_it_cannot_verify(demo: Demo) -> None:
    body = json.dumps(
        {
            "event": "comment.decided",
            "site": "demo",
            "comment": {
                "id": "forged-1",
                "status": "approved",
                "decision": {"decided_at": "2026-12-07T00:00:00Z"},
            },
        }
    ).encode()
    hook = f"{demo.newsroom_url}/hooks/moderation"
    for headers in ({}, {"X-Moderation-Signature": webhook_requests.sign("not-the-secret", body)}):
        answer = requests.post(hook, data=body, headers=headers, timeout=10)
        assert answer.status_code == 400


def webhook_secret(demo: Demo) -> str:
    """The demo site's webhook secret, derived as the service does (up prints no such line)."""
    with redis.Redis.from_url(demo.redis_url) as connection:
        site = SiteStore(connection, TEST_SECRET_KEY).get("demo")
    return credentials.webhook_secret(TEST_SECRET_KEY, "demo", site.webhook_nonce)


def test_the_newsroom_applies_the_newest_decision_and_ignores_a_stale_one(demo: Demo) -> None:
    reader = requests.Session()
    posted = reader.post(
        f"{demo.article_url}/comments",
        data={"name": "Lee", "content": "The bridge looks great at night."},
        timeout=30,
    )
    assert "Your comment is published." in posted.text
    items = re.findall(r'data-comment-id="([^"]+)">(.*?)</li>', posted.text, re.DOTALL)
    [comment_id] = [id for id, item in items if "The bridge looks great at night." in item]
    secret = webhook_secret(demo)

    def deliver(status: str, decided_at: str) -> None:
        body = json.dumps(
            {
                "event": "comment.decided",
                "site": "demo",
                "comment": {
                    "id": comment_id,
                    "status": status,
                    "decision": {"decided_at": decided_at},
                },
            }
        ).encode()
        answer = requests.post(
            f"{demo.newsroom_url}/hooks/moderation",
            data=body,
            headers={"X-Moderation-Signature": webhook_requests.sign(secret, body)},
            timeout=10,
        )
        assert answer.status_code == 204

    def is_published() -> bool:
        page = requests.get(demo.article_url, timeout=10).text
        return f'data-comment-id="{comment_id}"' in page

    deliver("held", "2000-01-01T00:00:00Z")  # a retried delivery of an older decision
    assert is_published()
    deliver("rejected", "2999-01-01T00:00:00Z")  # a moderator's later decision
    assert not is_published()
